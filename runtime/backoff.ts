/** Exponential backoff: `baseMs` after the first failure, doubling with each one after it, never above `maxMs`. */
export interface Backoff { baseMs: number; maxMs: number }

/**
 * The wait after `failures` consecutive failures (1 = the first): base × 2^(failures−1), capped;
 * 0 without failures. The exponent stops at 30 so a long outage never turns the product into
 * Infinity (or NaN with a zero base).
 */
export function backoffDelay(failures: number, backoff: Backoff): number {
  if (failures <= 0) return 0;
  return Math.min(backoff.maxMs, backoff.baseMs * 2 ** Math.min(failures - 1, 30));
}
