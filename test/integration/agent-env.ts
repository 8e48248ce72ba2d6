/**
 * Real tools for the agent's integration tests: a loopback docker-registry per test, podman on a
 * private storage root, the lazarus CLI. Preconditions (root, binaries, CRIU ≥ 4.1) fail loudly
 * under CI=true and skip elsewhere.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, mkdir, rm, writeFile, copyFile, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../harness/processes.js';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const CLI = join(REPO_ROOT, 'dist/cli/main.js');
/** CRIU 4.1 from scripts/install-checkpoint-tools.sh comes first. */
export const TOOL_PATH = `/usr/local/sbin:/usr/local/bin:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`;

export interface Run { code: number; stdout: string; stderr: string }

export function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string } = {}): Promise<Run> {
  return new Promise((resolveRun) => {
    const child = execFile(cmd, args, { env: { ...process.env, PATH: TOOL_PATH, ...opts.env }, timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolveRun({ code, stdout, stderr });
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

export async function must(cmd: string, args: string[], opts: Parameters<typeof run>[2] = {}): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${String(r.code)}: ${r.stderr.slice(-2000)}`);
  return r.stdout;
}

function which(name: string): boolean {
  return TOOL_PATH.split(':').some((d) => existsSync(join(d, name)));
}

/** What is missing for the real-tool tests; empty when all is there. */
export function missingPreconditions(tools: readonly string[], needCriu41 = false): string[] {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('root');
  for (const t of tools) if (!which(t)) missing.push(t);
  if (needCriu41) {
    const link = '/usr/local/sbin/criu';
    if (!existsSync(link)) missing.push('CRIU >= 4.1 at /usr/local/sbin/criu (scripts/install-checkpoint-tools.sh)');
  }
  if (!existsSync(CLI)) missing.push(`${CLI} (npm run build)`);
  return missing;
}

/** describe, or — outside CI only — describe.skip with the reason; under CI=true a missing tool fails. */
export function describeWithTools(name: string, tools: readonly string[], needCriu41: boolean, body: () => void): void {
  const missing = missingPreconditions(tools, needCriu41);
  if (missing.length === 0) { describe(name, body); return; }
  if (process.env.CI === 'true') {
    describe(name, () => {
      it('has its preconditions', () => {
        throw new Error(`missing on this machine: ${missing.join(', ')} — run scripts/install-checkpoint-tools.sh as root`);
      });
    });
    return;
  }
  describe.skip(`${name} (missing: ${missing.join(', ')})`, body);
}

/** The harness' ports (below the ephemeral range, so no outgoing connection takes one first). */
export { freePort };

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `lazarus-${prefix}-`));
}

export interface Registry { host: string; dir: string; stop(): Promise<void> }

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 5000);
  await done;
  clearTimeout(t);
}

/** Debian's docker-registry on 127.0.0.1:<free port>, storage and config in a temp dir. */
export interface TokenAuth { realm: string; service: string; issuer: string; certPath: string }

export async function startRegistry(opts: { htpasswd?: { user: string; password: string }; port?: number; token?: TokenAuth } = {}): Promise<Registry> {
  const dir = await tempDir('registry');
  const port = opts.port ?? await freePort();
  let auth = '';
  if (opts.token) {
    auth = `auth:\n  token:\n    realm: ${opts.token.realm}\n    service: ${opts.token.service}\n    issuer: ${opts.token.issuer}\n    rootcertbundle: ${opts.token.certPath}\n`;
  }
  if (opts.htpasswd) {
    const hash = (await must('python3', ['-c', 'import crypt,sys;print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))', opts.htpasswd.password])).trim();
    await writeFile(join(dir, 'htpasswd'), `${opts.htpasswd.user}:${hash}\n`);
    auth = `auth:\n  htpasswd:\n    realm: lazarus-test\n    path: ${join(dir, 'htpasswd')}\n`;
  }
  await writeFile(join(dir, 'config.yml'), [
    'version: 0.1',
    'log: {level: warn, accesslog: {disabled: true}}',
    `storage: {filesystem: {rootdirectory: ${join(dir, 'data')}}, delete: {enabled: true}}`,
    `http: {addr: "127.0.0.1:${String(port)}"}`,
    auth,
  ].join('\n'));
  const child = spawn('docker-registry', ['serve', join(dir, 'config.yml')], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, PATH: TOOL_PATH } });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000); });
  const host = `127.0.0.1:${String(port)}`;
  try {
    await waitFor(async () => {
      if (child.exitCode !== null) throw new Error(`docker-registry exited: ${stderr}`);
      const r = await fetch(`http://${host}/v2/`);
      return r.status === 200 || r.status === 401;
    }, 15_000, `docker-registry on ${host}`);
  } catch (err) {
    await stopChild(child);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    host, dir,
    async stop() {
      await stopChild(child);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** podman on its own storage root, with the flags known to work on these machines. */
export class Podman {
  private constructor(readonly dir: string) {}

  static async create(): Promise<Podman> {
    return new Podman(await tempDir('podman'));
  }

  private base(): string[] {
    return ['--root', join(this.dir, 'root'), '--runroot', join(this.dir, 'runroot'), '--tmpdir', join(this.dir, 'tmp'),
      '--cgroup-manager', 'cgroupfs', '--events-backend', 'file', '--runtime', 'runc'];
  }

  run(args: string[], timeoutMs?: number): Promise<Run> {
    return run('podman', [...this.base(), ...args], timeoutMs ? { timeoutMs } : {});
  }

  must(args: string[], timeoutMs?: number): Promise<string> {
    return must('podman', [...this.base(), ...args], timeoutMs ? { timeoutMs } : {});
  }

  static readonly RUN_FLAGS = ['--network', 'none', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024'];

  /** A busybox rootfs (Debian's busybox-static) imported as `name`; no image is pulled. */
  async importBusybox(name: string): Promise<void> {
    const rootfs = join(this.dir, 'rootfs');
    for (const d of ['bin', 'tmp', 'proc', 'sys', 'dev', 'etc']) await mkdir(join(rootfs, d), { recursive: true });
    await copyFile('/bin/busybox', join(rootfs, 'bin/busybox'));
    for (const a of ['sh', 'sleep', 'echo', 'cat', 'seq', 'head', 'dd', 'nc', 'test', 'true']) await symlink('busybox', join(rootfs, 'bin', a));
    await writeFile(join(rootfs, 'etc/passwd'), 'root:x:0:0:root:/:/bin/sh\n');
    const tarball = join(this.dir, 'rootfs.tar');
    await must('tar', ['-C', rootfs, '-cf', tarball, '.']);
    await this.must(['import', tarball, name]);
  }

  /** Removes every container and unmounts the private storage before deleting it. */
  async destroy(): Promise<void> {
    await this.run(['rm', '-af', '-t', '0']);
    await this.run(['system', 'reset', '-f']);
    const mounts = readFileSync('/proc/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1] ?? '').filter((m) => m.startsWith(this.dir));
    for (const m of mounts.reverse()) await run('umount', ['-l', m]);
    await rm(this.dir, { recursive: true, force: true });
  }
}

export function lazarus(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 300_000): Promise<Run> {
  return run(process.execPath, [CLI, ...args], { env, timeoutMs });
}

export async function waitUntil<T>(fn: () => Promise<T | undefined>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
