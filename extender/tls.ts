/**
 * Certificate rotation without a restart or dropped connections: the serving certificate files
 * are polled (a mounted Secret changes by symlink swap, which watchers miss) and, when they
 * change, the running server gets a new secure context; open connections keep the old one.
 */
import { readFile, stat } from 'node:fs/promises';
import type https from 'node:https';
import type { Logger } from 'pino';
import { sleep } from '../runtime/sleep.js';

export interface TlsFilePaths { certFile: string; keyFile: string }

async function fingerprint(files: TlsFilePaths): Promise<string> {
  const [c, k] = await Promise.all([stat(files.certFile), stat(files.keyFile)]);
  return `${c.mtimeMs}:${c.size}:${c.ino}/${k.mtimeMs}:${k.size}:${k.ino}`;
}

/** Runs until `signal` aborts. A bad new pair is logged and the current one kept. */
export async function reloadTlsOnChange(server: https.Server, files: TlsFilePaths, log: Logger, signal: AbortSignal, intervalMs = 30_000): Promise<void> {
  let seen = await fingerprint(files).catch(() => '');
  while (!signal.aborted) {
    await sleep(intervalMs, signal);
    if (signal.aborted) return;
    try {
      const now = await fingerprint(files);
      if (now === seen) continue;
      const [cert, key] = await Promise.all([readFile(files.certFile), readFile(files.keyFile)]);
      server.setSecureContext({ cert, key });
      seen = now;
      log.info({ certFile: files.certFile }, 'serving certificate reloaded');
    } catch (err) {
      log.warn({ err: String(err), certFile: files.certFile }, 'serving certificate not reloaded; keeping the current one');
    }
  }
}
