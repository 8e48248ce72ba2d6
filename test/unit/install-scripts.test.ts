/**
 * Housekeeping of issue 13: no package mirror's host is written into the repo; the scripts that
 * fetch packages derive the mirror from the machine's own apt sources.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const SCRIPT = 'scripts/install-checkpoint-tools.sh';

it('no tracked file names a Debian mirror host', async () => {
  const files = execFileSync('git', ['ls-files'], { encoding: 'utf8' }).split('\n').filter((f) => f && !f.endsWith('package-lock.json'));
  const hits: string[] = [];
  for (const f of files) {
    const text = await readFile(f, 'utf8').catch(() => '');
    for (const m of text.matchAll(/\b[a-z0-9.-]*\.debian\.org\b/gi)) hits.push(`${f}: ${m[0]}`);
  }
  expect(hits).toEqual([]);
});

describe(`${SCRIPT} --print-mirror`, () => {
  let etc: string;
  beforeEach(async () => {
    etc = await mkdtemp(path.join(tmpdir(), 'lz-apt-'));
    await mkdir(path.join(etc, 'sources.list.d'));
  });
  afterEach(() => rm(etc, { recursive: true, force: true }));

  const mirror = async (): Promise<string> => (await run('bash', [SCRIPT, '--print-mirror'], { env: { ...process.env, LAZARUS_APT_ETC: etc, LAZARUS_HOST_SUITE: 'bookworm', LAZARUS_DEBIAN_MIRROR: '' } })).stdout.trim();

  it.each([
    ['one-line sources.list, options in brackets, security listed first', 'sources.list',
      'deb http://mirror.example/debian-security bookworm-security main\n# deb http://old.example/debian bookworm main\ndeb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://mirror.example/debian bookworm main\n'],
    ['deb822 .sources with the security stanza first', 'sources.list.d/debian.sources',
      'Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n\nTypes: deb\n# a comment\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'],
    ['a deb822 stanza that is disabled is skipped', 'sources.list.d/debian.sources',
      'Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nEnabled: no\n\nTypes: deb deb-src\nURIs: http://mirror.example/debian\nSuites: bookworm\nComponents: main\n'],
  ])('%s', async (_name, file, text) => {
    await writeFile(path.join(etc, file), text);
    expect(await mirror()).toBe('http://mirror.example/debian');
  });

  it('prints nothing when no entry is for this machine\'s release: a third-party repo, -updates only (the script then stops with a clear error)', async () => {
    await writeFile(path.join(etc, 'sources.list.d/other.list'), 'deb https://apt.example/repo nodistro main\ndeb http://mirror.example/debian bookworm-updates main\n');
    expect(await mirror()).toBe('');
  });
});
