/** A tiny HTTPS client for server tests: raw bodies in, status and text out. */
import https from 'node:https';

export interface Reply { status: number; body: string; headers: Record<string, string | string[] | undefined> }

export function post(port: number, path: string, body: string | Buffer, options: { ca: string; agent?: https.Agent; contentType?: string | null; method?: string } ): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (options.contentType !== null) headers['content-type'] = options.contentType ?? 'application/json';
    const req = https.request({ host: '127.0.0.1', port, path, method: options.method ?? 'POST', ca: options.ca, agent: options.agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Deterministic PRNG (mulberry32) so a failing fuzz case can be replayed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Mutates a JSON value at one random place: drop a key, change a type, or blank a value. */
export function mutate(value: unknown, rand: () => number): unknown {
  const replacements = [null, 0, -1, 1e308, '', 'x'.repeat(rand() * 300), true, [], {}, [null], { a: null }];
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
  const paths: (string | number)[][] = [];
  const walk = (v: unknown, path: (string | number)[]): void => {
    paths.push(path);
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, [...path, i]));
    else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, [...path, k]);
  };
  walk(value, []);
  const root = structuredClone(value);
  const path = pick(paths);
  if (path.length === 0) return pick(replacements);
  let parent = root as Record<string | number, unknown>;
  for (const step of path.slice(0, -1)) parent = parent[step] as Record<string | number, unknown>;
  const last = path[path.length - 1] as string | number;
  if (rand() < 0.3 && !Array.isArray(parent)) delete parent[last];
  else parent[last] = pick(replacements);
  return root;
}
