/**
 * Compares two installs object by object (pure: plain objects in, differences out). What the
 * two tools add by themselves is normalized away first; everything else is a difference:
 * - Helm's own labels (managed-by, instance, chart);
 * - `app.kubernetes.io/part-of` where only the chart has it (the overlays' own objects lack it);
 * - metadata.namespace on cluster-scoped kinds (kustomize puts its namespace on kinds it does not
 *   know, RestorePolicy and ValidatingAdmissionPolicy; the API server drops it);
 * - comments and layout inside ConfigMap values that hold YAML (compared as parsed YAML).
 */
import { parse } from 'yaml';
import type { K8sObject } from './kustomize.js';

export const HELM_LABELS = ['app.kubernetes.io/managed-by', 'app.kubernetes.io/instance', 'helm.sh/chart'] as const;
const PART_OF = 'app.kubernetes.io/part-of';

export const CLUSTER_SCOPED = new Set(['Namespace', 'CustomResourceDefinition', 'ClusterRole', 'ClusterRoleBinding', 'MutatingWebhookConfiguration',
  'ValidatingWebhookConfiguration', 'ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding', 'RestorePolicy', 'PriorityClass']);

/** One difference: `Kind/namespace/name` and a JSON pointer into it ('' for an object only one side has). */
export interface Difference { object: string; path: string; kustomize: unknown; helm: unknown }

export function objectKey(o: K8sObject): string {
  return `${o.kind}/${CLUSTER_SCOPED.has(o.kind) ? '' : o.metadata.namespace ?? ''}/${o.metadata.name}`;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function parsedYamlValues(data: Record<string, Json>): Record<string, Json> {
  return Object.fromEntries(Object.entries(data).map(([k, v]) => [k, typeof v === 'string' && /\.ya?ml$/.test(k) ? parse(v) as Json : v]));
}

/** A normalized copy (inputs are never changed). `counterpart` is the other side's object, if any. */
function normalize(o: K8sObject, side: 'kustomize' | 'helm', counterpart: K8sObject | undefined): Json {
  const copy = structuredClone(o) as unknown as { kind: string; metadata: { namespace?: string; labels?: Record<string, string> }; data?: Record<string, Json> };
  if (CLUSTER_SCOPED.has(copy.kind)) delete copy.metadata.namespace;
  const labels = copy.metadata.labels;
  if (labels && side === 'helm') {
    for (const l of HELM_LABELS) delete labels[l];
    if (counterpart && !(counterpart.metadata as { labels?: Record<string, string> }).labels?.[PART_OF]) delete labels[PART_OF];
  }
  if (labels && Object.keys(labels).length === 0) delete copy.metadata.labels;
  if (copy.kind === 'ConfigMap' && copy.data) copy.data = parsedYamlValues(copy.data);
  return copy as unknown as Json;
}

function escape(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}

function walk(object: string, path: string, a: Json | undefined, b: Json | undefined, out: Difference[]): void {
  if (JSON.stringify(a) === JSON.stringify(b)) return;
  const isMap = (x: unknown): x is Record<string, Json> => typeof x === 'object' && x !== null && !Array.isArray(x);
  if (isMap(a) && isMap(b)) {
    for (const k of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) walk(object, `${path}/${escape(k)}`, a[k], b[k], out);
  } else if (Array.isArray(a) && Array.isArray(b) && a.length === b.length) {
    a.forEach((x, i) => { walk(object, `${path}/${String(i)}`, x, b[i], out); });
  } else {
    out.push({ object, path, kustomize: a, helm: b });
  }
}

/** Every difference between the two installs, objects matched by kind, namespace and name. */
export function diffInstalls(kustomize: readonly K8sObject[], helm: readonly K8sObject[]): Difference[] {
  const byKey = (objs: readonly K8sObject[]): Map<string, K8sObject> => new Map(objs.map((o) => [objectKey(o), o]));
  const k = byKey(kustomize);
  const h = byKey(helm);
  const out: Difference[] = [];
  for (const key of [...new Set([...k.keys(), ...h.keys()])].sort()) {
    const ko = k.get(key);
    const ho = h.get(key);
    walk(key, '', ko ? normalize(ko, 'kustomize', ho) : undefined, ho ? normalize(ho, 'helm', ko) : undefined, out);
  }
  return out;
}
