/**
 * Reading checkpoint archives (a tar, possibly gzip- or zstd-compressed) as streams: one pass
 * hashes the uncompressed tar (it becomes the image layer as is) while the tar headers are
 * checked and the small metadata files are kept; a later pass re-opens the same bytes for upload.
 * Memory stays flat: nothing but config.dump/spec.dump is ever held.
 */
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { PassThrough, Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';

export type Compression = 'none' | 'gzip' | 'zstd';

/** The archive itself is unusable (not a tar, truncated, unsafe names, no metadata): never retried. */
export class ArchiveError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ArchiveError';
  }
}

/** Metadata files larger than this are not metadata: refuse instead of buffering them. */
const MAX_METADATA_BYTES = 16 * 1024 * 1024;

export function detectCompression(head: Uint8Array): Compression {
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return 'zstd';
  return 'none';
}

/** `./checkpoint/pages-1.img` → `checkpoint/pages-1.img`; undefined for absolute or `..` names. */
export function safeEntryName(name: string): string | undefined {
  if (name.startsWith('/')) return undefined;
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.some((p) => p === '..')) return undefined;
  return parts.join('/');
}

async function readHead(path: string): Promise<Buffer> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(4);
    const { bytesRead } = await fh.read(buf, 0, 4, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

/** The archive's uncompressed tar bytes. zstd has no decoder in Node 20's zlib: Debian's `zstd` does it. */
export async function openTar(path: string, signal?: AbortSignal): Promise<{ stream: Readable; compression: Compression }> {
  const compression = detectCompression(await readHead(path));
  const opts = signal ? { signal } : {};
  switch (compression) {
    case 'none':
      return { stream: createReadStream(path, { highWaterMark: 1 << 20, ...opts }), compression };
    case 'gzip': {
      const out = createGunzip({ chunkSize: 1 << 20 });
      const src = createReadStream(path, { highWaterMark: 1 << 20, ...opts });
      src.on('error', (e) => out.destroy(e));
      out.on('error', () => src.destroy());
      return { stream: src.pipe(out), compression };
    }
    case 'zstd': {
      const child = spawn('zstd', ['-dc', '--', path], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
      const out = new PassThrough({ highWaterMark: 1 << 20 });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-500); });
      child.stdout.pipe(out, { end: false });
      let stdoutDone = false;
      let exit: number | null | undefined;
      const finish = (): void => {
        if (!stdoutDone || exit === undefined) return;
        if (exit === 0) out.end();
        else out.destroy(new ArchiveError(`zstd -d failed (${String(exit)}): ${stderr.trim()}`));
      };
      child.stdout.on('end', () => { stdoutDone = true; finish(); });
      child.on('close', (code) => { exit = code; finish(); });
      child.on('error', (e) => out.destroy(new Error(`cannot run zstd to read ${path}: ${e.message}`)));
      out.on('close', () => { if (child.exitCode === null) child.kill(); });
      return { stream: out, compression };
    }
  }
}

/** Counts and hashes what passes through; with `expect`, fails at the end on a mismatch. */
export class DigestStream extends Transform {
  private readonly hash = createHash('sha256');
  private result: string | undefined;
  size = 0;
  constructor(private readonly expect?: { digest: string; size: number }) { super({ highWaterMark: 1 << 20 }); }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    cb(null, chunk);
  }
  override _flush(cb: TransformCallback): void {
    const d = this.digest();
    if (this.expect && (d !== this.expect.digest || this.size !== this.expect.size)) {
      cb(new ArchiveError(`archive changed while pushing (now ${d}, ${String(this.size)} bytes)`));
      return;
    }
    cb();
  }
  digest(): string {
    this.result ??= `sha256:${this.hash.digest('hex')}`;
    return this.result;
  }
}

export interface ArchiveScan {
  compression: Compression;
  /** sha256 of the uncompressed tar: the layer digest and its diff_id. */
  digest: string;
  size: number;
  entries: number;
  /** Contents of the requested metadata files, by normalised name. */
  files: Map<string, Buffer>;
  /** Top-level names seen (`checkpoint`, `config.dump`, …), to tell a checkpoint from any tar. */
  topLevel: Set<string>;
}

/** One pass over the archive: digest, size, tar validity, and the small files asked for. */
export async function scanArchive(path: string, wanted: readonly string[], signal?: AbortSignal): Promise<ArchiveScan> {
  const { stream, compression } = await openTar(path, signal);
  const digester = new DigestStream();
  const extract = tar.extract();
  const files = new Map<string, Buffer>();
  const topLevel = new Set<string>();
  let entries = 0;
  extract.on('entry', (header, body, next) => {
    entries++;
    // The pipeline reports the failure; an entry torn down with it must not throw on its own.
    body.on('error', () => undefined);
    const name = safeEntryName(header.name);
    if (name === undefined) {
      body.resume();
      next(new ArchiveError(`unsafe entry name "${header.name}"`));
      return;
    }
    const top = name.split('/')[0];
    if (top) topLevel.add(top);
    if (wanted.includes(name) && header.type === 'file') {
      if ((header.size ?? 0) > MAX_METADATA_BYTES) {
        body.resume();
        next(new ArchiveError(`${name} is ${String(header.size)} bytes, larger than any metadata file`));
        return;
      }
      const chunks: Buffer[] = [];
      body.on('data', (c: unknown) => { if (Buffer.isBuffer(c)) chunks.push(c); });
      body.on('end', () => { files.set(name, Buffer.concat(chunks)); next(); });
      return;
    }
    body.on('end', () => next());
    body.resume();
  });
  try {
    await pipeline(stream, digester, extract);
  } catch (err) {
    if (err instanceof ArchiveError) throw err;
    if (signal?.aborted) throw err;
    const msg = err instanceof Error ? err.message : String(err);
    // tar-stream and zlib errors mean bad bytes; system-call errors (ENOENT, EIO…) stay plain: retryable.
    if ((err as { syscall?: unknown }).syscall !== undefined) throw err;
    throw new ArchiveError(`not a readable ${compression === 'none' ? '' : `${compression} `}tar archive: ${msg}`);
  }
  if (entries === 0) throw new ArchiveError('archive has no entries');
  return { compression, digest: digester.digest(), size: digester.size, entries, files, topLevel };
}
