/**
 * Full-Nodes filter answers send back most of the request: every node that passes, whole. Rather
 * than JSON.stringify 30 MB of objects that were just parsed from these very bytes, the answer
 * splices the original bytes of each passing item (Go decodes exactly what it sent, including
 * int64s beyond 2^53 that a JS round trip would round).
 *
 * The scanner runs only on bodies JSON.parse has accepted, so it skips values without
 * re-validating them; anything it does not expect (an escaped key, a count that disagrees with
 * the parsed items) makes it give up, and the caller falls back to JSON.stringify.
 *
 * Still worth its lines (bench:extender against `plainJson`, same run, 2 shared cores at load
 * 15–27, 2026-12-06): a 5,000-node filter answer costs 347–351 ms of server CPU spliced against
 * 419–433 ms stringified, 18 against 25–27 ms at 500 nodes (prioritize, which has no splice,
 * differs by ±15 % between the two servers); against the floor (issue 3's ≤ 1.5×) 1.14–1.42×
 * spliced, 1.38–1.82× stringified over four runs. And it keeps int64s Go sent exact.
 */

export interface Span { start: number; end: number }

export const QUOTE = 0x22, BACKSLASH = 0x5c, COMMA = 0x2c, COLON = 0x3a;
export const OPEN_OBJ = 0x7b, CLOSE_OBJ = 0x7d, OPEN_ARR = 0x5b, CLOSE_ARR = 0x5d;

/** Thrown by the scanner on anything it does not expect; callers fall back to JSON.parse. */
export class GiveUp extends Error {}

// The scanner reads the body as a latin1 string: one character per byte, so string indexes
// are byte offsets, and String.prototype.indexOf (a V8 builtin) jumps over string contents.

function isWs(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

export function skipWs(t: string, i: number): number {
  while (i < t.length && isWs(t.charCodeAt(i))) i++;
  return i;
}

/** `t[i]` is the opening quote; returns the index after the closing one. */
function skipString(t: string, i: number): number {
  for (;;) {
    const q = t.indexOf('"', i + 1);
    if (q === -1) throw new GiveUp();
    // Escaped only when preceded by an odd run of backslashes.
    let k = q - 1;
    while (t.charCodeAt(k) === BACKSLASH) k--;
    if (((q - 1 - k) & 1) === 0) return q + 1;
    i = q;
  }
}

/** Returns the index after the value starting at `i` (no leading whitespace). */
export function skipValue(t: string, i: number): number {
  const c = t.charCodeAt(i);
  if (c === QUOTE) return skipString(t, i);
  if (c === OPEN_OBJ || c === OPEN_ARR) {
    const n = t.length;
    let depth = 0;
    while (i < n) {
      const d = t.charCodeAt(i);
      if (d === QUOTE) { i = skipString(t, i); continue; }
      if (d === OPEN_OBJ || d === OPEN_ARR) depth++;
      else if (d === CLOSE_OBJ || d === CLOSE_ARR) {
        depth--;
        if (depth === 0) return i + 1;
      }
      i++;
    }
    throw new GiveUp();
  }
  while (i < t.length) {
    const d = t.charCodeAt(i);
    if (d === COMMA || d === CLOSE_OBJ || d === CLOSE_ARR || isWs(d)) break;
    i++;
  }
  return i;
}

/** The key at `start..end` (quotes included) is exactly `name`. Escaped keys never match. */
export function keyIs(t: string, start: number, end: number, name: string): boolean {
  return end - start - 2 === name.length && t.startsWith(name, start + 1);
}

/** Calls `onMember(keyStart, keyEnd, valueStart)` for each member; returns the index after `}`. */
export function eachMember(t: string, i: number, onMember: (keyStart: number, keyEnd: number, valueStart: number) => number): number {
  if (t.charCodeAt(i) !== OPEN_OBJ) throw new GiveUp();
  i = skipWs(t, i + 1);
  if (t.charCodeAt(i) === CLOSE_OBJ) return i + 1;
  for (;;) {
    if (t.charCodeAt(i) !== QUOTE) throw new GiveUp();
    const keyEnd = skipString(t, i);
    // JSON.parse unescapes keys ("N\u006fdes" is Nodes): such a body is not mapped.
    for (let k = i + 1; k < keyEnd - 1; k++) if (t.charCodeAt(k) === BACKSLASH) throw new GiveUp();
    let j = skipWs(t, keyEnd);
    if (t.charCodeAt(j) !== COLON) throw new GiveUp();
    j = skipWs(t, j + 1);
    const valueEnd = onMember(i, keyEnd, j);
    i = skipWs(t, valueEnd);
    const c = t.charCodeAt(i);
    if (c === COMMA) { i = skipWs(t, i + 1); continue; }
    if (c === CLOSE_OBJ) return i + 1;
    throw new GiveUp();
  }
}

/**
 * Byte spans of `Nodes.items[*]` in an ExtenderArgs body, given as a latin1 string (one
 * character per byte), or undefined when they cannot be found with certainty. The last
 * occurrence of a duplicated key wins, as in JSON.parse.
 */
export function locateItems(body: string): Span[] | undefined {
  try {
    let spans: Span[] | undefined;
    eachMember(body, skipWs(body, 0), (ks, ke, vs) => {
      if (!keyIs(body, ks, ke, 'Nodes') || body.charCodeAt(vs) !== OPEN_OBJ) {
        if (keyIs(body, ks, ke, 'Nodes')) spans = undefined;
        return skipValue(body, vs);
      }
      spans = undefined;
      return eachMember(body, vs, (ks2, ke2, vs2) => {
        if (!keyIs(body, ks2, ke2, 'items')) return skipValue(body, vs2);
        spans = undefined;
        if (body.charCodeAt(vs2) !== OPEN_ARR) return skipValue(body, vs2);
        const found: Span[] = [];
        let i = skipWs(body, vs2 + 1);
        if (body.charCodeAt(i) === CLOSE_ARR) { spans = found; return i + 1; }
        for (;;) {
          const end = skipValue(body, i);
          found.push({ start: i, end });
          i = skipWs(body, end);
          const c = body.charCodeAt(i);
          if (c === COMMA) { i = skipWs(body, i + 1); continue; }
          if (c === CLOSE_ARR) { spans = found; return i + 1; }
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
