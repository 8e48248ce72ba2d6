/**
 * Child processes for the harness: started with their output in a log file, stopped by PID
 * (SIGTERM, then SIGKILL), and watched by a reaper process that kills them if this process
 * dies without cleaning up (a crashed or SIGKILLed test runner must leak nothing).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, readFileSync } from 'node:fs';
import net from 'node:net';

export interface Component {
  readonly name: string;
  readonly pid: number;
  readonly logPath: string;
  readonly child: ChildProcess;
  /** Resolves when the process has exited (immediately if it already has). */
  exited(): Promise<void>;
  /** Set once the process has exited. */
  exitDescription(): string | undefined;
}

export function startComponent(name: string, command: string, args: readonly string[], logPath: string, env: NodeJS.ProcessEnv = process.env): Component {
  const fd = openSync(logPath, 'a');
  let child: ChildProcess;
  try {
    child = spawn(command, args, { stdio: ['ignore', fd, fd], env });
  } finally {
    closeSync(fd);
  }
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${name}: could not start ${command}`);
  let exit: string | undefined;
  const done = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exit = signal ? `killed by ${signal}` : `exited with code ${String(code)}`;
      resolve();
    });
    child.once('error', (err) => {
      exit = `failed to start: ${err.message}`;
      resolve();
    });
  });
  return { name, pid, logPath, child, exited: () => done, exitDescription: () => exit };
}

/** The last `lines` lines of a log file, for error messages. */
export function tailLog(path: string, lines = 25): string {
  try {
    const text = readFileSync(path, 'utf8').trimEnd();
    return text.split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM, wait up to graceMs for exit, then SIGKILL. */
export async function stopComponent(c: Component, graceMs = 5000): Promise<void> {
  if (c.exitDescription() !== undefined) return;
  try { process.kill(c.pid, 'SIGTERM'); } catch { return; }
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(true), graceMs); });
  const late = await Promise.race([c.exited().then(() => false), timedOut]);
  clearTimeout(timer);
  if (late) {
    try { process.kill(c.pid, 'SIGKILL'); } catch { /* already gone */ }
    await c.exited();
  }
}

/**
 * A port that was free a moment ago on 127.0.0.1, below the kernel's ephemeral range. A port the
 * kernel hands out for `listen(0)` comes from that range, and so does the local port of every
 * outgoing connection: on a busy machine one took the port between this check and kube-apiserver
 * binding it ("bind: address already in use", CI 2026-12-06). Ports below the range are never
 * given to outgoing connections.
 */
export async function freePort(): Promise<number> {
  // Below Kubernetes' NodePort range (30000-32767) too.
  const low = Math.min(ephemeralStart ??= ephemeralRangeStart(), 30_000);
  const min = 10_000;
  if (low - min >= 1_000) {
    for (let attempt = 0; attempt < 100; attempt++) {
      const port = min + Math.floor(Math.random() * (low - min));
      // Never the same port twice from this process: callers ask for several before binding any.
      if (handedOut.has(port)) continue;
      handedOut.add(port);
      if (await canListen(port)) return port;
    }
  }
  return anyPort();
}
const handedOut = new Set<number>();
let ephemeralStart: number | undefined;

/** The first port of net.ipv4.ip_local_port_range (Linux' default 32768). */
function ephemeralRangeStart(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 0 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** What the kernel picks for listen(0): free now, but from the ephemeral range. */
function anyPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('no free port'))));
    });
  });
}

/**
 * The reaper: a detached node process that reads PIDs from its stdin and SIGKILLs them when
 * stdin closes, which happens however this process dies. `release()` tells it to exit quietly.
 */
const REAPER_SOURCE = `
const pids = new Set(); let buf = ''; let released = false;
process.stdin.on('data', (d) => { buf += d; let i;
  while ((i = buf.indexOf('\\n')) >= 0) { const l = buf.slice(0, i).trim(); buf = buf.slice(i + 1);
    if (l === 'release') { released = true; process.exit(0); }
    const n = Number(l); if (n > 0) pids.add(n); } });
process.stdin.on('end', () => { if (!released) for (const p of pids) { try { process.kill(p, 'SIGKILL'); } catch {} } process.exit(0); });
`;

export interface Reaper {
  readonly pid: number;
  watch(pid: number): void;
  /** The caller stops the processes itself; the reaper exits without killing anything. */
  release(): Promise<void>;
}

export function startReaper(): Reaper {
  const child = spawn(process.execPath, ['-e', REAPER_SOURCE], { stdio: ['pipe', 'ignore', 'ignore'], detached: true });
  const pid = child.pid;
  const stdin = child.stdin;
  if (pid === undefined || !stdin) throw new Error('could not start the reaper process');
  child.unref();
  // Keep the pipe from holding the event loop open.
  (stdin as unknown as { unref?: () => void }).unref?.();
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    pid,
    watch(p) { stdin.write(`${p}\n`); },
    async release() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      stdin.end('release\n');
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([exited, new Promise<void>((resolve) => { timer = setTimeout(resolve, 2000); })]);
      clearTimeout(timer);
      if (isAlive(pid)) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    },
  };
}
