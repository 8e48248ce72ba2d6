/**
 * Node facts from the real machine: the CRIU built by scripts/install-checkpoint-tools.sh, the
 * real /proc/cpuinfo; and `lazarus agent build` against a registry with htpasswd (Basic) auth.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { criuCode } from '../../api/versions.js';
import { systemSources } from '../../agent/host.js';
import { desiredNodeMetadata, readLocalFacts } from '../../agent/node-facts.js';
import { checkpointEntries, writeArchive } from '../unit/agent-fixtures.js';
import { describeWithTools, lazarus, must, startRegistry, tempDir, TOOL_PATH } from './agent-env.js';
import { rm, writeFile } from 'node:fs/promises';

describeWithTools('node facts from the real criu', ['criu'], true, () => {
  it('labels lazarus.dev/criu-version with the integer code of `criu --version`, and criu check passes', async () => {
    const criu = '/usr/local/sbin/criu';
    const version = /Version:\s*(\S+)/.exec(await must(criu, ['--version']))?.[1] ?? '';
    const facts = await readLocalFacts(systemSources, criu);
    expect(facts.criuVersion).toBe(version);
    expect(facts.criuCheckPassed).toBe(true);
    const meta = desiredNodeMetadata(facts, { capable: true, reason: 'restore enabled (CRI-O 1.33.2, container_level_enabled = "checkpoint_restore")' });
    expect(meta.labels['lazarus.dev/criu-version']).toBe(String(criuCode(version)));
    expect(Number(meta.labels['lazarus.dev/criu-version'])).toBeGreaterThanOrEqual(40100);
    expect(meta.labels['lazarus.dev/restore-capable']).toBe('true');
    expect(facts.criuCheckError).toBeUndefined();
    const cpuinfoFlags = /^flags\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim().split(/\s+/) ?? [];
    expect(facts.cpuFlags).toEqual([...new Set(cpuinfoFlags)].sort());
    expect(PATH_HAS_CRIU_FIRST()).toBe(true);
  }, 60_000);
});

/** podman → runc → criu must find 4.x first in the default PATH. */
function PATH_HAS_CRIU_FIRST(): boolean {
  for (const d of TOOL_PATH.split(':')) {
    try {
      readFileSync(join(d, 'criu'));
      return d === '/usr/local/sbin';
    } catch { /* not in this directory */ }
  }
  return false;
}

describeWithTools('agent build with registry credentials (htpasswd, Basic auth)', ['docker-registry', 'python3'], false, () => {
  it('pushes with a dockerconfigjson auth file and is refused without one', async () => {
    const registry = await startRegistry({ htpasswd: { user: 'pusher', password: 'pa55word' } });
    const dir = await tempDir('agent-auth');
    try {
      const archive = join(dir, 'ck.tar');
      await writeArchive(archive, checkpointEntries('podman'));
      const target = `${registry.host}/lazarus/auth/ctr:1`;

      const refused = await lazarus(['agent', 'build', archive, target, '--insecure']);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/Basic auth and no credentials/);

      const authFile = join(dir, 'auth.json');
      await writeFile(authFile, JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from('pusher:pa55word').toString('base64') } } }));
      const pushed = await lazarus(['agent', 'build', archive, target, '--insecure', '--auth-file', authFile]);
      expect(pushed.stderr).toBe('');
      expect(pushed.stdout.trim()).toMatch(new RegExp(`^${registry.host}/lazarus/auth/ctr@sha256:[0-9a-f]{64}$`));
      const digest = pushed.stdout.trim().split('@')[1] ?? '';
      const r = await fetch(`http://${registry.host}/v2/lazarus/auth/ctr/manifests/1`, {
        method: 'HEAD', headers: { authorization: `Basic ${Buffer.from('pusher:pa55word').toString('base64')}`, accept: 'application/vnd.oci.image.manifest.v1+json' },
      });
      expect(r.status).toBe(200);
      expect(r.headers.get('docker-content-digest')).toBe(digest);
    } finally {
      await registry.stop();
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
