/**
 * Preloaded with `node --expose-gc --import` into the processes the memory bench measures: a
 * SIGUSR2 runs a full garbage collection, so the heap read next is what is live, not what an
 * idle process has not yet collected. Nothing else changes in the process.
 */
process.on('SIGUSR2', () => {
  (globalThis as { gc?: () => void }).gc?.();
});
