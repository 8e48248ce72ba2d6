/**
 * A tiny Kubernetes API stand-in over real HTTP until the real control plane is wired into these
 * tests: objects stored by path, POST to a collection (409 if present), GET item or list, PATCH
 * with JSON merge patch, a `status` subresource that only it may change (as for the CRDs).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

type Obj = { metadata?: { name?: string; resourceVersion?: string; [k: string]: unknown }; status?: unknown; [k: string]: unknown };

function merge(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> = target && typeof target === 'object' && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [k, v] of Object.entries(patch as Record<string, unknown>)) {
    if (v === null) delete out[k];
    else out[k] = merge(out[k], v);
  }
  return out;
}

/** `/api/v1/pods` holds `/api/v1/namespaces/x/pods/y`; any collection holds its direct children. */
function inCollection(collection: string, key: string): boolean {
  if (key.startsWith(`${collection}/`) && !key.slice(collection.length + 1).includes('/')) return true;
  const i = collection.lastIndexOf('/');
  const [prefix, resource] = [collection.slice(0, i), collection.slice(i + 1)];
  return new RegExp(`^${prefix.replace(/[.]/g, '\\.')}/namespaces/[^/]+/${resource}/[^/]+$`).test(key);
}

/** Only `spec.nodeName=X`, the one field selector the agent uses. */
function matchesField(obj: Obj, selector: string | null): boolean {
  if (!selector) return true;
  const m = /^spec\.nodeName=(.*)$/.exec(selector);
  if (!m) return false;
  return (obj.spec as { nodeName?: string } | undefined)?.nodeName === m[1];
}

const STATUS_RESOURCES = new Set(['checkpoints']);
const COLLECTIONS = new Set(['pods', 'nodes', 'namespaces', 'secrets', 'replicasets', 'deployments', 'statefulsets', 'checkpoints', 'restorepolicies']);

export class FakeKube {
  readonly objects = new Map<string, Obj>();
  readonly requests: string[] = [];
  private rv = 1;
  /** Requests (`METHOD /path`) matching these fail once with a 500, to stand in for a crash or an outage. */
  readonly failOnce: RegExp[] = [];
  /** Requests matching these always get a 403, as RBAC answers a verb or name the Role lacks. */
  readonly forbidden: RegExp[] = [];
  private server: http.Server | undefined;
  url = '';

  private readonly watchers: { collection: string; fieldSelector: string | null; res: http.ServerResponse }[] = [];

  put(path: string, obj: Obj): void {
    const type = this.objects.has(path) ? 'MODIFIED' : 'ADDED';
    const stored = structuredClone({ ...obj, metadata: { ...obj.metadata, resourceVersion: String(this.rv++) } });
    this.objects.set(path, stored);
    this.notify(path, type, stored);
  }

  delete(path: string): boolean {
    const o = this.objects.get(path);
    if (!o) return false;
    this.objects.delete(path);
    this.notify(path, 'DELETED', { ...o, metadata: { ...o.metadata, resourceVersion: String(this.rv++) } });
    return true;
  }

  private notify(path: string, type: string, object: Obj): void {
    for (const w of this.watchers) {
      if (inCollection(w.collection, path) && matchesField(object, w.fieldSelector)) w.res.write(`${JSON.stringify({ type, object })}\n`);
    }
  }

  get<T>(path: string): T | undefined {
    const o = this.objects.get(path);
    return o ? structuredClone(o) as T : undefined;
  }

  list<T>(collection: string, fieldSelector: string | null = null): T[] {
    return [...this.objects.entries()].filter(([k, v]) => inCollection(collection, k) && matchesField(v, fieldSelector)).map(([, v]) => structuredClone(v) as T);
  }

  async start(): Promise<void> {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const path = new URL(req.url ?? '/', 'http://x').pathname.replace(/\/$/, '');
        const method = req.method ?? 'GET';
        this.requests.push(`${method} ${path}`);
        const fault = this.failOnce.findIndex((re) => re.test(`${method} ${path}`));
        if (fault !== -1) {
          this.failOnce.splice(fault, 1);
          res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', message: 'injected failure', code: 500 }));
          return;
        }
        if (this.forbidden.some((re) => re.test(`${method} ${path}`))) {
          res.writeHead(403, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'Status', reason: 'Forbidden', message: `${method} ${path} is forbidden`, code: 403 }));
          return;
        }
        const send = (status: number, body: unknown): void => {
          res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
        };
        const notFound = (): void => send(404, { kind: 'Status', reason: 'NotFound', message: `${path} not found`, code: 404 });
        let body: Obj | undefined;
        try { body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString()) as Obj : undefined; } catch { send(400, { message: 'bad json' }); return; }
        const isStatus = path.endsWith('/status') && STATUS_RESOURCES.has(path.split('/').slice(-3)[0] ?? '');
        const target = isStatus ? path.slice(0, -'/status'.length) : path;
        const resource = target.split('/').slice(-2)[0] ?? '';
        switch (method) {
          case 'GET': {
            const o = this.objects.get(target);
            if (o) { send(200, o); return; }
            const query = new URL(req.url ?? '/', 'http://x').searchParams;
            const fieldSelector = query.get('fieldSelector');
            if (COLLECTIONS.has(target.split('/').pop() ?? '') && query.get('watch') === 'true') {
              res.writeHead(200, { 'content-type': 'application/json' });
              res.write('\n');
              const w = { collection: target, fieldSelector, res };
              this.watchers.push(w);
              res.on('close', () => { this.watchers.splice(this.watchers.indexOf(w), 1); });
              return;
            }
            const items = this.list(target, fieldSelector);
            if (COLLECTIONS.has(target.split('/').pop() ?? '')) { send(200, { kind: 'List', metadata: { resourceVersion: String(this.rv) }, items }); return; }
            notFound();
            return;
          }
          case 'POST': {
            const name = body?.metadata?.name;
            if (!body || !name) { send(422, { message: 'name required' }); return; }
            const key = `${path}/${name}`;
            if (this.objects.has(key)) { send(409, { kind: 'Status', reason: 'AlreadyExists', message: `${name} already exists`, code: 409 }); return; }
            const stored = { ...body };
            if (STATUS_RESOURCES.has(path.split('/').pop() ?? '')) delete stored.status;
            this.put(key, stored);
            send(201, this.objects.get(key));
            return;
          }
          case 'PATCH': {
            const o = this.objects.get(target);
            if (!o) { notFound(); return; }
            if ((req.headers['content-type'] ?? '') !== 'application/merge-patch+json') { send(415, { message: 'merge patch only' }); return; }
            let next = merge(o, body) as Obj;
            if (isStatus) next = { ...o, status: next.status };
            else if (STATUS_RESOURCES.has(resource)) next = { ...next, status: o.status };
            this.put(target, next);
            send(200, this.objects.get(target));
            return;
          }
          case 'DELETE':
            if (!this.delete(target)) { notFound(); return; }
            send(200, { kind: 'Status', status: 'Success' });
            return;
          default:
            send(405, { message: 'method not allowed' });
        }
      });
    });
    await new Promise<void>((r) => this.server?.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${String((this.server.address() as AddressInfo).port)}`;
  }

  async kubeconfig(dir: string): Promise<string> {
    const path = join(dir, 'kubeconfig');
    await writeFile(path, [
      'apiVersion: v1', 'kind: Config', 'current-context: fake',
      'clusters: [{name: fake, cluster: {server: "' + this.url + '", insecure-skip-tls-verify: true}}]',
      'users: [{name: fake, user: {token: fake}}]',
      'contexts: [{name: fake, context: {cluster: fake, user: fake}}]',
    ].join('\n'));
    return path;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise((r) => this.server?.close(r));
  }
}
