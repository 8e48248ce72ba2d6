/**
 * Node facts by name, looked up by where the name sits in a request body rather than by a
 * string: a NodeNames request names thousands of nodes, and a string per name is garbage the
 * young-generation GC then stops the extender to collect (names-wire.ts).
 */
import type { NodeFacts } from '../api/compat.js';

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** FNV-1a over the character codes of `text[start, end)`. */
function hashOf(text: string, start: number, end: number): number {
  let h = FNV_OFFSET;
  for (let i = start; i < end; i++) h = Math.imul(h ^ text.charCodeAt(i), FNV_PRIME);
  return h >>> 0;
}

/** An immutable open-addressing table; build a new one when the nodes change. */
export class NameIndex {
  private readonly slots: Int32Array;
  private readonly mask: number;
  private readonly names: string[] = [];
  private readonly facts: NodeFacts[] = [];
  private readonly memos = new WeakMap<object, unknown>();

  constructor(nodes: Iterable<NodeFacts>) {
    const all = [...nodes];
    let size = 8;
    while (size < all.length * 2) size *= 2;
    this.slots = new Int32Array(size); // 0: empty; otherwise 1 + the entry's position
    this.mask = size - 1;
    for (const facts of all) this.add(facts);
  }

  get size(): number { return this.names.length; }

  private add(facts: NodeFacts): void {
    const name = facts.name;
    let slot = hashOf(name, 0, name.length) & this.mask;
    for (;;) {
      const entry = this.slots[slot] ?? 0;
      if (entry === 0) break;
      if (this.names[entry - 1] === name) { this.facts[entry - 1] = facts; return; } // last one wins, as in a Map
      slot = (slot + 1) & this.mask;
    }
    this.names.push(name);
    this.facts.push(facts);
    this.slots[slot] = this.names.length;
  }

  /** The position (0 ≤ p < size) of the node named by the characters `text[start, end)`, or -1. */
  position(text: string, start: number, end: number): number {
    const length = end - start;
    let slot = hashOf(text, start, end) & this.mask;
    for (;;) {
      const entry = this.slots[slot] ?? 0;
      if (entry === 0) return -1;
      const name = this.names[entry - 1] ?? '';
      if (name.length === length && text.startsWith(name, start)) return entry - 1;
      slot = (slot + 1) & this.mask;
    }
  }

  /** The node named by the characters `text[start, end)`. */
  get(text: string, start: number, end: number): NodeFacts | undefined {
    const p = this.position(text, start, end);
    return p === -1 ? undefined : this.facts[p];
  }

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
