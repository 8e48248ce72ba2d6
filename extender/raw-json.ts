/**
 * Full-Nodes filter answers send back most of the request: every node that passes, whole. Rather
 * than JSON.stringify 30 MB of objects that were just parsed from these very bytes, the answer
 * splices the original bytes of each passing item (Go decodes exactly what it sent, including
 * int64s beyond 2^53 that a JS round trip would round).
 *
 * The scanner runs only on bodies JSON.parse has accepted, so it skips values without
 * re-validating them; anything it does not expect (an escaped key, a count that disagrees with
 * the parsed items) makes it give up, and the caller falls back to JSON.stringify.
 */

export interface Span { start: number; end: number }

const QUOTE = 0x22, BACKSLASH = 0x5c, COMMA = 0x2c, COLON = 0x3a;
const OPEN_OBJ = 0x7b, CLOSE_OBJ = 0x7d, OPEN_ARR = 0x5b, CLOSE_ARR = 0x5d;

class GiveUp extends Error {}

function isWs(c: number | undefined): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function skipWs(b: Uint8Array, i: number): number {
  while (i < b.length && isWs(b[i])) i++;
  return i;
}

/** `b[i]` is the opening quote; returns the index after the closing one. */
function skipString(b: Uint8Array, i: number): number {
  const n = b.length;
  i++;
  while (i < n) {
    const c = b[i];
    if (c === QUOTE) return i + 1;
    i += c === BACKSLASH ? 2 : 1;
  }
  throw new GiveUp();
}

/** Returns the index after the value starting at `i` (no leading whitespace). */
function skipValue(b: Uint8Array, i: number): number {
  const c = b[i];
  if (c === QUOTE) return skipString(b, i);
  if (c === OPEN_OBJ || c === OPEN_ARR) {
    const n = b.length;
    let depth = 0;
    while (i < n) {
      const d = b[i];
      if (d === QUOTE) { i = skipString(b, i); continue; }
      if (d === OPEN_OBJ || d === OPEN_ARR) depth++;
      else if (d === CLOSE_OBJ || d === CLOSE_ARR) {
        depth--;
        if (depth === 0) return i + 1;
      }
      i++;
    }
    throw new GiveUp();
  }
  while (i < b.length) {
    const d = b[i];
    if (d === COMMA || d === CLOSE_OBJ || d === CLOSE_ARR || isWs(d)) break;
    i++;
  }
  return i;
}

/** Key bytes equal `name` (ASCII). Keys with escapes never match: JSON.parse would unescape them. */
function keyIs(b: Uint8Array, start: number, end: number, name: string): boolean {
  if (end - start - 2 !== name.length) return false;
  for (let k = 0; k < name.length; k++) if (b[start + 1 + k] !== name.charCodeAt(k)) return false;
  return true;
}

function hasEscape(b: Uint8Array, start: number, end: number): boolean {
  for (let k = start; k < end; k++) if (b[k] === BACKSLASH) return true;
  return false;
}

/** Calls `onMember(keyStart, keyEnd, valueStart)` for each member; returns the index after `}`. */
function eachMember(b: Uint8Array, i: number, onMember: (keyStart: number, keyEnd: number, valueStart: number) => number): number {
  if (b[i] !== OPEN_OBJ) throw new GiveUp();
  i = skipWs(b, i + 1);
  if (b[i] === CLOSE_OBJ) return i + 1;
  for (;;) {
    if (b[i] !== QUOTE) throw new GiveUp();
    const keyEnd = skipString(b, i);
    if (hasEscape(b, i, keyEnd)) throw new GiveUp();
    let j = skipWs(b, keyEnd);
    if (b[j] !== COLON) throw new GiveUp();
    j = skipWs(b, j + 1);
    const valueEnd = onMember(i, keyEnd, j);
    i = skipWs(b, valueEnd);
    if (b[i] === COMMA) { i = skipWs(b, i + 1); continue; }
    if (b[i] === CLOSE_OBJ) return i + 1;
    throw new GiveUp();
  }
}

/**
 * Byte spans of `Nodes.items[*]` in an ExtenderArgs body, or undefined when they cannot be
 * found with certainty. The last occurrence of a duplicated key wins, as in JSON.parse.
 */
export function locateItems(body: Uint8Array): Span[] | undefined {
  try {
    let spans: Span[] | undefined;
    const start = skipWs(body, 0);
    eachMember(body, start, (ks, ke, vs) => {
      if (!keyIs(body, ks, ke, 'Nodes') || body[vs] !== OPEN_OBJ) return skipValue(body, vs);
      spans = undefined;
      return eachMember(body, vs, (ks2, ke2, vs2) => {
        if (!keyIs(body, ks2, ke2, 'items') || body[vs2] !== OPEN_ARR) {
          if (keyIs(body, ks2, ke2, 'items')) spans = undefined;
          return skipValue(body, vs2);
        }
        const found: Span[] = [];
        let i = skipWs(body, vs2 + 1);
        if (body[i] === CLOSE_ARR) { spans = found; return i + 1; }
        for (;;) {
          const end = skipValue(body, i);
          found.push({ start: i, end });
          i = skipWs(body, end);
          if (body[i] === COMMA) { i = skipWs(body, i + 1); continue; }
          if (body[i] === CLOSE_ARR) { spans = found; return i + 1; }
          throw new GiveUp();
        }
      });
    });
    return spans;
  } catch (err) {
    if (err instanceof GiveUp) return undefined;
    throw err;
  }
}

/**
 * The encoded NodeList `list` with `items` replaced by the kept items' original bytes.
 * `kept` are indexes into `spans`, ascending. Adjacent kept items are copied as one run.
 */
export function encodeNodeList(body: Buffer, spans: readonly Span[], kept: readonly number[], list: Readonly<Record<string, unknown>>): Buffer[] {
  const rest: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(list)) if (k !== 'items') rest[k] = v;
  const head = JSON.stringify(rest);
  const parts: Buffer[] = [Buffer.from(`${head.slice(0, -1)}${head.length > 2 ? ',' : ''}"items":[`)];
  let runStart = -1;
  let runEnd = -1;
  let previous = -2;
  const flush = (): void => {
    if (runStart === -1) return;
    if (parts.length > 1) parts.push(Buffer.from(','));
    parts.push(body.subarray(runStart, runEnd));
  };
  for (const index of kept) {
    const span = spans[index];
    if (!span) throw new RangeError(`kept index ${index} has no span`);
    if (index === previous + 1 && runStart !== -1) runEnd = span.end;
    else { flush(); runStart = span.start; runEnd = span.end; }
    previous = index;
  }
  flush();
  parts.push(Buffer.from(']}'));
  return parts;
}
