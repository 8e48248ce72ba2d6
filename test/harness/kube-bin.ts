/** Locates (and if needed builds, via scripts/kube-build.sh) the cached Kubernetes binaries. */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const KUBE_BINARIES = ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler'] as const;

/** The repository root: the nearest parent directory whose package.json is Lazarus'. */
export function repoRoot(from = path.dirname(fileURLToPath(import.meta.url))): string {
  let dir = from;
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'lazarus') return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`no Lazarus package.json above ${from}`);
    dir = parent;
  }
}

/**
 * Runs scripts/kube-build.sh (a cached no-op once built) and returns the bin directory. Fails
 * loudly, with the script's output, when Go or the module proxy is missing: tests never skip.
 */
export function kubeBinDir(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const script = path.join(repoRoot(), 'scripts', 'kube-build.sh');
  return new Promise((resolve, reject) => {
    execFile('bash', [script], { env, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const bin = stdout.trim().split('\n').pop() ?? '';
      if (err || !bin) {
        reject(new Error(`scripts/kube-build.sh failed (the local control plane needs the Kubernetes binaries):\n${stderr.trim().split('\n').slice(-20).join('\n')}`));
        return;
      }
      const missing = KUBE_BINARIES.filter((b) => !existsSync(path.join(bin, b)));
      if (missing.length > 0) reject(new Error(`scripts/kube-build.sh printed ${bin}, but ${missing.join(', ')} are missing there`));
      else resolve(bin);
    });
  });
}
