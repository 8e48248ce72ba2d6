/**
 * Server-side apply of YAML manifests against the local control plane: CRDs from
 * charts/lazarus/crds/, and any object whose kind the API server's discovery knows.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { KubeClient } from '../../kube/client.js';
import { repoRoot } from './kube-bin.js';
import { waitFor } from './wait.js';

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [k: string]: unknown };
  [k: string]: unknown;
}

export const FIELD_MANAGER = 'lazarus-harness';

/** Every object in the YAML text (multi-document; empty documents and `List`s flattened). */
export function parseObjects(text: string, source = 'yaml'): KubeObject[] {
  const out: KubeObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`${source}: ${doc.errors.map((e) => e.message).join('; ')}`);
    const value = doc.toJS() as unknown;
    if (value === null || value === undefined) continue;
    const obj = value as Partial<KubeObject> & { items?: KubeObject[] };
    if (obj.kind?.endsWith('List') && Array.isArray(obj.items)) out.push(...obj.items);
    else if (obj.apiVersion && obj.kind && obj.metadata?.name) out.push(obj as KubeObject);
    else throw new Error(`${source}: a document without apiVersion, kind or metadata.name`);
  }
  return out;
}

/** Objects from every .yaml/.yml/.json file directly in `dir`, in file-name order. */
export async function readManifests(dir: string): Promise<KubeObject[]> {
  // kustomization.yaml says how to build the directory (charts/lazarus/crds has one); it is no object.
  const files = (await readdir(dir)).filter((f) => /\.(ya?ml|json)$/.test(f) && !/^kustomization\.ya?ml$/.test(f)).sort();
  const objects: KubeObject[] = [];
  for (const f of files) objects.push(...parseObjects(await readFile(path.join(dir, f), 'utf8'), f));
  return objects;
}

interface ApiResource { name: string; kind: string; namespaced: boolean }

/** Maps apiVersion+kind to a resource path through discovery, caching per group/version. */
export function createResourceMapper(client: KubeClient): (obj: Pick<KubeObject, 'apiVersion' | 'kind'>) => Promise<ApiResource> {
  const cache = new Map<string, ApiResource[]>();
  return async ({ apiVersion, kind }) => {
    let resources = cache.get(apiVersion);
    if (!resources) {
      const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
      const list = await client.request<{ resources: ApiResource[] }>('GET', base);
      resources = list.resources.filter((r) => !r.name.includes('/'));
      cache.set(apiVersion, resources);
    }
    const found = resources.find((r) => r.kind === kind);
    if (!found) throw new Error(`the API server does not serve kind ${kind} in ${apiVersion}`);
    return found;
  };
}

export interface ApplyOptions {
  /** Namespace for namespaced objects that name none; default "default". */
  namespace?: string;
  /** Server-side dry run: validated and admitted, never stored. */
  dryRun?: boolean;
  fieldManager?: string;
}

/** Server-side applies each object (force: the harness owns what it applies). Returns the results. */
export async function applyObjects(client: KubeClient, objects: readonly KubeObject[], options: ApplyOptions = {}): Promise<KubeObject[]> {
  const mapper = createResourceMapper(client);
  const results: KubeObject[] = [];
  for (const obj of objects) {
    const resource = await mapper(obj);
    const base = obj.apiVersion.includes('/') ? `/apis/${obj.apiVersion}` : `/api/${obj.apiVersion}`;
    const ns = obj.metadata.namespace ?? options.namespace ?? 'default';
    const body = resource.namespaced ? { ...obj, metadata: { ...obj.metadata, namespace: ns } } : obj;
    const url = `${base}${resource.namespaced ? `/namespaces/${ns}` : ''}/${resource.name}/${obj.metadata.name}`;
    results.push(await client.request<KubeObject>('PATCH', url, {
      body, contentType: 'application/apply-patch+yaml',
      query: { fieldManager: options.fieldManager ?? FIELD_MANAGER, force: true, ...(options.dryRun ? { dryRun: 'All' } : {}) },
    }));
  }
  return results;
}

interface Crd { metadata: { name: string }; status?: { conditions?: Array<{ type: string; status: string }> } }

/**
 * Applies the CustomResourceDefinitions in `dir` (default charts/lazarus/crds/ of the repo, which
 * manifests/base lists too) and waits until each is Established, so custom objects can be created
 * right away.
 */
export async function installCrds(client: KubeClient, dir = path.join(repoRoot(), 'charts', 'lazarus', 'crds'), timeoutMs = 30_000): Promise<string[]> {
  const crds = (await readManifests(dir)).filter((o) => o.kind === 'CustomResourceDefinition');
  if (crds.length === 0) throw new Error(`no CustomResourceDefinition in ${dir}`);
  await applyObjects(client, crds);
  const names = crds.map((c) => c.metadata.name);
  for (const name of names) {
    await waitFor(async () => {
      const crd = await client.request<Crd>('GET', `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`);
      return crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True');
    }, { timeoutMs, description: `CRD ${name} to be Established` });
  }
  // Discovery of the new group lags Established by a moment; wait until it serves.
  for (const crd of crds) {
    const spec = crd.spec as { group: string; versions: Array<{ name: string; served: boolean }> };
    for (const v of spec.versions.filter((x) => x.served)) {
      await waitFor(() => client.request('GET', `/apis/${spec.group}/${v.name}`).then(() => true), { timeoutMs, description: `/apis/${spec.group}/${v.name}` });
    }
  }
  return names;
}
