/**
 * Answers for sibling pods. A scale-up or a drain creates a ReplicaSet's replicas in a burst,
 * and they reduce to the same decisionInputs(): the same decision, the same patch, the same
 * answer but for the UID. Reusing it is sound while nothing the decision read can have changed:
 * the cluster view (its generation) and the clock (the decision's validUntil).
 */

export interface CachedAnswer<T> {
  value: T;
  /** ms since the epoch, exclusive. */
  validUntil: number;
}

export class DecisionCache<T> {
  private readonly entries = new Map<string, CachedAnswer<T>>();
  private generation: number | undefined;

  /**
   * Memory is bounded by `capacity` keys of at most `maxKeyLength` characters: a pod's decision
   * inputs are about 1–2 kB; a pod with a huge env is simply decided afresh each time.
   */
  constructor(private readonly capacity = 1024, private readonly maxKeyLength = 16 * 1024) {
    if (!(capacity >= 1)) throw new RangeError(`decision cache capacity must be at least 1, got ${capacity}`);
  }

  get size(): number { return this.entries.size; }

  /** The answer for `key` if it is still valid at `now` for a view at `generation`. */
  get(key: string, generation: number, now: number): T | undefined {
    if (generation !== this.generation) {
      // Any change in the view may change any answer: start over rather than track dependencies.
      this.entries.clear();
      this.generation = generation;
      return undefined;
    }
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    if (now >= entry.validUntil) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  /** Remembers an answer computed against the view at `generation`. */
  set(key: string, generation: number, value: T, validUntil: number): void {
    if (key.length > this.maxKeyLength) return;
    if (generation !== this.generation) {
      this.entries.clear();
      this.generation = generation;
    }
    if (this.entries.size >= this.capacity && !this.entries.has(key)) {
      // First in, first out: restored answers live a second at most, so recency buys little.
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.entries.delete(oldest.value);
    }
    this.entries.set(key, { value, validUntil });
  }
}
