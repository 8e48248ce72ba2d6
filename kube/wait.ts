/**
 * Polling against the API server, with a deadline and an AbortSignal: the demo and the tests wait
 * for a condition the same way (test/harness/wait.ts re-exports these).
 */
import type { KubeClient } from './client.js';
import { isNotFound } from './client.js';
import { sleep } from '../runtime/sleep.js';

export interface WaitOptions {
  timeoutMs?: number;
  intervalMs?: number;
  signal?: AbortSignal;
  /** Says what was awaited, in the timeout error. */
  description?: string;
}

/**
 * Calls `check` until it returns something other than undefined/false/null and returns that.
 * Errors thrown by `check` are retried; the last one is reported on timeout.
 */
export async function waitFor<T>(check: () => Promise<T | undefined | null | false> | T | undefined | null | false, options: WaitOptions = {}): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const intervalMs = options.intervalMs ?? 100;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    options.signal?.throwIfAborted();
    try {
      const value = await check();
      if (value !== undefined && value !== null && value !== false) return value;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const why = lastError instanceof Error ? `; last error: ${lastError.message}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${options.description ?? 'a condition'}${why}`);
    }
    await sleep(intervalMs, options.signal);
  }
}

/** Creates a namespace and waits for its default ServiceAccount (pods are rejected before it exists). */
export async function createNamespace(client: KubeClient, name: string, labels: Record<string, string> = {}, options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<void> {
  await client.request('POST', '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } } });
  await waitFor(async () => {
    try {
      await client.request('GET', `/api/v1/namespaces/${name}/serviceaccounts/default`);
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }, { timeoutMs: options.timeoutMs ?? 30_000, ...(options.signal ? { signal: options.signal } : {}), description: `the default ServiceAccount of namespace ${name}` });
}
