/**
 * The extender's HTTP(S) server. POST /filter and /prioritize are served by plain node:http
 * with a hand-rolled body reader (the hot path: one Buffer; NodeNames requests answered in place
 * without decoding their names, names-wire.ts; otherwise one JSON.parse, and for full-Nodes
 * filter answers the request's own bytes spliced back rather than re-encoded); everything else
 * (/healthz, /readyz, /metrics) goes to the shared express ops app.
 */
import { isAscii } from 'node:buffer';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { opsApp } from '../runtime/ops-app.js';
import type { NodeFacts } from '../api/compat.js';
import type { EffectivePolicy } from '../api/types.js';
import { createJudgeCache, errorFilterResult, filter, filterSpans, prioritize, prioritizeSpans, validateArgs, type Lookups, type Tally } from './decide.js';
import { extenderMetrics, type Outcome } from './metrics.js';
import type { NameIndex } from './name-index.js';
import { NamesEncoder, SpanScratch, readNamesArgs, type NamesArgs, type Reply } from './names-wire.js';
import type { ExtenderFilterResult, Verb, WirePod } from './protocol.js';
import { encodeNodeList, locateItems } from './raw-json.js';

/** 30 MB carries about 5,000 full Nodes; kube-scheduler sends at most numFeasibleNodesToFind. */
export const DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024;

export interface ExtenderDeps {
  policyFor(pod: WirePod): EffectivePolicy;
  /** Absent without a node cache (no --kubeconfig): NodeNames filter requests get an Error. */
  nodeByName?: ((name: string) => NodeFacts | undefined) | undefined;
  /** Why the node cache cannot answer NodeNames requests yet; undefined when it can. */
  nodeCacheProblem?: (() => string | undefined) | undefined;
  /**
   * The same nodes as nodeByName, indexed for NodeNames requests read in place (names-wire.ts);
   * without it they are decoded, which costs a string per name.
   */
  nameIndex?: (() => NameIndex) | undefined;
  /** Undefined when ready; else why not (e.g. caches not synced). */
  notReadyReason?: () => string | undefined;
  logger: Logger;
  registry: Registry;
  maxBodyBytes?: number;
  /**
   * Every request decoded by JSON.parse and every answer encoded by JSON.stringify, without the
   * byte-level paths (names-wire.ts, raw-json.ts): the baseline bench:extender measures them against.
   */
  plainJson?: boolean;
  /** Monotonic seconds, for the latency histogram only; injected so tests need no real clock. */
  now?: () => number;
}

export type RequestListener = (req: http.IncomingMessage, res: http.ServerResponse) => void;

const VERBS: Readonly<Record<string, Verb>> = { '/filter': 'filter', '/prioritize': 'prioritize' };

function monotonicSeconds(): number {
  return Number(process.hrtime.bigint()) / 1e9;
}

type Body = { ok: true; data: Buffer } | { ok: false; status: number; error: string };

/** Transport rules in one place: method, content type, size limit. */
function readBody(req: http.IncomingMessage, limit: number): Promise<Body> {
  return new Promise((resolve) => {
    if (req.method !== 'POST') { resolve({ ok: false, status: 405, error: `method ${req.method ?? ''} not allowed; use POST` }); return; }
    const type = req.headers['content-type'];
    if (type !== undefined && !/^application\/(?:[\w.+-]+\+)?json\b/i.test(type)) {
      resolve({ ok: false, status: 415, error: `content-type ${type} is not application/json` });
      return;
    }
    const declared = Number(req.headers['content-length']);
    if (declared > limit) { resolve({ ok: false, status: 413, error: `request body of ${declared} bytes exceeds the limit of ${limit}` }); return; }
    // With a Content-Length (kube-scheduler always sends one) the body lands in one buffer of
    // that size as it arrives: no list of 64 kB chunks to concatenate afterwards.
    const whole = Number.isSafeInteger(declared) && declared > 0 ? Buffer.allocUnsafe(declared) : undefined;
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (body: Body): void => {
      if (done) return;
      done = true;
      req.off('data', onData);
      resolve(body);
    };
    const onData = (chunk: Buffer): void => {
      if (size + chunk.length > limit) { finish({ ok: false, status: 413, error: `request body exceeds the limit of ${limit} bytes` }); return; }
      if (whole && size + chunk.length <= whole.length) chunk.copy(whole, size);
      else chunks.push(chunk);
      size += chunk.length;
    };
    req.on('data', onData);
    req.on('end', () => {
      if (whole && chunks.length === 0) finish({ ok: true, data: whole.subarray(0, size) });
      else finish({ ok: true, data: Buffer.concat(whole ? [whole.subarray(0, size - chunks.reduce((n, c) => n + c.length, 0)), ...chunks] : chunks) });
    });
    req.on('error', (err) => finish({ ok: false, status: 400, error: `reading the request failed: ${err.message}` }));
    // A client that goes away mid-body never sends 'end'.
    req.on('close', () => finish({ ok: false, status: 400, error: 'the client closed the connection before the body was complete' }));
  });
}

function send(res: http.ServerResponse, status: number, payload: unknown, headers: Record<string, string> = {}): void {
  // Encode once: byteLength + a string write would walk a 30 MB answer twice.
  sendBytes(res, status, Buffer.from(JSON.stringify(payload), 'utf8'), headers);
}

function sendBytes(res: http.ServerResponse, status: number, data: Buffer, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': data.length, ...headers });
  res.end(data);
}

/** Writes pre-encoded parts as one response without joining them into one buffer first. */
function sendParts(res: http.ServerResponse, parts: readonly Buffer[]): void {
  let length = 0;
  for (const part of parts) length += part.length;
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': length });
  res.cork();
  for (const part of parts) res.write(part);
  res.end();
  process.nextTick(() => res.uncork());
}

/**
 * A full-Nodes filter result whose Nodes.items are the passing items' original request bytes
 * (raw-json.ts); undefined when the body's layout cannot be mapped with certainty.
 */
function spliced(body: Buffer, latin1: string, count: number, kept: number[], result: ExtenderFilterResult): Buffer[] | undefined {
  const spans = locateItems(latin1);
  if (!spans || spans.length !== count || !result.Nodes) return undefined;
  const { Nodes: list, ...rest } = result;
  const tail = JSON.stringify(rest);
  return [Buffer.from('{"Nodes":'), ...encodeNodeList(body, spans, kept, list), Buffer.from(`,${tail.slice(1)}`)];
}

function podKey(pod: WirePod): string {
  const m = pod.metadata;
  return `${typeof m?.namespace === 'string' ? m.namespace : ''}/${typeof m?.name === 'string' ? m.name : ''}`;
}

export interface ExtenderServer {
  /** The node:http request listener: verbs on the hot path, ops routes through express. */
  listener: RequestListener;
  /** Express app for /healthz, /readyz, /metrics (also mountable on a separate metrics port). */
  ops: RequestListener;
}

export function createExtenderServer(deps: ExtenderDeps): ExtenderServer {
  const limit = deps.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const now = deps.now ?? monotonicSeconds;
  const metrics = extenderMetrics(deps.registry);
  const log = deps.logger;
  const lookups: Lookups = {
    policyFor: (pod) => deps.policyFor(pod), nodeByName: deps.nodeByName, nodeCacheProblem: deps.nodeCacheProblem,
    judges: createJudgeCache(), nameIndex: deps.nameIndex,
  };
  // Reused by every request: each is answered synchronously once its body is in.
  const scratch = new SpanScratch();
  const encoder = new NamesEncoder();
  const app = opsApp({ registry: deps.registry, notReadyReason: deps.notReadyReason ?? (() => undefined) });
  const ops: RequestListener = (req, res) => { app(req, res); };

  function logOutcome(verb: Verb, pod: WirePod, mode: 'nodes' | 'names', tally: Tally): void {
    if (!log.isLevelEnabled('debug')) return;
    // Debug, not info: two lines per scheduled pod cost the scheduling cycle a synchronous
    // write each (bench/RESULTS.md "Scheduler"); the outcome stays in the metrics (requests
    // by outcome, nodes filtered by rule) and the reasons in the scheduler's pod events.
    if (tally.restored) log.debug({ verb, pod: podKey(pod), mode, nodes: tally.nodes, passed: tally.passed, unknown: tally.unknown, failedByRule: tally.byRule }, `${verb} for a restored pod`);
    else log.debug({ verb, pod: podKey(pod), nodes: tally.nodes }, `${verb}: not restored, all nodes pass`);
  }

  /** A NodeNames request answered in place (names-wire.ts); undefined: the ordinary path must. */
  function answerInPlace(verb: Verb, args: NamesArgs, res: http.ServerResponse): Tally | undefined {
    let tally: Tally | undefined;
    let reply: Reply | undefined;
    if (verb === 'filter') {
      tally = filterSpans(args.pod, args.names, lookups, encoder.filterSink(args));
      if (tally) reply = encoder.filterAnswer(args, !tally.restored);
    } else {
      tally = prioritizeSpans(args.pod, args.names, lookups, encoder.scoreWriter(args));
      if (tally) reply = encoder.prioritizeAnswer();
    }
    if (reply) {
      // 'close' follows 'finish' (the socket has written the bytes) or an aborted response.
      res.once('close', reply.release);
      sendBytes(res, 200, reply.data);
    } else {
      encoder.abandon();
    }
    if (tally) logOutcome(verb, args.pod, 'names', tally);
    return tally;
  }

  async function serve(verb: Verb, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const start = now();
    const done = (outcome: Outcome, tally?: Tally): void => metrics.observe(verb, outcome, now() - start, tally);

    const body = await readBody(req, limit);
    if (!body.ok) {
      // The unread rest of a refused body must not be parsed as the next request: close. Discard
      // what is still coming rather than reset the socket, so the client reads the answer.
      send(res, body.status, { Error: body.error }, { connection: 'close', ...(body.status === 405 ? { allow: 'POST' } : {}) });
      req.resume();
      done('invalid');
      log.warn({ verb, status: body.status, error: body.error }, 'extender request refused');
      return;
    }
    const names = deps.plainJson ? undefined : readNamesArgs(body.data, scratch);
    let inPlace: Tally | undefined;
    try {
      inPlace = names && answerInPlace(verb, names, res);
    } catch (err) {
      // Should not happen; the ordinary path still answers.
      log.error({ verb, err: String(err) }, 'extender in-place answer failed; decoding the request instead');
      if (res.headersSent) return;
    }
    if (inPlace) {
      done(inPlace.restored ? 'restored' : 'not-restored', inPlace);
      return;
    }
    let parsed: unknown;
    // Kubernetes JSON is nearly always pure ASCII: then latin1 decoding is a plain copy, and
    // the same string serves raw-json.ts (which wants one character per byte).
    const ascii = isAscii(body.data);
    const text = body.data.toString(ascii ? 'latin1' : 'utf8');
    const latin1 = (): string => (ascii ? text : body.data.toString('latin1'));
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      send(res, 400, { Error: `request body is not JSON: ${err instanceof Error ? err.message : String(err)}` });
      done('invalid');
      return;
    }
    const valid = validateArgs(parsed);
    if (!valid.ok) {
      // Filter has an Error field for this; HostPriorityList has none, so prioritize says 400.
      if (verb === 'filter') send(res, 200, errorFilterResult(valid.error));
      else send(res, 400, { Error: valid.error });
      done('invalid');
      log.warn({ verb, error: valid.error }, 'extender request invalid');
      return;
    }
    const request = valid.request;
    try {
      let noCache = false;
      let tally: Tally;
      if (verb === 'filter') {
        const outcome = filter(request, lookups);
        ({ tally } = outcome);
        noCache = outcome.noCache === true;
        const raw = !deps.plainJson && request.mode === 'nodes' && outcome.kept && outcome.result.Nodes ? spliced(body.data, latin1(), request.items.length, outcome.kept, outcome.result) : undefined;
        if (raw) sendParts(res, raw);
        else send(res, 200, outcome.result);
      } else {
        const outcome = prioritize(request, lookups);
        ({ tally } = outcome);
        send(res, 200, outcome.result);
      }
      done(noCache ? 'no-cache' : tally.restored ? 'restored' : 'not-restored', tally);
      if (noCache) log.warn({ verb, pod: podKey(request.pod) }, 'NodeNames filter request answered with an Error: no usable node cache');
      else logOutcome(verb, request.pod, request.mode, tally);
    } catch (err) {
      // Should not happen (inputs are read defensively); still never crash, always answer.
      const error = `internal error: ${err instanceof Error ? err.message : String(err)}`;
      if (verb === 'filter') send(res, 200, errorFilterResult(error));
      else send(res, 500, { Error: error });
      done('error');
      log.error({ verb, err: String(err) }, 'extender failed');
    }
  }

  const listener: RequestListener = (req, res) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const verb = VERBS[q === -1 ? url : url.slice(0, q)];
    if (!verb) { ops(req, res); return; }
    serve(verb, req, res).catch((err: unknown) => {
      log.error({ err: String(err) }, 'extender request failed');
      if (!res.headersSent) send(res, 500, { Error: 'internal error' });
      else res.destroy();
    });
  };
  return { listener, ops };
}

export interface TlsFiles { cert: string | Buffer; key: string | Buffer }

export interface StartOptions extends ExtenderDeps {
  port?: number;
  host?: string;
  tls?: TlsFiles;
}

export interface RunningExtender {
  port: number;
  /** The https.Server when TLS is on (for setSecureContext on certificate reload). */
  server: http.Server | https.Server;
  close(): Promise<void>;
}

/** Keep connections open longer than Go's idle-connection timeout (90 s) so the client closes first. */
const KEEP_ALIVE_MS = 95_000;

/** Starts the extender on `host:port` (port 0: any free port) and resolves once it listens. */
export function startExtender(options: StartOptions): Promise<RunningExtender> {
  const { listener } = createExtenderServer(options);
  return listen(listener, options.port ?? 0, options.host ?? '127.0.0.1', options.tls);
}

export function listen(listener: RequestListener, port: number, host: string, tls?: TlsFiles): Promise<RunningExtender> {
  const server = tls ? https.createServer({ cert: tls.cert, key: tls.key }, listener) : http.createServer(listener);
  // Bytes that are not HTTP at all: answer in the same JSON shape as every other refusal.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    if (!socket.writable || err.code === 'ECONNRESET') { socket.destroy(); return; }
    const text = JSON.stringify({ Error: `malformed HTTP request: ${err.code ?? err.message}` });
    socket.end(`HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`);
  });
  server.keepAliveTimeout = KEEP_ALIVE_MS;
  server.headersTimeout = KEEP_ALIVE_MS + 5_000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve({
        port: (server.address() as AddressInfo).port,
        server,
        close: () => new Promise<void>((done) => {
          server.close(() => done());
          server.closeAllConnections();
        }),
      });
    });
  });
}
