/** The real machine behind node-facts' FactSources, and the host facts an image is stamped with. */
import { execFile } from 'node:child_process';
import { access, readFile } from 'node:fs/promises';
import { release } from 'node:os';
import { readLocalFacts, type ExecResult, type FactSources, type LocalFacts } from './node-facts.js';
import { ociArch, type HostFacts } from './oci-image.js';

export const systemSources: FactSources = {
  exec: (cmd, args) => new Promise<ExecResult>((resolve) => {
    execFile(cmd, args, { timeout: 60_000, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  }),
  readFile: (path) => readFile(path, 'utf8'),
  exists: (path) => access(path).then(() => true, () => false),
};

/** `runc version 1.1.5` / `crun version 1.8.1` → `1.1.5`. */
export function parseRuntimeVersion(output: string): string | undefined {
  return /version\s+v?(\d+\.\d+(?:\.\d+)?)/i.exec(output)?.[1];
}

export async function hostFacts(local: LocalFacts, runtime: string | undefined, src: FactSources = systemSources): Promise<HostFacts> {
  let runtimeVersion: string | undefined;
  if (runtime && /^[\w.-]+$/.test(runtime)) {
    const r = await src.exec(runtime, ['--version']).catch(() => undefined);
    if (r?.code === 0) runtimeVersion = parseRuntimeVersion(r.stdout);
  }
  return {
    ...(local.criuVersion ? { criuVersion: local.criuVersion } : {}),
    kernel: release(),
    arch: ociArch(process.arch),
    ...(runtimeVersion ? { runtimeVersion } : {}),
    ...(local.cgroup ? { cgroup: local.cgroup } : {}),
  };
}

export { readLocalFacts };
