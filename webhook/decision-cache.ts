/**
 * Answers for sibling pods. A scale-up or a drain creates a ReplicaSet's replicas in a burst,
 * and they reduce to the same decisionInputs(): the same decision, the same patch, the same
 * answer but for the UID. Reusing it is sound while nothing the decision read can have changed:
 * the cluster view as the pod's namespace sees it (its generation) and the clock (the
 * decision's validUntil).
 */

interface Entry<T> {
  value: T;
  generation: number;
  /** ms since the epoch, exclusive. */
  validUntil: number;
}

export class DecisionCache<T> {
  private readonly entries = new Map<string, Entry<T>>();

  /**
   * Memory is bounded by `capacity` keys of at most `maxKeyLength` characters: a pod's decision
   * inputs are about 1–2 kB; a pod with a huge env is simply decided afresh each time.
   */
  constructor(private readonly capacity = 1024, private readonly maxKeyLength = 16 * 1024) {
    if (!(capacity >= 1)) throw new RangeError(`decision cache capacity must be at least 1, got ${capacity}`);
  }

  get size(): number { return this.entries.size; }

  /**
   * The answer for `key` if it was decided against a view at `generation` (the one the key's
   * namespace sees now) and is still valid at `now`. A stale entry goes at once.
   */
  get(key: string, generation: number, now: number): T | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.generation !== generation || now >= entry.validUntil) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  /** Remembers an answer decided against the view at `generation`. */
  set(key: string, generation: number, value: T, validUntil: number): void {
    if (key.length > this.maxKeyLength) return;
    if (this.entries.size >= this.capacity && !this.entries.has(key)) {
      // First in, first out: restored answers live a second at most, so recency buys little.
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    this.entries.set(key, { value, generation, validUntil });
  }
}
