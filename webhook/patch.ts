/**
 * The webhook's RFC 6902 patches are diffs of a copy (DESIGN §4): diff(before, after) walks the
 * two trees as fast-json-patch's compare() does and yields the same operations in the same order,
 * with its escapePathComponent for the paths. What it leaves out is compare()'s deep copy of
 * every added or replaced value (a JSON round trip): it was half of a fresh restore decision,
 * and these values are built for the patch, never changed afterwards, and serialised once, into
 * the answer. test/unit/webhook-patch.test.ts holds diff() to compare() on many shapes.
 */
import jsonPatch from 'fast-json-patch';
import type { Operation } from 'fast-json-patch';

/** compare(before, after) without copying values: `after` and the patch share them. */
export function diff(before: object, after: object): Operation[] {
  const ops: Operation[] = [];
  walk(before, after, '', ops);
  return ops;
}

function keysOf(value: object): string[] {
  if (!Array.isArray(value)) return Object.keys(value);
  const keys = new Array<string>(value.length);
  for (let i = 0; i < keys.length; i++) keys[i] = String(i);
  return keys;
}

const child = (path: string, key: string): string => `${path}/${jsonPatch.escapePathComponent(key)}`;
const isObject = (value: unknown): value is object => typeof value === 'object' && value !== null;

/** fast-json-patch duplex.js _generate (non-invertible), step for step. */
function walk(old: object, now: object, path: string, ops: Operation[]): void {
  if (old === now) return;
  // Plain objects and arrays (all that JSON gives) have no toJSON(): only look on others.
  const proto: unknown = Object.getPrototypeOf(now);
  if (proto !== Object.prototype && proto !== Array.prototype) {
    const toJSON = (now as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === 'function') now = toJSON.call(now) as object;
  }
  const oldValues = old as Record<string, unknown>;
  const newValues = now as Record<string, unknown>;
  const newKeys = keysOf(now);
  const oldKeys = keysOf(old);
  let deleted = false;
  // Old keys last to first: changes and removals; then new keys in order: additions.
  for (let t = oldKeys.length - 1; t >= 0; t--) {
    const key = oldKeys[t] ?? '';
    const oldValue = oldValues[key];
    if (Object.hasOwn(now, key) && !(newValues[key] === undefined && oldValue !== undefined && !Array.isArray(now))) {
      const newValue = newValues[key];
      if (isObject(oldValue) && isObject(newValue) && Array.isArray(oldValue) === Array.isArray(newValue)) walk(oldValue, newValue, child(path, key), ops);
      else if (oldValue !== newValue) ops.push({ op: 'replace', path: child(path, key), value: newValue === undefined ? null : newValue });
    } else if (Array.isArray(old) === Array.isArray(now)) {
      ops.push({ op: 'remove', path: child(path, key) });
      deleted = true;
    } else {
      ops.push({ op: 'replace', path, value: now });
    }
  }
  if (!deleted && newKeys.length === oldKeys.length) return;
  for (const key of newKeys) {
    if (!Object.hasOwn(old, key) && newValues[key] !== undefined) ops.push({ op: 'add', path: child(path, key), value: newValues[key] });
  }
}

/** The JSON of values many patches share (sharedValue()), kept with them. */
const sharedJson = new WeakMap<object, string>();

/**
 * `value`, frozen all the way down, with its JSON remembered: a value that many patches carry
 * (a restore's node affinity, the same for every pod of one origin) is serialised once.
 */
export function sharedValue<T extends object>(value: T): T {
  deepFreeze(value);
  sharedJson.set(value, JSON.stringify(value));
  return value;
}

function deepFreeze(value: unknown): void {
  if (!isObject(value) || Object.isFrozen(value)) return;
  Object.freeze(value);
  for (const v of Object.values(value)) deepFreeze(v);
}

/**
 * JSON.stringify(ops) for diff()'s operations ({op, path, value}, in that order), taking shared
 * values' JSON from memory.
 */
export function patchJson(ops: readonly Operation[]): string {
  let out = '[';
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i] as Operation & { value?: unknown };
    if (i > 0) out += ',';
    const known = isObject(op.value) ? sharedJson.get(op.value) : undefined;
    out += known === undefined ? JSON.stringify(op) : `{"op":${JSON.stringify(op.op)},"path":${JSON.stringify(op.path)},"value":${known}}`;
  }
  return `${out}]`;
}
