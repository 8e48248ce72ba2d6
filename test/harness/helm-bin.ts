/**
 * Locates (and if needed builds, via scripts/helm-build.sh) the cached helm binary. Like
 * kube-bin.ts: built once per machine from the Go module proxy, kept in ~/.cache/lazarus/helm.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from './kube-bin.js';

function helmFrom(stdout: string): string {
  const bin = path.join(stdout.trim().split('\n').pop() ?? '', 'helm');
  if (!existsSync(bin)) throw new Error(`scripts/helm-build.sh printed ${path.dirname(bin)}, but there is no helm there`);
  return bin;
}

function failure(stderr: string): Error {
  return new Error(`scripts/helm-build.sh failed (the chart tests need helm v3):\n${stderr.trim().split('\n').slice(-20).join('\n')}`);
}

/** The helm binary's path; fails loudly, with the script's output, when it cannot be built. */
export function helmPath(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const script = path.join(repoRoot(), 'scripts', 'helm-build.sh');
  return new Promise((resolve, reject) => {
    execFile('bash', [script], { env, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) reject(failure(stderr));
      else try { resolve(helmFrom(stdout)); } catch (e) { reject(e as Error); }
    });
  });
}

/** helmPath for test files that render at collection time (describe.each needs the objects then). */
export function helmPathSync(env: NodeJS.ProcessEnv = process.env): string {
  try {
    return helmFrom(execFileSync('bash', [path.join(repoRoot(), 'scripts', 'helm-build.sh')], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 16 << 20 }));
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw e.stderr !== undefined ? failure(e.stderr) : err;
  }
}

/** Runs a command-line tool against a cluster: stdout, or an error carrying its stderr. */
export type Tool = (args: readonly string[], options?: { input?: string; signal?: AbortSignal }) => Promise<string>;

export function tool(binary: string, kubeconfig: string): Tool {
  return (args, options = {}) => new Promise((resolve, reject) => {
    const child = execFile(binary, [`--kubeconfig=${kubeconfig}`, ...args], { maxBuffer: 64 << 20, ...(options.signal ? { signal: options.signal } : {}) }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${path.basename(binary)} ${args.join(' ')}: ${(stderr || err.message).trim()}`));
      else resolve(stdout);
    });
    child.stdin?.end(options.input ?? '');
  });
}
