/**
 * The agent turns several archives into images at once (a drain checkpoints a node's pods
 * together, and each eviction waits for its own Checkpoint): oldest first, never more than the
 * bound, nothing new once stopped.
 */
import { inOrderBounded } from '../../agent/watcher.js';
import { runDaemon } from '../../agent/daemon.js';
import { UsageError } from '../../cli/flags.js';

describe('inOrderBounded', () => {
  it.each([1, 3, 8])('bound %i: starts in order and never runs more than the bound', async (limit) => {
    const started: number[] = [];
    let running = 0;
    let most = 0;
    await inOrderBounded([0, 1, 2, 3, 4, 5, 6], limit, undefined, async (i) => {
      started.push(i);
      most = Math.max(most, ++running);
      await new Promise((r) => setTimeout(r, 5 + (i % 3) * 3));
      running--;
    });
    expect(started).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(most).toBe(Math.min(limit, 7));
  });

  it('starts nothing new once the signal aborts; what runs finishes', async () => {
    const ac = new AbortController();
    const done: number[] = [];
    await inOrderBounded([0, 1, 2, 3, 4], 2, ac.signal, async (i) => {
      if (i === 1) ac.abort();
      await new Promise((r) => setTimeout(r, 5));
      done.push(i);
    });
    expect(done.sort()).toEqual([0, 1]);
  });

  it('an empty list is done at once', async () => {
    await expect(inOrderBounded([], 4, undefined, () => Promise.reject(new Error('never')))).resolves.toBeUndefined();
  });
});

describe('lazarus agent --parallel-archives', () => {
  it.each(['0', '65', 'four'])('refuses %s with the flag named', async (value) => {
    const err = await runDaemon([`--parallel-archives=${value}`, '--node-name=n1'], {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect(String((err as Error).message)).toMatch(/--parallel-archives/);
  });
});
