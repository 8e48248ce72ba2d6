/**
 * Stopping a server behind a Service without dropping requests (webhook, extender).
 *
 * When the kubelet sends SIGTERM, the pod's endpoint is being removed, but the API server,
 * kube-proxy and the scheduler learn that a moment later and keep sending requests here until
 * they do. So on SIGTERM: readiness turns false at once (`/readyz` answers 503), every request
 * keeps being answered for the drain period — with `Connection: close`, so kept-alive clients
 * reconnect to a replica that stays — and only then do the servers close. A rollout of Lazarus
 * itself thereby skips no admission. SIGINT (a person's Ctrl-C) stops without the drain.
 */
import type http from 'node:http';
import type { Logger } from 'pino';

/** Long enough for endpoint removal to reach the API server and kube-proxy; fits the manifests' terminationGracePeriodSeconds (30). */
export const DEFAULT_SHUTDOWN_DRAIN_MS = 10_000;
/** The longest drain the flag accepts: beyond the default grace period the kubelet would SIGKILL first. */
export const MAX_SHUTDOWN_DRAIN_MS = 25_000;

export type StopSignal = 'SIGTERM' | 'SIGINT';

/** Whether this process is draining, for readiness and for the `Connection: close` answers. */
export class Drain {
  private since: number | undefined;

  get draining(): boolean { return this.since !== undefined; }

  begin(now: number): void { this.since ??= now; }

  /** Undefined while serving normally; the readiness reason while draining. */
  notReadyReason(): string | undefined {
    return this.since === undefined ? undefined : 'shutting down: answering requests until the drain period ends, then exiting';
  }

  /** Wraps a request listener: while draining, answers carry `Connection: close`. */
  listener<L extends (req: http.IncomingMessage, res: http.ServerResponse) => void>(inner: L): (req: http.IncomingMessage, res: http.ServerResponse) => void {
    return (req, res) => {
      if (this.since !== undefined) res.setHeader('connection', 'close');
      inner(req, res);
    };
  }
}

/** Problems with a `--shutdown-drain` value (milliseconds). */
export function drainProblems(ms: number): string[] {
  if (!(ms >= 0)) return ['--shutdown-drain must not be negative'];
  if (ms > MAX_SHUTDOWN_DRAIN_MS) return [`--shutdown-drain must be at most ${MAX_SHUTDOWN_DRAIN_MS / 1000}s (the pods' terminationGracePeriodSeconds is 30)`];
  return [];
}

/** Resolves with the first SIGTERM or SIGINT; `stop` removes the handlers (it then never resolves). */
export function waitForStopSignal(stop?: AbortSignal): Promise<StopSignal> {
  return new Promise((resolve) => {
    const off = (): void => {
      process.off('SIGTERM', term);
      process.off('SIGINT', int);
    };
    const on = (name: StopSignal): void => { off(); resolve(name); };
    const term = (): void => on('SIGTERM');
    const int = (): void => on('SIGINT');
    process.once('SIGTERM', term);
    process.once('SIGINT', int);
    stop?.addEventListener('abort', off, { once: true });
  });
}

/**
 * After `signal`: begin the drain (readiness false), keep serving for `drainMs` unless it was
 * SIGINT or a second signal arrives, then return so the caller closes its servers.
 */
export async function drainBeforeExit(signal: StopSignal, drain: Drain, drainMs: number, log: Logger, now: () => number = Date.now): Promise<void> {
  drain.begin(now());
  if (signal === 'SIGINT' || drainMs <= 0) { log.info({ signal }, 'shutting down'); return; }
  log.info({ signal, drainMs }, 'shutting down: not ready, still answering for the drain period');
  const done = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    new Promise<void>((resolve) => { timer = setTimeout(resolve, drainMs); }),
    waitForStopSignal(done.signal).then((again) => { log.info({ signal: again }, 'second signal: ending the drain early'); }),
  ]);
  clearTimeout(timer);
  done.abort();
  log.info('drain period over: closing');
}
