/**
 * `npm run bench:parallel` — how many checkpoints one node should take at once (issue 14 point 2,
 * the default of RestorePolicy `checkpoint.maxParallelPerNode`).
 *
 * N identical processes, each holding `--mib` MiB of touched memory, are checkpointed with the
 * host's real CRIU the way a runtime does for a kubelet checkpoint: `criu dump --leave-running`
 * into a directory, then `tar` of that directory into one archive. The N checkpoints run at
 * concurrency 1, 2, 4 and 8 (interleaved over `--reps` rounds, so drift in the machine's load
 * spreads over every level); each level's wall time is compared with the serial one (concurrency 1)
 * measured in the same run. Root and CRIU ≥ 4.1 are needed. Results go to bench/RESULTS.md.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, statSync, statfsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { missingPreconditions, run, TOOL_PATH } from '../test/integration/agent-env.js';
import { recordSection } from './results.js';

const CRIU = '/usr/local/sbin/criu';
const LEVELS = [1, 2, 4, 8] as const;

interface Options { pods: number; mib: number; reps: number; dir: string }

function options(argv: string[]): Options {
  const o: Options = { pods: 8, mib: 128, reps: 3, dir: '/var/tmp/lazarus-bench-parallel' };
  const problems: string[] = [];
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1] ?? ''];
    if (flag === '--dir') { o.dir = value; continue; }
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1) { problems.push(`${flag ?? ''} needs a whole number ≥ 1, got "${value}"`); continue; }
    if (flag === '--pods') o.pods = n;
    else if (flag === '--mib') o.mib = n;
    else if (flag === '--reps') o.reps = n;
    else problems.push(`unknown flag ${flag ?? ''} (--pods, --mib, --reps, --dir)`);
  }
  if (problems.length) { console.error(problems.join('\n')); process.exit(2); }
  return o;
}

/** A process in its own session holding `mib` MiB of touched, distinct pages. */
function holder(mib: number): ChildProcess {
  // vec() writes every 4 KiB page, so each one is resident and different from the others; stdout
  // (a socket, which CRIU would refuse as external) is closed once it said ready; the sleep loops, as a dump interrupts it.
  const perl = `$| = 1; my $x = "\\0" x (${mib} << 20); for (my $i = 0; $i < ${mib} << 8; $i++) { vec($x, $i << 10, 32) = $i ^ $$; } print "ready\\n"; close STDOUT; sleep 1000 while 1;`;
  return spawn('perl', ['-e', perl], { detached: true, stdio: ['ignore', 'pipe', 'inherit'] });
}

async function ready(child: ChildProcess): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    child.stdout?.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`holder exited with ${String(code)} before it was ready`)));
  });
}

function bytesIn(dir: string): number {
  let total = 0;
  for (const name of readdirSync(dir)) total += statSync(join(dir, name)).size;
  return total;
}

/** One checkpoint as a runtime takes it: dump (process left running), then the archive. */
async function checkpoint(pid: number, dir: string): Promise<{ ms: number; dumpMs: number; bytes: number }> {
  const images = `${dir}.d`;
  await mkdir(images, { recursive: true });
  const t0 = performance.now();
  const dump = await run(CRIU, ['dump', '-t', String(pid), '-D', images, '--leave-running', '-o', 'dump.log'], { env: { PATH: TOOL_PATH }, timeoutMs: 300_000 });
  if (dump.code !== 0) {
    const log = await run('tail', ['-5', join(images, 'dump.log')]);
    throw new Error(`criu dump of ${pid} exited ${dump.code}: ${dump.stderr.trim()} ${log.stdout.trim()}`);
  }
  // The dump is the pod's pause: CRIU keeps the process frozen until its pages are written.
  const dumpMs = performance.now() - t0;
  const tar = await run('tar', ['-cf', `${dir}.tar`, '-C', images, '.']);
  if (tar.code !== 0) throw new Error(`tar of ${images} exited ${tar.code}: ${tar.stderr.trim()}`);
  const ms = performance.now() - t0;
  const bytes = bytesIn(images);
  await rm(images, { recursive: true, force: true }); // as the runtime does once the archive is written
  return { ms, dumpMs, bytes };
}

/** The N checkpoints with at most `limit` in flight; wall time and each one's time. */
async function round(pids: number[], limit: number, base: string): Promise<{ wallMs: number; each: number[]; dumps: number[]; bytes: number }> {
  await rm(base, { recursive: true, force: true });
  await mkdir(base, { recursive: true });
  const each: number[] = [];
  const dumps: number[] = [];
  let bytes = 0;
  let next = 0;
  const t0 = performance.now();
  const worker = async (): Promise<void> => {
    while (next < pids.length) {
      const i = next++;
      const r = await checkpoint(pids[i] ?? 0, join(base, `pod-${i}`));
      each.push(r.ms);
      dumps.push(r.dumpMs);
      bytes += r.bytes;
    }
  };
  await Promise.all(Array.from({ length: limit }, worker));
  const wallMs = performance.now() - t0;
  await rm(base, { recursive: true, force: true });
  return { wallMs, each, dumps, bytes };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] ?? 0 : ((s[m - 1] ?? 0) + (s[m] ?? 0)) / 2;
};
const secs = (ms: number): string => (ms / 1000).toFixed(2);

async function main(): Promise<void> {
  const o = options(process.argv.slice(2));
  const missing = missingPreconditions(['perl', 'tar'], true);
  if (missing.length) { console.error(`bench needs: ${missing.join(', ')} (scripts/install-checkpoint-tools.sh); nothing measured`); process.exit(process.env.CI === 'true' ? 1 : 0); }
  // Images are about twice --mib (the holder's string is copied once) and the archives as large again.
  mkdirSync(o.dir, { recursive: true });
  const fs = statfsSync(o.dir);
  const need = o.pods * o.mib * 2 * 2 * (1 << 20);
  const free = fs.bavail * fs.bsize;
  if (free < 2 * need) {
    console.error(`bench needs about ${(2 * need / 2 ** 30).toFixed(1)} GiB free in ${o.dir} (twice the ${(need / 2 ** 30).toFixed(1)} GiB it writes at most), has ${(free / 2 ** 30).toFixed(1)} GiB; use smaller --mib/--pods or another --dir; nothing measured`);
    process.exit(1);
  }
  const holders = Array.from({ length: o.pods }, () => holder(o.mib));
  try {
    await Promise.all(holders.map(ready));
    const pids = holders.map((h) => h.pid ?? 0);
    const walls = new Map<number, number[]>(LEVELS.map((l) => [l, []]));
    const eaches = new Map<number, number[]>(LEVELS.map((l) => [l, []]));
    const pauses = new Map<number, number[]>(LEVELS.map((l) => [l, []]));
    let bytes = 0;
    await round(pids, 1, o.dir); // warm-up: CRIU's binary and the first parasite injection
    for (let rep = 0; rep < o.reps; rep++) {
      for (const limit of LEVELS) {
        const r = await round(pids, limit, o.dir);
        walls.get(limit)?.push(r.wallMs);
        eaches.get(limit)?.push(...r.each);
        pauses.get(limit)?.push(...r.dumps);
        bytes = r.bytes;
        console.log(`rep ${rep + 1} concurrency ${limit}: ${secs(r.wallMs)} s (load ${loadavg().map((l) => l.toFixed(2)).join(' ')})`);
      }
    }
    const serial = median(walls.get(1) ?? []);
    const rows = LEVELS.map((limit) => {
      const wall = median(walls.get(limit) ?? []);
      const each = eaches.get(limit) ?? [];
      const pause = pauses.get(limit) ?? [];
      return `| ${limit} | ${secs(wall)} | ${(wall / serial).toFixed(2)}× | ${(serial / wall).toFixed(2)}× | ${secs(median(each))} | ${secs(Math.max(...each))} | ${secs(median(pause))} | ${secs(Math.max(...pause))} |`;
    });
    const version = (await run(CRIU, ['--version'])).stdout.split('\n')[0]?.trim() ?? '';
    const load = loadavg().map((l) => l.toFixed(2)).join(' ');
    const body = [
      `\`npm run bench:parallel\` (bench/checkpoint-parallel.ts), ${new Date().toISOString()}: ${o.pods} identical processes, each with ${o.mib} MiB of touched pages`,
      `(${(bytes / o.pods / (1 << 20)).toFixed(0)} MiB of CRIU images each), checkpointed as a runtime does for the kubelet: \`criu dump --leave-running\` (${version}), then \`tar\` of the images`,
      `into one archive (the images then removed, as runtimes do), on the root disk's page cache. ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), Node ${process.version}. Median of ${o.reps} interleaved rounds per level.`,
      `Load average when the run ended: ${load} (a shared machine: other jobs ran alongside).`,
      '',
      `| concurrency | wall s (all ${o.pods}) | wall vs serial | speedup | one checkpoint p50 s | slowest s | dump (pod frozen) p50 s | longest dump s |`,
      '|---:|---:|---:|---:|---:|---:|---:|---:|',
      ...rows,
    ].join('\n');
    console.log(body);
    recordSection('Checkpoints in parallel on one node', body);
  } finally {
    for (const h of holders) if (h.exitCode === null) h.kill('SIGKILL');
    await rm(o.dir, { recursive: true, force: true });
  }
}

await main();
