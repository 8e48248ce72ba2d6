/**
 * node dist/bench/webhook-decide.js: the admission handler's cost per call in-process (no HTTPS,
 * no load generator), on the caches of bench/webhook.ts, against a floor measured in the same
 * run: JSON.parse of the same body. Where bench:webhook says how far the webhook is from the
 * floor over the wire, this says how the time splits: parse, decide afresh, reuse.
 */
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { Registry } from 'prom-client';
import { createAdmissionHandler } from '../webhook/handler.js';
import { silentLogger } from '../runtime/log.js';
import { REGISTRY } from '../test/support/builders.js';
import { BENCH_REVIEW, benchCaches } from './webhook-caches.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const CALLS = Number(process.env.BENCH_CALLS ?? 20_000);

/**
 * Best of ROUNDS: CPU µs (user + system) per call of `fn`, run CALLS times. CPU time, not wall
 * time: the cores are shared, and time spent waiting for one is not the handler's.
 */
function measure(fn: (i: number) => unknown): number {
  let best = Infinity;
  for (let r = 0; r < ROUNDS; r++) {
    const start = process.cpuUsage();
    for (let i = 0; i < CALLS; i++) fn(i);
    const used = process.cpuUsage(start);
    best = Math.min(best, (used.user + used.system) / CALLS);
  }
  return best;
}

const log = silentLogger();
const cache = benchCaches(log);
const body = readFileSync(BENCH_REVIEW, 'utf8');
const handler = (reuse: boolean): ((body: string) => { status: number; body: string }) => createAdmissionHandler({
  view: cache, ...(reuse ? { generation: (namespace: string) => cache.generation(namespace) } : {}), notReady: () => cache.notSynced(),
  excludedNamespaces: new Set(['kube-system']), defaultRegistry: REGISTRY, clock: Date.now, log, registry: new Registry(),
});
const fresh = handler(false);
const reuse = handler(true);
const answer = fresh(body).body;
if (!answer.includes('"patchType":"JSONPatch"')) throw new Error(`bench pod was not restored: ${answer}`);
if (reuse(body).body !== answer) throw new Error('a reused answer differs from a fresh one');

const floor = measure(() => JSON.parse(body));
const f = measure(() => fresh(body));
const r = measure(() => reuse(body));
console.log([
  `webhook-decide — ${CALLS} calls × best of ${ROUNDS}, ${body.length}-byte AdmissionReview, answer ${answer.length} bytes`,
  `floor (JSON.parse):      ${floor.toFixed(1)} µs/call`,
  `handler, decided afresh: ${f.toFixed(1)} µs/call (${(f / floor).toFixed(2)}× the floor; deciding ${(f - floor).toFixed(1)} µs)`,
  `handler, reused:         ${r.toFixed(1)} µs/call (${(r / floor).toFixed(2)}× the floor)`,
  `load average: ${loadavg().map((l) => l.toFixed(1)).join(' ')}`,
].join('\n'));
