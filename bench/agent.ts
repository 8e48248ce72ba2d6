/**
 * `npm run bench:agent` — a 1 GiB checkpoint archive (half random, half zero pages) built and
 * pushed by `lazarus agent build` versus `buildah add` + `commit` + `push` of the same archive to
 * the same loopback registry; plus the floors (sha256) and what each layer compression would cost.
 * Every ratio is against a baseline measured in the same run. Results go to bench/RESULTS.md.
 */
import { recordSection } from './results.js';
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { createReadStream, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { createGzip } from 'node:zlib';
import { createHash } from 'node:crypto';
import { missingPreconditions, must, run, startRegistry, tempDir, type Registry } from '../test/integration/agent-env.js';
import { dumps, writeArchive } from '../test/unit/agent-fixtures.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const MiB = 1 << 20;

function secs(ms: number): string { return (ms / 1000).toFixed(2); }

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const v = await fn();
  return [v, performance.now() - t0];
}

function preconditions(tools: string[], criu: boolean): void {
  const missing = missingPreconditions(tools, criu);
  if (missing.length === 0) return;
  const msg = `bench needs: ${missing.join(', ')} (scripts/install-checkpoint-tools.sh)`;
  if (process.env.CI === 'true') throw new Error(msg);
  console.error(`${msg}; nothing measured`);
  process.exit(0);
}


// ---- agent: build + push ---------------------------------------------------------------------

/** 1 MiB blocks alternating random and zero: half the pages incompressible, half trivially so. */
function pages(total: number): Readable {
  let sent = 0;
  const zero = Buffer.alloc(MiB);
  return new Readable({
    highWaterMark: MiB,
    read() {
      if (sent >= total) { this.push(null); return; }
      const n = Math.min(MiB, total - sent);
      const block = (sent / MiB) % 2 === 0 ? randomBytes(n) : zero.subarray(0, n);
      sent += n;
      this.push(block);
    },
  });
}

async function countBytes(stream: Readable): Promise<number> {
  let n = 0;
  await pipeline(stream, new Writable({ write(chunk: Buffer, _e, cb) { n += chunk.length; cb(); } }));
  return n;
}

async function lazarusBuild(archive: string, target: string): Promise<{ ms: number; rssMb: number; ref: string }> {
  const preload = join(REPO, 'dist/bench/rss-report.js');
  const t0 = performance.now();
  const r = await run(process.execPath, ['--import', preload, join(REPO, 'dist/cli/main.js'), 'agent', 'build', archive, target, '--insecure'], { timeoutMs: 600_000 });
  const ms = performance.now() - t0;
  if (r.code !== 0) throw new Error(`lazarus agent build failed: ${r.stderr}`);
  const kb = Number(/LAZARUS_MAXRSS_KB=(\d+)/.exec(r.stderr)?.[1] ?? NaN);
  return { ms, rssMb: kb / 1024, ref: r.stdout.trim() };
}

async function benchAgent(): Promise<void> {
  preconditions(['buildah', 'docker-registry', 'zstd', 'sha256sum'], false);
  const sizeMb = Number(process.env.LAZARUS_BENCH_MB ?? 1024);
  const dir = await tempDir('bench-agent');
  let registry: Registry | undefined;
  const buildahBase = ['--root', join(dir, 'buildah/root'), '--runroot', join(dir, 'buildah/runroot')];
  try {
    const archive = join(dir, 'checkpoint.tar');
    const d = dumps('podman');
    console.log(`writing a ${String(sizeMb)} MiB archive (half random, half zero pages)…`);
    await writeArchive(archive, [
      { name: 'config.dump', body: d.config }, { name: 'spec.dump', body: d.spec },
      { name: 'checkpoint', type: 'directory' },
      { name: 'checkpoint/inventory.img', body: 'inventory' },
      { name: 'checkpoint/pages-1.img', size: sizeMb * MiB, stream: () => pages(sizeMb * MiB) },
    ]);
    registry = await startRegistry();
    const host = registry.host;

    // Floors and compression candidates, on the warm page cache both contenders also get.
    const [, sha256sumMs] = await timed(() => must('sha256sum', [archive]));
    const [, nodeShaMs] = await timed(async () => {
      const h = createHash('sha256');
      await pipeline(createReadStream(archive, { highWaterMark: MiB }), new Writable({ write(c: Buffer, _e, cb) { h.update(c); cb(); } }));
      return h.digest('hex');
    });
    const [gzipBytes, gzipMs] = await timed(() => countBytes(createReadStream(archive, { highWaterMark: MiB }).pipe(createGzip({ level: 1, chunkSize: MiB }))));
    const [zstdBytes, zstdMs] = await timed(async () => {
      const child = spawn('zstd', ['-1', '-T1', '-c', archive], { stdio: ['ignore', 'pipe', 'inherit'] });
      return countBytes(child.stdout);
    });
    const archiveBytes = (await import('node:fs')).statSync(archive).size;

    console.log('lazarus agent build…');
    const laz = await lazarusBuild(archive, `${host}/lazarus/bench-lazarus:1`);

    console.log('buildah from scratch + add + commit + push…');
    const t0 = performance.now();
    const ctr = (await must('buildah', [...buildahBase, 'from', 'scratch'])).trim();
    const [, addMs] = await timed(() => must('buildah', [...buildahBase, 'add', ctr, archive, '/'], { timeoutMs: 600_000 }));
    const [, commitMs] = await timed(() => must('buildah', [...buildahBase, 'commit', '-q', ctr, 'localhost/bench-buildah:1'], { timeoutMs: 600_000 }));
    const [, pushMs] = await timed(() => must('buildah', [...buildahBase, 'push', '--tls-verify=false', 'localhost/bench-buildah:1', `docker://${host}/lazarus/bench-buildah:1`], { timeoutMs: 600_000 }));
    const buildahMs = performance.now() - t0;

    const ratio = laz.ms / buildahMs;
    const lines = [
      `Archive: ${String(sizeMb)} MiB tar (${String(archiveBytes)} bytes), 1 MiB blocks alternating random/zero, on a warm page cache; loopback docker-registry ${'2.8'}; ${String((await import('node:os')).cpus().length)} cores. Measured ${new Date().toISOString()}.`,
      '',
      '| step | seconds |',
      '|---|---|',
      `| \`lazarus agent build\` (hash pass + streamed push, uncompressed layer) | **${secs(laz.ms)}** |`,
      `| buildah from scratch + add + commit + push (total) | **${secs(buildahMs)}** |`,
      `| — buildah add | ${secs(addMs)} |`,
      `| — buildah commit | ${secs(commitMs)} |`,
      `| — buildah push | ${secs(pushMs)} |`,
      `| floor: \`sha256sum\` of the archive | ${secs(sha256sumMs)} |`,
      `| floor: Node sha256 stream of the archive | ${secs(nodeShaMs)} |`,
      `| candidate: gzip -1 (Node zlib, one core) | ${secs(gzipMs)} → ${(gzipBytes / MiB).toFixed(0)} MiB |`,
      `| candidate: zstd -1 -T1 | ${secs(zstdMs)} → ${(zstdBytes / MiB).toFixed(0)} MiB |`,
      '',
      `**Ratio lazarus / buildah = ${ratio.toFixed(3)}** (target ≤ 0.5). **Lazarus peak RSS = ${laz.rssMb.toFixed(0)} MB** (target ≤ 150 MB).`,
      '',
      `Layer compression: none, chosen from these numbers. gzip -1 alone (${secs(gzipMs)} s on one core) costs more than the whole Lazarus push, so it is out. zstd -1 looks nearly free here (${secs(zstdMs)} s) only because this archive is the two extremes zstd handles fastest — random blocks stored raw, zero blocks collapsed; real heap pages compress far slower, and Node 20 has no zstd (a spawned \`zstd\` would be needed on every node). The saving (${((archiveBytes - zstdBytes) / MiB).toFixed(0)} MiB of ${(archiveBytes / MiB).toFixed(0)}) goes to a cluster-local registry, written once and pulled a few times at most. Uncompressed, the layer is the archive's own bytes: its digest is the archive's sha256 from the first pass, the push is idempotent by digest across restarts, and nothing is re-encoded. A zstd policy (for slow links) is a later option, not the default.`,
    ];
    const report = lines.join('\n');
    console.log(`\n${report}\n`);
    recordSection('Agent', report);
    console.log(`lazarus ${secs(laz.ms)} s, buildah ${secs(buildahMs)} s, ratio ${ratio.toFixed(3)}, peak RSS ${laz.rssMb.toFixed(0)} MB`);
  } finally {
    await run('buildah', [...buildahBase, 'rm', '-a']);
    await run('buildah', [...buildahBase, 'rmi', '-a', '-f']);
    const mounts = readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1] ?? '').filter((m) => m.startsWith(dir));
    for (const m of mounts.reverse()) await run('umount', ['-l', m]);
    await registry?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

const mode = process.argv[2];
if (mode === 'agent') await benchAgent();
else {
  console.error('usage: node dist/bench/agent.js agent (the restore bench is bench/restore.ts, on real nodes)');
  process.exitCode = 2;
}
