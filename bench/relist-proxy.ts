/**
 * A loopback HTTPS proxy in front of kube-apiserver that can end every open watch the way the
 * API server does when a watch falls too far behind: an `ERROR` event with a 410 Status
 * ("too old resource version"), then the end of the stream. The informers behind it then
 * relist, exactly as after a real expiry. Compacting etcd does not do this reliably (the watch
 * cache keeps serving established watches), and restarting kube-apiserver would also drop the
 * lists under way; this proxy forces the one thing measured, for every informer, on demand.
 * Whole lines only are forwarded on watches, so the ERROR event never lands inside another.
 */
import https from 'node:https';
import type { AddressInfo } from 'node:net';

export interface Upstream { url: string; ca: string; cert: string; key: string }

export interface RelistProxy {
  readonly url: string;
  /** Watches opened through the proxy so far, for one collection path. */
  watchesOpened(path: string): number;
  /** Watches open now. */
  readonly watchesOpen: number;
  /** Lists (GETs that are not watches) served so far. */
  readonly lists: number;
  /** Ends every open watch with a 410 ERROR event; returns the collection path of each. */
  expireWatches(): string[];
  close(): Promise<void>;
}

const EXPIRED = `${JSON.stringify({
  type: 'ERROR',
  object: { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'too old resource version: expired by the memory bench', reason: 'Expired', code: 410 },
})}\n`;

const isWatch = (url: string): boolean => /[?&]watch=(true|1)(&|$)/.test(url);

export async function startRelistProxy(upstream: Upstream, serving: { cert: string; key: string }): Promise<RelistProxy> {
  const target = new URL(upstream.url);
  const agent = new https.Agent({ keepAlive: true, maxSockets: 64, ca: upstream.ca, cert: upstream.cert, key: upstream.key });
  const watches = new Map<() => void, string>();
  const opened = new Map<string, number>();
  let lists = 0;

  const server = https.createServer({ cert: serving.cert, key: serving.key }, (req, res) => {
    const url = req.url ?? '/';
    const watch = req.method === 'GET' && isWatch(url);
    if (req.method === 'GET' && !watch) lists++;
    const headers = { ...req.headers, host: target.host };
    const out = https.request({ hostname: target.hostname, port: target.port, path: url, method: req.method, headers, agent }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      if (!watch || up.statusCode !== 200) { up.pipe(res); return; }
      const collection = url.replace(/\?.*$/, '');
      opened.set(collection, (opened.get(collection) ?? 0) + 1);
      let pending = '';
      const expire = (): void => {
        watches.delete(expire);
        res.end(EXPIRED);
        up.destroy();
      };
      watches.set(expire, collection);
      up.setEncoding('utf8');
      up.on('data', (chunk: string) => {
        pending += chunk;
        const end = pending.lastIndexOf('\n');
        if (end === -1) return;
        res.write(pending.slice(0, end + 1));
        pending = pending.slice(end + 1);
      });
      up.on('end', () => { if (watches.delete(expire)) res.end(pending); });
      up.on('error', () => { if (watches.delete(expire)) res.destroy(); });
      res.on('close', () => { if (watches.delete(expire)) up.destroy(); });
    });
    out.on('error', (err) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`relist proxy: ${err.message}`);
    });
    req.pipe(out);
  });
  await new Promise<void>((resolve, reject) => { server.once('error', reject); server.listen(0, '127.0.0.1', () => resolve()); });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `https://127.0.0.1:${port}`,
    watchesOpened: (path) => opened.get(path) ?? 0,
    get watchesOpen() { return watches.size; },
    get lists() { return lists; },
    expireWatches() {
      const open = [...watches];
      for (const [expire] of open) expire();
      return open.map(([, path]) => path);
    },
    async close() {
      for (const expire of [...watches.keys()]) expire();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };
}

