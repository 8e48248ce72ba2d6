/**
 * One frozen copy of each value many stored objects carry: the CPU flags of every checkpoint
 * taken on one CPU model (~1.5 kB each), the labels and owner that sibling pods of a ReplicaSet
 * share, node names. At 30,000 Checkpoints and 100,000 Pods such copies were most of what the
 * caches held (bench:memory). Bounded: when full, it starts again, so churn cannot grow it;
 * values handed out stay valid (and frozen, so no holder can change another's).
 */
export class SharedValues {
  private readonly pool = new Map<string, unknown>();

  constructor(private readonly max = 50_000) {}

  /** The shared value for `key`, made (and frozen) by `make` the first time it is asked for. */
  get<T>(key: string, make: () => T): T {
    const found = this.pool.get(key);
    if (found !== undefined) return found as T;
    const value = make();
    if (this.pool.size >= this.max) this.pool.clear();
    this.pool.set(key, deepFreeze(value));
    return value;
  }

  /** One copy of a string many objects hold (a node name, a namespace). */
  string(value: string): string { return this.get(value, () => value); }

  /** One copy of a list of strings, keyed by its contents under `kind`. */
  list(kind: string, values: readonly string[]): readonly string[] {
    return this.get(sharedKey(kind, values), () => values);
  }
}

/** A key that cannot collide across kinds or lists: Kubernetes names and labels hold no NUL. */
export const sharedKey = (kind: string, parts: readonly string[]): string => `${kind}\u0000${parts.join('\u0000')}`;

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
