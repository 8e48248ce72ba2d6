/**
 * Node facts by name, looked up by where the name sits in a request body rather than by a
 * string: a NodeNames request names thousands of nodes, and a string per name is garbage the
 * young-generation GC then stops the extender to collect (names-wire.ts).
 */
import type { NodeFacts } from '../api/compat.js';

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** FNV-1a over `bytes[start, end)`. */
function hashOf(bytes: Uint8Array, start: number, end: number): number {
  let h = FNV_OFFSET;
  for (let i = start; i < end; i++) h = Math.imul(h ^ (bytes[i] ?? 0), FNV_PRIME);
  return h >>> 0;
}

/** An immutable open-addressing table; build a new one when the nodes change. */
export class NameIndex {
  private readonly slots: Int32Array;
  private readonly mask: number;
  /** Every name's UTF-8 bytes, back to back; entry p's are keys[starts[p], starts[p + 1]). */
  private readonly keys: Buffer;
  private readonly starts: Int32Array;
  private readonly facts: NodeFacts[];
  private readonly memos = new WeakMap<object, unknown>();

  constructor(nodes: Iterable<NodeFacts>) {
    // Last one wins for a name given twice, as in a Map.
    const byName = new Map<string, NodeFacts>();
    for (const facts of nodes) byName.set(facts.name, facts);
    this.facts = [...byName.values()];
    const encoded = this.facts.map((f) => Buffer.from(f.name, 'utf8'));
    this.keys = Buffer.concat(encoded);
    this.starts = new Int32Array(encoded.length + 1);
    for (let p = 0; p < encoded.length; p++) this.starts[p + 1] = (this.starts[p] ?? 0) + (encoded[p]?.length ?? 0);
    let size = 8;
    while (size < this.facts.length * 2) size *= 2;
    this.slots = new Int32Array(size); // 0: empty; otherwise 1 + the entry's position
    this.mask = size - 1;
    for (let p = 0; p < this.facts.length; p++) {
      let slot = hashOf(this.keys, this.starts[p] ?? 0, this.starts[p + 1] ?? 0) & this.mask;
      while ((this.slots[slot] ?? 0) !== 0) slot = (slot + 1) & this.mask;
      this.slots[slot] = p + 1;
    }
  }

  get size(): number { return this.facts.length; }

  /** The position (0 ≤ p < size) of the node named by `bytes[start, end)`, or -1. */
  position(bytes: Uint8Array, start: number, end: number): number {
    const length = end - start;
    const keys = this.keys;
    let slot = hashOf(bytes, start, end) & this.mask;
    for (;;) {
      const entry = this.slots[slot] ?? 0;
      if (entry === 0) return -1;
      const from = this.starts[entry - 1] ?? 0;
      if ((this.starts[entry] ?? 0) - from === length) {
        let k = 0;
        while (k < length && keys[from + k] === bytes[start + k]) k++;
        if (k === length) return entry - 1;
      }
      slot = (slot + 1) & this.mask;
    }
  }

  /** The node at `position` (from position()); undefined for -1. */
  factsAt(position: number): NodeFacts | undefined { return this.facts[position]; }

  /**
   * Per-position memory for `owner` (a judge): what is remembered about this index's nodes
   * lives and dies with the index, which is replaced whenever a node changes.
   */
  memo<T>(owner: object, make: (size: number) => T): T {
    let memo = this.memos.get(owner) as T | undefined;
    if (memo === undefined) {
      memo = make(this.size);
      this.memos.set(owner, memo);
    }
    return memo;
  }
}
