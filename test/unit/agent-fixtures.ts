/** Synthetic checkpoint archives shaped like the real engines' (recorded dumps in test/fixtures/agent). */
import { spawn } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { createGzip } from 'node:zlib';
import tar from 'tar-stream';

export const FIXTURES = resolve(dirname(fileURLToPath(import.meta.url)), '../../../test/fixtures/agent');

export type FixtureEngine = 'podman' | 'crio' | 'containerd';

export function dumps(engine: FixtureEngine): { config: string; spec: string } {
  return {
    config: readFileSync(join(FIXTURES, `${engine}-config.dump`), 'utf8'),
    spec: readFileSync(join(FIXTURES, `${engine}-spec.dump`), 'utf8'),
  };
}

export interface ArchiveEntry { name: string; body?: Buffer | string; type?: 'file' | 'directory'; size?: number; stream?: () => Readable }

export function checkpointEntries(engine: FixtureEngine, pages: Buffer = Buffer.alloc(8192, 7)): ArchiveEntry[] {
  const d = dumps(engine);
  return [
    { name: 'config.dump', body: d.config },
    { name: 'spec.dump', body: d.spec },
    { name: 'checkpoint', type: 'directory' },
    { name: 'checkpoint/inventory.img', body: Buffer.from('inventory') },
    { name: 'checkpoint/pages-1.img', body: pages },
  ];
}

/** Writes a tar of `entries`, optionally gzip- or zstd-compressed (zstd through Debian's zstd). */
export async function writeArchive(path: string, entries: ArchiveEntry[], compression: 'none' | 'gzip' | 'zstd' = 'none'): Promise<void> {
  const pack = tar.pack();
  const done = (async () => {
    if (compression === 'none') await pipeline(pack, createWriteStream(path));
    else if (compression === 'gzip') await pipeline(pack, createGzip({ level: 1 }), createWriteStream(path));
    else {
      const child = spawn('zstd', ['-q', '-1', '-f', '-o', path], { stdio: ['pipe', 'ignore', 'inherit'] });
      const exited = new Promise<number | null>((r) => child.on('close', r));
      await pipeline(pack, child.stdin as Writable);
      if (await exited !== 0) throw new Error('zstd failed');
    }
  })();
  for (const e of entries) {
    if (e.type === 'directory') { pack.entry({ name: e.name, type: 'directory', mode: 0o755, mtime: new Date(0) }); continue; }
    if (e.stream) {
      const sink = pack.entry({ name: e.name, size: e.size ?? 0, mode: 0o644, mtime: new Date(0) });
      await pipeline(e.stream(), sink);
      continue;
    }
    const body = typeof e.body === 'string' ? Buffer.from(e.body) : e.body ?? Buffer.alloc(0);
    await new Promise<void>((res, rej) => pack.entry({ name: e.name, mode: 0o644, mtime: new Date(0) }, body, (err) => (err ? rej(err) : res())));
  }
  pack.finalize();
  await done;
}
