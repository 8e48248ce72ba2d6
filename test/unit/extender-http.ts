/** A tiny keep-alive HTTP client for the extender tests (raw bodies, any method and headers). */
import http from 'node:http';

export interface Reply { status: number; headers: http.IncomingHttpHeaders; text: string; socketReused: boolean }

export function request(agent: http.Agent, port: number, path: string, body: string | Buffer | undefined, options: { method?: string; headers?: Record<string, string> } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1', port, path, agent, method: options.method ?? 'POST',
      headers: { ...(body === undefined ? {} : { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) }), ...options.headers },
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8'), socketReused: req.reusedSocket }));
      res.on('error', reject);
    });
    // The server may answer (413, 415) and close before the body is sent: that is a reply, not a failure.
    req.on('error', reject);
    req.end(body);
  });
}

export function postJson(agent: http.Agent, port: number, path: string, payload: unknown): Promise<Reply> {
  return request(agent, port, path, JSON.stringify(payload));
}
