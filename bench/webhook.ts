/**
 * npm run bench:webhook — admission throughput and latency of the real webhook (caches loaded
 * with 30,000 Checkpoints, 50,000 ReplicaSets, 5,000 Nodes) against a floor measured in the
 * same run: a bare node:https server that parses the same body and sends an answer of the
 * same size. The webhook's transport answers the bodies of one event-loop turn together, which a
 * bare server does not; a second floor, parsing and answering through that same transport, says
 * what the decisions cost apart from it. Server and load generator run in separate processes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { testTls } from '../test/support/tls.js';
import { recordSection } from './results.js';
import { procStatus } from './proc.js';

const DURATION_S = Number(process.env.BENCH_SECONDS ?? 10);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const WARMUP_S = 3;
const CONNECTIONS = 50;

interface Result { rps: number; p50: number; p99: number; errors: number; non2xx: number; cpuUs: number }

/** The server's CPU time so far (user + system, µs), from /proc: /proc counts in USER_HZ, 100 a second on Linux. */
function cpuTimeUs(pid: number | undefined): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

async function startChild(mode: string, dir: string, answerSize: number): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, [...(process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean), new URL('./webhook-server.js', import.meta.url).pathname, mode, dir, String(answerSize)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => { out += d.toString(); const m = /port=(\d+)/.exec(out); if (m) resolve(Number(m[1])); });
    child.once('exit', (code) => reject(new Error(`${mode} server exited with ${code}`)));
  });
  return { child, port };
}

/**
 * `cpuUs` is the server's CPU time per answered request: on shared cores a neighbour's burst
 * moves req/s from run to run, far less what a request costs the server.
 */
async function load(server: { port: number; child: ChildProcess }, body: string, overallRate?: number, seconds = DURATION_S): Promise<Result> {
  const { port } = server;
  const cpuBefore = cpuTimeUs(server.child.pid);
  const r = await autocannon({
    url: `https://127.0.0.1:${port}/mutate`, method: 'POST', body, headers: { 'content-type': 'application/json' },
    connections: overallRate ? 10 : CONNECTIONS, duration: seconds, ...(overallRate ? { overallRate } : {}),
  });
  const cpuUs = (cpuTimeUs(server.child.pid) - cpuBefore) / Math.max(1, r.requests.total);
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.timeouts, non2xx: r.non2xx, cpuUs };
}

function rssMb(pid: number): { rss: number; peak: number } {
  const mb = (bytes: number): number => Math.round(bytes / 1024 / 1024);
  return { rss: mb(procStatus(pid, 'VmRSS')), peak: mb(procStatus(pid, 'VmHWM')) };
}

/** The run with the median requests per second, and the median CPU per request, of interleaved rounds. */
function median(results: readonly Result[]): Result {
  const mid = (by: (r: Result) => number): Result => [...results].sort((a, b) => by(a) - by(b))[Math.floor(results.length / 2)] as Result;
  return { ...mid((r) => r.rps), cpuUs: mid((r) => r.cpuUs).cpuUs };
}

async function main(dir: string): Promise<void> {
  const tls = testTls();
  writeFileSync(join(dir, 'tls.crt'), tls.cert);
  writeFileSync(join(dir, 'tls.key'), tls.key);
  const body = readFileSync('test/fixtures/admission-review-replicaset.json', 'utf8');

  const servers: ChildProcess[] = [];
  try {
    const lazarus = await startChild('lazarus', dir, 0);
    servers.push(lazarus.child);
    // one warm-up request tells us the answer's size, so the floor answers with as many bytes
    const sample = await fetchAnswer(lazarus.port, body);
    if (!sample.includes('"patchType":"JSONPatch"')) throw new Error(`bench pod was not restored: ${sample}`);
    const floor = await startChild('floor', dir, sample.length);
    servers.push(floor.child);
    // The same pod every time is a burst of siblings; a stream of pods that all differ gets no reuse.
    const fresh = await startChild('lazarus-fresh', dir, 0);
    servers.push(fresh.child);
    const batchedFloor = await startChild('floor-batched', dir, sample.length);
    servers.push(batchedFloor.child);
    // The same patch (warnings give ages, which differ between the two servers' clocks).
    const patchOf = (a: string): string | undefined => /"patch":"([^"]*)"/.exec(a)?.[1];
    const freshAnswer = await fetchAnswer(fresh.port, body);
    if (patchOf(freshAnswer) !== patchOf(sample)) throw new Error(`a fresh decision patched otherwise than the reused one: ${freshAnswer}`);

    for (const server of [floor, lazarus, fresh, batchedFloor]) await load(server, body, undefined, WARMUP_S);
    // Rounds interleave the servers, so a neighbour's burst on the shared cores lands on all of
    // them, not on one; each figure is the median of its rounds.
    const runs = { floor: [] as Result[], lazarus: [] as Result[], fresh: [] as Result[], batchedFloor: [] as Result[] };
    for (let round = 0; round < ROUNDS; round++) {
      runs.floor.push(await load(floor, body));
      runs.lazarus.push(await load(lazarus, body));
      runs.fresh.push(await load(fresh, body));
      runs.batchedFloor.push(await load(batchedFloor, body));
    }
    const f = median(runs.floor);
    const l = median(runs.lazarus);
    const lFresh = median(runs.fresh);
    const fb = median(runs.batchedFloor);
    const half = Math.round(f.rps / 2);
    const lHalf = await load(lazarus, body, half);
    const lFreshHalf = await load(fresh, body, half);
    const mem = rssMb(lazarus.child.pid ?? 0);

    const met = (ok: boolean): string => (ok ? 'met' : 'MISSED');
    const ratio = l.rps / f.rps;
    const freshRatio = lFresh.rps / f.rps;
    const lines = [
      `bench:webhook — ${new Date().toISOString()} — median of ${ROUNDS} interleaved rounds of ${DURATION_S}s, ${CONNECTIONS} connections, ${body.length}-byte AdmissionReview, answer ${sample.length} bytes`,
      'caches: 30,000 Checkpoints, 50,001 ReplicaSets, 5,001 Deployments, 5,000 Nodes',
      `floor (bare node:https + JSON.parse): ${f.rps.toFixed(0)} req/s, p50 ${f.p50} ms, p99 ${f.p99} ms`,
      `lazarus webhook:                     ${l.rps.toFixed(0)} req/s, p50 ${l.p50} ms, p99 ${l.p99} ms, errors ${l.errors + l.non2xx}`,
      `throughput ratio: ${ratio.toFixed(2)} (target ≥ 0.7: ${met(ratio >= 0.7)})`,
      `every admission decided afresh (decision reuse off, as for pods that all differ): ${lFresh.rps.toFixed(0)} req/s, p50 ${lFresh.p50} ms, p99 ${lFresh.p99} ms, errors ${lFresh.errors + lFresh.non2xx}`,
      `decided-afresh throughput ratio: ${freshRatio.toFixed(2)} (target ≥ 0.7: ${met(freshRatio >= 0.7)})`,
      `rounds, req/s floor / lazarus / afresh / batched floor: ${Array.from({ length: ROUNDS }, (_, i) => [runs.floor, runs.lazarus, runs.fresh, runs.batchedFloor].map((r) => r[i]?.rps.toFixed(0)).join(' / ')).join(', ')}`,
      `at half the floor's max rate (${half} req/s): lazarus p50 ${lHalf.p50} ms, p99 ${lHalf.p99} ms (target p99 ≤ 5 ms: ${met(lHalf.p99 <= 5)}), achieved ${lHalf.rps.toFixed(0)} req/s`,
      `at half the floor's max rate, decided afresh: p50 ${lFreshHalf.p50} ms, p99 ${lFreshHalf.p99} ms (target p99 ≤ 5 ms: ${met(lFreshHalf.p99 <= 5)}), achieved ${lFreshHalf.rps.toFixed(0)} req/s`,
      `server CPU per request (steadier than req/s on shared cores): floor ${f.cpuUs.toFixed(0)} µs, lazarus ${l.cpuUs.toFixed(0)} µs (ratio ${(f.cpuUs / l.cpuUs).toFixed(2)}), decided afresh ${lFresh.cpuUs.toFixed(0)} µs (ratio ${(f.cpuUs / lFresh.cpuUs).toFixed(2)})`,
      `floor through the webhook's own transport (answers a turn's bodies together): ${fb.rps.toFixed(0)} req/s, ${fb.cpuUs.toFixed(0)} µs CPU per request`,
      `  the decisions apart from the transport, against it: sibling reuse ${(l.rps / fb.rps).toFixed(2)} by req/s, ${(fb.cpuUs / l.cpuUs).toFixed(2)} by CPU; decided afresh ${(lFresh.rps / fb.rps).toFixed(2)} by req/s, ${(fb.cpuUs / lFresh.cpuUs).toFixed(2)} by CPU`,
      `webhook RSS: ${mem.rss} MB now, ${mem.peak} MB peak (target ≤ 400 MB: ${met(mem.peak <= 400)})`,
      `load average: ${loadavg().map((x) => x.toFixed(1)).join(' ')} (2 shared cores)`,
    ];
    console.log(lines.join('\n'));
    recordSection('Webhook', [
      '`npm run bench:webhook`: autocannon over HTTPS on loopback against the real webhook (server and load generator in',
      'separate processes), and against the floor: a bare node:https server that reads and JSON.parses the same body and',
      'answers a constant AdmissionReview of the same size. The pod is the recorded AdmissionReview of a ReplicaSet pod, sent',
      'again and again: a burst of sibling pods (a scale-up, a drain), which reuse one decision while the caches and the clock',
      'allow. The "decided afresh" lines turn reuse off: the cost for pods that all differ (issue 15: a drain of many workloads).',
      'The webhook answers the bodies that arrive in one event-loop turn together (webhook/admission.ts); the "batched floor"',
      'parses and answers a constant through that same transport, so the decisions\' own cost shows against it.',
      'The servers run side by side and are loaded in turn, round after round; each figure is the median of its rounds.',
      `Load average when the run ended: ${loadavg().map((l) => l.toFixed(1)).join(' ')} (2 shared cores).`,
      '', '```', ...lines, '```',
    ].join('\n'));
  } finally {
    for (const child of servers) child.kill();
  }
}

async function fetchAnswer(port: number, body: string): Promise<string> {
  const r = await autocannon({ url: `https://127.0.0.1:${port}/mutate`, method: 'POST', body, headers: { 'content-type': 'application/json' }, amount: 1, connections: 1,
    setupClient: (client) => { client.on('body', (b: Buffer) => { answer = b.toString(); }); } });
  void r;
  return answer;
}
let answer = '';

// The servers' TLS files, removed when the run ends however it ends.
const dir = mkdtempSync(join(tmpdir(), 'lazarus-bench-'));
try {
  await main(dir);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
