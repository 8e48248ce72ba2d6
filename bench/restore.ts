/**
 * `npm run bench:restore` — on real nodes (test/harness/real-node.ts: two containerd 2.3.7
 * nodes and one CRI-O node, Lazarus installed from its own image), how much sooner a pod of a
 * slow-to-warm app answers again when Lazarus restores it than when it starts cold.
 *
 * The app (busybox awk, the same image the harness pushes) builds a 2M-entry table (~10 s of CPU)
 * and then prints `ready N <value>` every 100 ms. Each round makes a fresh Deployment on node-a,
 * waits for its answers, then (restore path only) checkpoints it on demand with
 * `lazarus checkpoint pod --wait`, cordons node-a (which takes a drain checkpoint: the bench waits
 * for it, so nothing is dumping while the clock runs) and deletes the pod. Time to first answer =
 * the DELETE being sent → the runtime's timestamp of the replacement's first `ready` line written
 * after it (the log read with `timestamps=true`; a restored log begins with the archived lines,
 * which carry their original, earlier times). Cold rounds do the same to a Deployment without
 * `lazarus.dev/restore: enabled`. node-c (CRI-O) is tainted for the whole run, so every
 * replacement lands on node-b, where busybox is pulled beforehand.
 *
 * Then, for a process with 512 MiB resident (busybox `dd bs=512M` blocked writing into a pipe
 * nobody reads; VmRSS read from /proc on the host), each separately: the kubelet checkpoint through
 * the API server, the agent's own build + push of that archive (its
 * `lazarus_agent_archive_seconds` histogram), and `lazarus agent build --insecure` on the host
 * against a hard link to the same archive, pushed to a repository of its own (so every byte goes).
 *
 * Writes the `Restore` section of bench/RESULTS.md (`--no-write` to skip). Not a test: no
 * thresholds, nothing fails on a slow figure.
 */
import { execFile } from 'node:child_process';
import { link, readdir, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { recordSection } from './results.js';
import { firstAnswerSince, histogramTotals, median, parseTimestampedLog } from './restore-times.js';
import type { ControlPlane } from '../test/harness/control-plane.js';
import { realNodePreflight, type RealCluster, type RealNode } from '../test/harness/real-node.js';
import { startRealLazarus, type RealLazarus } from '../test/harness/install.js';
import { createNamespace, waitFor } from '../test/harness/wait.js';
import { preferringDeployment } from '../test/harness/counter-scenario.js';
import * as K from '../api/keys.js';
import type { Checkpoint } from '../api/types.js';

const execFileP = promisify(execFile);
const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../cli/main.js');
const NS = 'bench';
const ORIGIN = 'node-a';
const TARGET = 'node-b';
const AWAY = 'node-c';
const MiB = 1 << 20;
const BIG_BYTES = 512 * MiB;

/** Builds a 2M-entry table (each entry a few rounds of hashing), then answers from it every 100 ms. */
const SLOW_APP = 'awk \'BEGIN{h=7; for(i=0;i<2000000;i++){ for(j=0;j<8;j++) h=(h*31+i+j)%1000003; t[i]=h }; n=0; while(1){ print "ready", n, t[n%2000000]; fflush(); n++; system("sleep 0.1") } }\'';
/** 512 MiB read into one buffer, then a write nobody reads: the buffer stays resident. */
const BIG_APP = `dd if=/dev/zero bs=${String(BIG_BYTES)} count=1 2>/dev/null | sleep 1000000`;

interface Pod {
  metadata: { name: string; annotations?: Record<string, string>; deletionTimestamp?: string; creationTimestamp?: string };
  spec: { nodeName?: string };
  status?: { phase?: string; conditions?: Array<{ type: string; lastTransitionTime?: string }>; containerStatuses?: Array<{ state?: { running?: { startedAt?: string } } }> };
}

type Path = 'cold' | 'restore';
/** Where the time went, from the replacement's own (whole-second) timestamps, relative to the DELETE. */
interface Steps { created?: number; scheduled?: number; running?: number }
interface Round { path: Path; round: number; ms: number; steps: Steps; node: string; first: string; before?: string; restoredFrom?: string; demandMs?: number; drainWaitMs?: number }

const secs = (ms: number): string => (ms / 1000).toFixed(2);
const stepText = (s: Steps): string => (['created', 'scheduled', 'running'] as const).map((k) => `${k} ${s[k] === undefined ? '?' : `+${String(Math.round((s[k] ?? 0) / 1000))}`}`).join(', ');
const log = (line: string): void => { process.stderr.write(`${line}\n`); };

class Bench {
  constructor(private readonly cp: ControlPlane, private readonly cluster: RealCluster, private readonly signal: AbortSignal) {}

  private get client(): ControlPlane['client'] { return this.cp.client; }

  private wait<T>(check: () => Promise<T | undefined | false>, description: string, timeoutMs = 120_000, intervalMs = 100): Promise<T> {
    return waitFor(check, { timeoutMs, intervalMs, description, signal: this.signal });
  }

  async createDeployment(name: string, command: string, restore: boolean, preferred: string): Promise<void> {
    await this.client.request('POST', `/apis/apps/v1/namespaces/${NS}/deployments`, {
      // Burstable, as an app with a request is: not the 2 CPU shares of a BestEffort pod.
      body: preferringDeployment({ name, image: this.cluster.busybox, command, restore, preferredNode: preferred, cpuRequest: '100m' }),
    });
  }

  async deleteDeployment(name: string): Promise<void> {
    await this.client.request('DELETE', `/apis/apps/v1/namespaces/${NS}/deployments/${name}`, { query: { propagationPolicy: 'Background' } });
    await this.wait(async () => (await this.pods(name, true)).length === 0, `the pods of ${name} to go`, 60_000, 250);
  }

  async pods(app: string, includeTerminating = false): Promise<Pod[]> {
    const items = (await this.client.request<{ items: Pod[] }>('GET', `/api/v1/namespaces/${NS}/pods`, { query: { labelSelector: `app=${app}` } })).items;
    return includeTerminating ? items : items.filter((p) => !p.metadata.deletionTimestamp);
  }

  runningPod(app: string, not?: string): Promise<Pod> {
    return this.wait(async () => {
      const pods = (await this.pods(app)).filter((p) => p.metadata.name !== not);
      return pods.length === 1 && pods[0]?.status?.containerStatuses?.[0]?.state?.running ? pods[0] : undefined;
    }, `a running pod of ${app}${not ? ` other than ${not}` : ''}`);
  }

  async logLines(pod: string): Promise<ReturnType<typeof parseTimestampedLog>> {
    const text = await this.client.request<string>('GET', `/api/v1/namespaces/${NS}/pods/${pod}/log`, { query: { timestamps: true } });
    return parseTimestampedLog(String(text));
  }

  firstAnswer(pod: string, sinceMs: number): Promise<NonNullable<ReturnType<typeof firstAnswerSince>>> {
    return this.wait(async () => firstAnswerSince(await this.logLines(pod), sinceMs), `${pod} to answer`, 120_000, 100);
  }

  cordon(node: string, on: boolean): Promise<unknown> {
    return this.client.request('PATCH', `/api/v1/nodes/${node}`, { body: { spec: { unschedulable: on } }, contentType: 'application/merge-patch+json' });
  }

  taint(node: string, on: boolean): Promise<unknown> {
    return this.client.request('PATCH', `/api/v1/nodes/${node}`, { body: { spec: { taints: on ? [{ key: 'lazarus.bench/away', effect: 'NoSchedule' }] : null } }, contentType: 'application/merge-patch+json' });
  }

  async readyCheckpoints(sourcePod: string): Promise<Checkpoint[]> {
    return (await this.client.request<{ items: Checkpoint[] }>('GET', `/apis/lazarus.dev/v1alpha1/namespaces/${NS}/checkpoints`)).items
      .filter((c) => c.spec.sourcePod === sourcePod && c.status?.phase === 'Ready');
  }

  /** busybox in the node's image store before any timed start there. */
  async prePull(node: string): Promise<void> {
    const name = `pull-${node}`;
    await this.client.request('POST', `/api/v1/namespaces/${NS}/pods`, {
      body: { apiVersion: 'v1', kind: 'Pod', metadata: { name }, spec: { nodeName: node, restartPolicy: 'Never', containers: [{ name: 'c', image: this.cluster.busybox, command: ['true'] }] } },
    });
    await this.wait(async () => (await this.client.request<Pod>('GET', `/api/v1/namespaces/${NS}/pods/${name}`)).status?.phase === 'Succeeded', `busybox on ${node}`);
    await this.client.request('DELETE', `/api/v1/namespaces/${NS}/pods/${name}`);
  }

  /** One round: a fresh Deployment warms up on node-a, then its pod is deleted and replaced. */
  async round(path: Path, round: number): Promise<Round> {
    const app = `${path}-${String(round)}`;
    await this.createDeployment(app, SLOW_APP, path === 'restore', ORIGIN);
    try {
      const first = await this.runningPod(app);
      if (first.spec.nodeName !== ORIGIN) throw new Error(`${first.metadata.name} started on ${first.spec.nodeName ?? '?'}, not ${ORIGIN}`);
      const warmSince = Date.now();
      await this.firstAnswer(first.metadata.name, 0);
      log(`[bench] ${app}: ${first.metadata.name} warm on ${ORIGIN} (answering ${secs(Date.now() - warmSince)} s after it ran)`);
      await new Promise((r) => setTimeout(r, 1000));

      let demandMs: number | undefined;
      let drainWaitMs: number | undefined;
      if (path === 'restore') {
        const t = performance.now();
        const { stdout } = await execFileP(process.execPath, [CLI, 'checkpoint', 'pod', `${NS}/${first.metadata.name}`, '--wait', '--timeout=120s', `--kubeconfig=${this.cp.kubeconfigPath}`], { timeout: 150_000 });
        demandMs = performance.now() - t;
        if (!/ok: 1 checkpoint\(s\) Ready/.test(stdout)) throw new Error(`lazarus checkpoint pod: ${stdout}`);
      }
      await this.cordon(ORIGIN, true);
      try {
        if (path === 'restore') {
          // The cordon takes a drain checkpoint (onDrain); let it finish before the clock runs.
          const t = performance.now();
          await this.wait(async () => (await this.readyCheckpoints(first.metadata.name)).length >= 2, `the drain checkpoint of ${first.metadata.name}`, 120_000, 250);
          drainWaitMs = performance.now() - t;
        }
        const t0 = Date.now();
        await this.client.request('DELETE', `/api/v1/namespaces/${NS}/pods/${first.metadata.name}`);
        const next = await this.runningPod(app, first.metadata.name);
        const answer = await this.firstAnswer(next.metadata.name, t0);
        const restoredFrom = next.metadata.annotations?.[K.RESTORED_FROM];
        const seen = await this.client.request<Pod>('GET', `/api/v1/namespaces/${NS}/pods/${next.metadata.name}`);
        // Whole-second timestamps, so measured from the DELETE's whole second.
        const since = (at: string | undefined): number | undefined => (at ? Date.parse(at) - Math.floor(t0 / 1000) * 1000 : undefined);
        const steps: Steps = {};
        const created = since(seen.metadata.creationTimestamp);
        const scheduled = since(seen.status?.conditions?.find((c) => c.type === 'PodScheduled')?.lastTransitionTime);
        const running = since(seen.status?.containerStatuses?.[0]?.state?.running?.startedAt);
        if (created !== undefined) steps.created = created;
        if (scheduled !== undefined) steps.scheduled = scheduled;
        if (running !== undefined) steps.running = running;
        if (path === 'restore' && !restoredFrom) throw new Error(`${next.metadata.name} was not restored (no ${K.RESTORED_FROM}): ${JSON.stringify(next.metadata.annotations ?? {})}`);
        if (path === 'cold' && restoredFrom) throw new Error(`${next.metadata.name} of the cold path was restored from ${restoredFrom}`);
        const r: Round = {
          path, round, ms: answer.answer.atMs - t0, steps, node: next.spec.nodeName ?? '?', first: answer.answer.text,
          ...(answer.before ? { before: answer.before.text } : {}), ...(restoredFrom ? { restoredFrom } : {}),
          ...(demandMs !== undefined ? { demandMs } : {}), ...(drainWaitMs !== undefined ? { drainWaitMs } : {}),
        };
        log(`[bench] ${app}: first answer ${secs(r.ms)} s after the delete (${stepText(steps)}), on ${r.node}: "${r.first}"${r.before ? ` (line before: "${r.before}")` : ''}${restoredFrom ? ` restored from ${restoredFrom}` : ''}`);
        return r;
      } finally {
        await this.cordon(ORIGIN, false);
      }
    } finally {
      await this.deleteDeployment(app);
    }
  }

  /** The container process of `command` on `node`, found in that node's cgroups. */
  async hostPid(node: RealNode, comm: string): Promise<number | undefined> {
    for (const entry of await readdir('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      const c = await readFile(`/proc/${entry}/comm`, 'utf8').catch(() => '');
      if (c.trim() !== comm) continue;
      const cg = await readFile(`/proc/${entry}/cgroup`, 'utf8').catch(() => '');
      if (cg.includes(`:/${node.netns}/`)) return Number(entry);
    }
    return undefined;
  }

  /**
   * The agent's histogram, read in its node's network namespace (it runs there, hostNetwork).
   * Through the API server's pod proxy this failed: `400 Client sent an HTTP request to an HTTPS
   * server` for `pods/NAME:8080`, `503 … tls: first record does not look like a TLS handshake`
   * for `pods/https:NAME:8080`.
   */
  async agentArchiveSeconds(node: RealNode): Promise<{ sum: number; count: number }> {
    const { stdout } = await execFileP('ip', ['netns', 'exec', node.netns, 'busybox', 'wget', '-qO-', 'http://127.0.0.1:8080/metrics'], { timeout: 10_000 });
    return histogramTotals(stdout, 'lazarus_agent_archive_seconds') ?? { sum: 0, count: 0 };
  }

  /** Checkpoint, agent build + push, and host build + push of one archive of a 512 MiB process. */
  async big(): Promise<{ rssKb: number; archiveBytes: number; checkpointMs: number; agentMs: number; toReadyMs: number; hostMs: number; hostRef: string }> {
    const app = 'big';
    const node = this.cluster.nodes.find((n) => n.name === ORIGIN);
    if (!node) throw new Error(`no ${ORIGIN}`);
    await this.createDeployment(app, BIG_APP, false, ORIGIN);
    // Inside the nodes' bind mount: a hard link cannot cross it.
    const copy = path.join(this.cp.dir, 'nodes', 'bench-big-checkpoint.tar');
    try {
      const pod = await this.runningPod(app);
      if (pod.spec.nodeName !== ORIGIN) throw new Error(`big started on ${pod.spec.nodeName ?? '?'}`);
      const rssKb = await this.wait(async () => {
        const pid = await this.hostPid(node, 'dd');
        if (pid === undefined) return undefined;
        const kb = Number(/^VmRSS:\s+(\d+) kB/m.exec(await readFile(`/proc/${String(pid)}/status`, 'utf8'))?.[1] ?? 0);
        return kb >= BIG_BYTES / 1024 ? kb : undefined;
      }, 'dd to hold 512 MiB', 60_000, 250);
      log(`[bench] big: dd resident ${String(Math.round(rssKb / 1024))} MiB (VmRSS)`);

      const before = await this.agentArchiveSeconds(node);
      let t = performance.now();
      const answer = await this.client.request<{ items?: string[] }>('POST', `/api/v1/nodes/${ORIGIN}/proxy/checkpoint/${NS}/${pod.metadata.name}/app`, { query: { timeout: 300 }, timeoutMs: 320_000 });
      const checkpointMs = performance.now() - t;
      const archive = answer.items?.[0];
      if (!archive) throw new Error(`the kubelet named no archive: ${JSON.stringify(answer)}`);
      // The agent takes the archive (and unlinks it) once it is 2 s old; a second link keeps it.
      await link(archive, copy);
      const archiveBytes = (await stat(copy)).size;
      log(`[bench] big: checkpoint ${secs(checkpointMs)} s, archive ${String(Math.round(archiveBytes / MiB))} MiB`);
      t = performance.now();
      const after = await this.wait(async () => { const a = await this.agentArchiveSeconds(node); return a.count > before.count ? a : undefined; }, 'the agent to push the archive', 300_000, 250);
      const toReadyMs = performance.now() - t;
      if (after.count !== before.count + 1) throw new Error(`the agent handled ${String(after.count - before.count)} archives, not 1`);
      const agentMs = (after.sum - before.sum) * 1000;
      if ((await this.readyCheckpoints(pod.metadata.name)).length !== 1) throw new Error('no Ready Checkpoint for the 512 MiB archive');
      log(`[bench] big: agent build + push ${secs(agentMs)} s`);

      // Same archive, from the host, to a repository that has none of its blobs.
      const hostRef = `${this.cluster.registry}/bench/big-host:1`;
      t = performance.now();
      await execFileP(process.execPath, [CLI, 'agent', 'build', copy, hostRef, '--insecure'], { timeout: 600_000 });
      const hostMs = performance.now() - t;
      log(`[bench] big: host lazarus agent build ${secs(hostMs)} s`);
      return { rssKb, archiveBytes, checkpointMs, agentMs, toReadyMs, hostMs, hostRef };
    } finally {
      await rm(copy, { force: true });
      await this.deleteDeployment(app);
    }
  }
}

function report(rounds: readonly Round[], big: Awaited<ReturnType<Bench['big']>>, meta: { started: string; versions: string; loadStart: string }): string {
  const of = (p: Path): number[] => rounds.filter((r) => r.path === p).map((r) => r.ms);
  const cold = median(of('cold'));
  const restore = median(of('restore'));
  const demand = median(rounds.flatMap((r) => (r.demandMs === undefined ? [] : [r.demandMs])));
  const drain = median(rounds.flatMap((r) => (r.drainWaitMs === undefined ? [] : [r.drainWaitMs])));
  const list = (p: Path): string => of(p).map(secs).join(', ');
  return [
    `\`npm run bench:restore\` on real nodes (${meta.versions}), ${String(os.cpus().length)} cores, Node ${process.version}, started ${meta.started}.`,
    'The app: busybox awk builds a 2M-entry table, then prints `ready N …` every 100 ms. Each round: a fresh Deployment warms up on node-a; the restore path checkpoints it on demand (`lazarus checkpoint pod --wait`), cordons node-a and waits for the drain checkpoint that takes; the cold path (no `lazarus.dev/restore: enabled`) cordons node-a. Then the pod is deleted; node-c (CRI-O) is tainted, so every replacement runs on node-b, which has busybox already.',
    '"First answer" = DELETE sent → the runtime\'s timestamp of the replacement\'s first `ready` line written after it (`pods/log?timestamps=true`; a restored log starts with the archived lines, which keep their earlier times). Rounds alternate cold, restore.',
    `Load average at the start: ${meta.loadStart}; when the run ended: ${os.loadavg().map((l) => l.toFixed(1)).join(' ')} (2 cores shared by the control plane, three kubelets and runtimes, Lazarus, the registry — and other jobs).`,
    '',
    '| path | runs (s) | median (s) |',
    '|---|---|---:|',
    `| cold: delete → replacement warms up and answers | ${list('cold')} | **${secs(cold)}** |`,
    `| restore: delete → replacement restored on node-b answers | ${list('restore')} | **${secs(restore)}** |`,
    '',
    `**Ratio cold / restore = ${(cold / restore).toFixed(2)}** (restore / cold = ${(restore / cold).toFixed(3)}).`,
    '',
    'Each round, from the replacement pod\'s own timestamps (whole seconds, counted from the whole second of the DELETE: creationTimestamp, PodScheduled, container startedAt):',
    '',
    '| round | path | first answer (s) | replacement created, scheduled, running (s) | node |',
    '|---|---|---:|---|---|',
    ...rounds.map((r) => `| ${String(r.round)} | ${r.path} | ${secs(r.ms)} | ${stepText(r.steps)} | ${r.node} |`),
    '',
    'Restored replacements, first new line (and the archived line before it):',
    ...rounds.filter((r) => r.path === 'restore').map((r) => `- round ${String(r.round)}: \`${r.first}\` after \`${r.before ?? '–'}\` (from ${r.restoredFrom ?? '?'})`),
    '',
    `Before each restore, off the clock: \`lazarus checkpoint pod --wait\` median ${secs(demand)} s (request → Checkpoint Ready: kubelet checkpoint, agent settle of 2 s, build, push); waiting for the cordon's drain checkpoint median ${secs(drain)} s.`,
    '',
    `A process with ${(big.rssKb / 1024).toFixed(0)} MiB resident (busybox \`dd bs=512M\` blocked on a pipe; VmRSS of the container's process from /proc on the host), one archive of ${(big.archiveBytes / MiB).toFixed(0)} MiB:`,
    '',
    '| step | seconds |',
    '|---|---:|',
    `| \`POST /api/v1/nodes/node-a/proxy/checkpoint/…\` through the API server (returns when the archive is written) | **${secs(big.checkpointMs)}** |`,
    `| the agent's build + push of that archive (its \`lazarus_agent_archive_seconds\`: scan, hash pass, streamed push, Checkpoint written) | **${secs(big.agentMs)}** |`,
    `| — checkpoint returned → agent done (adds its 2 s settle and the scan wake-up) | ${secs(big.toReadyMs)} |`,
    `| \`lazarus agent build ARCHIVE REF --insecure\` on the host, same archive (hard link), to an empty repository | **${secs(big.hostMs)}** |`,
  ].join('\n');
}

async function main(): Promise<void> {
  const noWrite = process.argv.includes('--no-write');
  const why = await realNodePreflight();
  if (why) {
    if (process.env.CI === 'true') throw new Error(why);
    console.error(`bench:restore needs real nodes: ${why}; nothing measured`);
    return;
  }
  const rounds = Number(process.env.LAZARUS_BENCH_ROUNDS ?? 3);
  const controller = new AbortController();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => { log(`[bench] ${sig}: stopping`); controller.abort(); });
  const started = new Date().toISOString();
  const loadStart = os.loadavg().map((l) => l.toFixed(1)).join(' ');
  let real: RealLazarus | undefined;
  try {
    real = await startRealLazarus({ log, signal: controller.signal });
    const { cp, cluster } = real;
    await createNamespace(cp.client, NS);
    const bench = new Bench(cp, cluster, controller.signal);
    await bench.taint(AWAY, true);
    await bench.prePull(ORIGIN);
    await bench.prePull(TARGET);

    const results: Round[] = [];
    for (let i = 1; i <= rounds; i++) for (const p of ['cold', 'restore'] as const) results.push(await bench.round(p, i));
    const big = await bench.big();
    const nodeInfo = (await cp.client.request<{ items: Array<{ metadata: { name: string }; status?: { nodeInfo?: { containerRuntimeVersion?: string; kubeletVersion?: string } } }> }>('GET', '/api/v1/nodes')).items;
    const versions = nodeInfo.map((n) => `${n.metadata.name} ${n.status?.nodeInfo?.containerRuntimeVersion ?? '?'}`).join(', ') + `; kubelet ${nodeInfo[0]?.status?.nodeInfo?.kubeletVersion ?? '?'}`;
    const text = report(results, big, { started, versions, loadStart });
    console.log(`\n${text}\n`);
    if (!noWrite) recordSection('Restore', text);
  } finally {
    await real?.stop();
  }
}

try {
  await main();
} catch (err) {
  console.error(err instanceof Error ? err.stack ?? err.message : String(err));
  process.exitCode = 1;
}
