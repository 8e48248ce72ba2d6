/**
 * The one place that talks to the Kubernetes API. @kubernetes/client-node supplies kubeconfig
 * loading and credentials; requests and watches go over one keep-alive HTTPS agent so that
 * informers, writes and node-proxy calls share connections.
 */
import https from 'node:https';
import http from 'node:http';
import { KubeConfig } from '@kubernetes/client-node';

export class KubeError extends Error {
  constructor(readonly status: number, readonly reason: string, message: string) {
    super(message);
    this.name = 'KubeError';
  }
}

export interface RequestOptions {
  body?: unknown;
  contentType?: string;
  query?: Record<string, string | number | boolean | undefined>;
  signal?: AbortSignal;
  /** Milliseconds; default 30 s. */
  timeoutMs?: number;
  /** Receives each `Warning` header (admission webhooks' warnings arrive this way). */
  onWarning?: (warning: string) => void;
  /** Extra request headers, e.g. `Impersonate-User` (docs/security.md: creating a Checkpoint by hand). */
  headers?: Record<string, string>;
}

export interface WatchOptions {
  /** Extra request headers, e.g. an `Accept` that asks for metadata only. */
  headers?: Record<string, string>;
}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';

export interface KubeClient {
  readonly server: string;
  request<T = unknown>(method: string, path: string, options?: RequestOptions): Promise<T>;
  /** Streams watch events until the server closes the stream or `signal` aborts. */
  watch(path: string, query: Record<string, string | number | boolean | undefined>, onEvent: (type: WatchEventType, object: unknown) => void, signal: AbortSignal, options?: WatchOptions): Promise<void>;
}

/** `--kubeconfig` if given, else in-cluster, else $KUBECONFIG / ~/.kube/config. */
export function loadKubeConfig(kubeconfigPath?: string): KubeConfig {
  const kc = new KubeConfig();
  if (kubeconfigPath) kc.loadFromFile(kubeconfigPath);
  else if (process.env.KUBERNETES_SERVICE_HOST) kc.loadFromCluster();
  else kc.loadFromDefault();
  if (!kc.getCurrentCluster()) throw new Error('kubeconfig has no current cluster');
  return kc;
}

function toQuery(query: RequestOptions['query']): string {
  if (!query) return '';
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined) params.set(k, String(v));
  const text = params.toString();
  return text ? `?${text}` : '';
}

export async function createKubeClient(kc: KubeConfig): Promise<KubeClient> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  const server = cluster.server.replace(/\/$/, '');
  const url = new URL(server);
  const secure = url.protocol === 'https:';
  const base: https.RequestOptions = {};
  await kc.applyToHTTPSOptions(base);
  const agent = secure
    ? new https.Agent({ keepAlive: true, maxSockets: 64, ca: base.ca, cert: base.cert, key: base.key, ...(base.rejectUnauthorized === undefined ? {} : { rejectUnauthorized: base.rejectUnauthorized }) })
    : new http.Agent({ keepAlive: true, maxSockets: 64 });

  async function open(method: string, path: string, options: RequestOptions, accept: string): Promise<http.IncomingMessage> {
    const opts: https.RequestOptions = {};
    await kc.applyToHTTPSOptions(opts); // refreshes tokens (exec plugins, projected SA tokens)
    const headers: Record<string, string> = { accept };
    for (const [k, v] of Object.entries(opts.headers ?? {})) if (v !== undefined) headers[k] = String(v);
    for (const [k, v] of Object.entries(options.headers ?? {})) headers[k] = v;
    let payload: Buffer | undefined;
    if (options.body !== undefined) {
      payload = Buffer.from(typeof options.body === 'string' ? options.body : JSON.stringify(options.body));
      headers['content-type'] = options.contentType ?? 'application/json';
      headers['content-length'] = String(payload.length);
    }
    const lib = secure ? https : http;
    return new Promise((resolve, reject) => {
      const req = lib.request({
        protocol: url.protocol, hostname: url.hostname, port: url.port,
        path: `${url.pathname.replace(/\/$/, '')}${path}${toQuery(options.query)}`,
        method, headers, agent, ...(opts.auth ? { auth: opts.auth } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      }, resolve);
      if (options.timeoutMs !== 0) req.setTimeout(options.timeoutMs ?? 30_000, () => req.destroy(new Error(`${method} ${path}: timed out`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  async function readAll(res: http.IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const chunk of res) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }

  return {
    server,
    async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
      const res = await open(method, path, options, 'application/json');
      if (options.onWarning) for (const w of warningsOf(res)) options.onWarning(w);
      const text = await readAll(res);
      const status = res.statusCode ?? 0;
      if (status >= 400) {
        let reason = '';
        let message = text.slice(0, 500);
        try {
          const s = JSON.parse(text) as { reason?: string; message?: string };
          reason = s.reason ?? '';
          message = s.message ?? message;
        } catch { /* not a Status object */ }
        throw new KubeError(status, reason, `${method} ${path}: ${status} ${message}`);
      }
      if (!text) return undefined as T;
      try {
        return JSON.parse(text) as T;
      } catch {
        return text as T;
      }
    },
    async watch(path, query, onEvent, signal, options = {}) {
      const res = await open('GET', path, { query: { ...query, watch: true }, signal, timeoutMs: 0, ...(options.headers ? { headers: options.headers } : {}) }, 'application/json');
      if ((res.statusCode ?? 0) >= 400) {
        const text = await readAll(res);
        throw new KubeError(res.statusCode ?? 0, '', `watch ${path}: ${res.statusCode} ${text.slice(0, 300)}`);
      }
      let buffer = '';
      try {
        for await (const chunk of res) {
          buffer += (chunk as Buffer).toString('utf8');
          let nl: number;
          while ((nl = buffer.indexOf('\n')) !== -1) {
            const line = buffer.slice(0, nl);
            buffer = buffer.slice(nl + 1);
            if (!line.trim()) continue;
            const event = JSON.parse(line) as { type: WatchEventType; object: unknown };
            onEvent(event.type, event.object);
          }
        }
      } catch (err) {
        if (!signal.aborted) throw err;
      }
    },
  };
}

/** `Warning: 299 - "text"` headers, unquoted. */
function warningsOf(res: http.IncomingMessage): string[] {
  const raw = res.headers.warning;
  const values = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
  return values.flatMap((v) => [...v.matchAll(/\d{3} \S+ "((?:[^"\\]|\\.)*)"/g)].map((m) => (m[1] ?? '').replace(/\\(.)/g, '$1')));
}

export function isNotFound(err: unknown): boolean {
  return err instanceof KubeError && err.status === 404;
}
export function isConflict(err: unknown): boolean {
  return err instanceof KubeError && err.status === 409;
}
