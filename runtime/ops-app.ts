import express, { type Express } from 'express';
import type { Registry } from 'prom-client';

export interface OpsOptions {
  registry: Registry;
  /** Undefined while ready; otherwise the reason the component is not ready yet. */
  notReadyReason: () => string | undefined;
}

/** The routes every Lazarus server answers besides its own: /healthz, /readyz, /metrics. */
export function opsApp(options: OpsOptions, app: Express = express()): Express {
  app.disable('x-powered-by');
  app.get('/healthz', (_req, res) => { res.type('text/plain').send('ok'); });
  app.get('/readyz', (_req, res) => {
    const reason = options.notReadyReason();
    if (reason === undefined) res.type('text/plain').send('ok');
    else res.status(503).type('text/plain').send(`not ready: ${reason}`);
  });
  app.get('/metrics', async (_req, res) => {
    res.type(options.registry.contentType).send(await options.registry.metrics());
  });
  return app;
}
