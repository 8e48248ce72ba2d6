/**
 * NodeNames requests and answers as bytes. kube-scheduler names up to thousands of nodes per
 * call; decoding makes a string of each name, and encoding the answer (as many names again,
 * plus a reason per failed node) builds a 200 kB string only to turn it into bytes. At 5,000
 * nodes that garbage alone brought a young-generation GC (~1 ms) every ~25 calls: the p99
 * (bench/RESULTS.md, Extender). Here names stay where they are in the request: looked up
 * through a NameIndex and copied into the answer as the JSON string tokens they already are.
 *
 * Only the shape kube-scheduler sends is read this way: an object of exactly `Pod`, `Nodes`
 * (null) and `NodeNames` (plain printable-ASCII strings, no escapes), each once, in ASCII.
 * Anything else gives up and the caller decodes the body as usual; both paths give the same
 * answer (test/unit/extender-names-wire.test.ts).
 *
 * Still worth its lines (bench:extender against `plainJson`, same run, 5,000 names, 2 shared
 * cores at load 15–27, 2026-12-06): server CPU per request p50 1.0–1.4 ms here against 1.9–3.8
 * ms decoded, p99 2.5–3.5 against 4.3–5.7 ms, in filter and prioritize alike; the decoded path
 * alone spends more than the 2 ms p99 target (issue 3). At 500 names the two are close (CPU
 * p50 0.2–0.3 against 0.3–0.4 ms).
 */
import type { FilterSink, NameSpans, Verdict } from './decide.js';
import { podProblem } from './decide.js';
import type { WirePod } from './protocol.js';
import { BACKSLASH, CLOSE_ARR, CLOSE_OBJ, COLON, COMMA, OPEN_ARR, OPEN_OBJ, QUOTE } from './raw-json.js';

export interface NamesArgs {
  pod: WirePod;
  names: NameSpans;
  /** Where the NodeNames array is in the body, brackets included: copied whole when all pass. */
  arrayStart: number;
  arrayEnd: number;
}

/** Growable storage for name spans, reused across requests by one server. */
export class SpanScratch {
  spans = new Int32Array(2 * 1024);
  count = 0;
  push(start: number, end: number): void {
    if (2 * this.count + 2 > this.spans.length) {
      const bigger = new Int32Array(this.spans.length * 2);
      bigger.set(this.spans);
      this.spans = bigger;
    }
    this.spans[2 * this.count] = start;
    this.spans[2 * this.count + 1] = end;
    this.count++;
  }
}

/** Anything unexpected: the caller decodes the body instead. */
class GiveUp extends Error {}

// A small scanner over bytes. raw-json.ts scans full-Nodes bodies as a latin1 string, which is
// right for 30 MB of nested objects; here the point is to make no string of the body at all.

function isWs(c: number | undefined): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function skipWs(b: Uint8Array, i: number): number {
  while (i < b.length && isWs(b[i])) i++;
  return i;
}

/** `b[i]` is an opening quote; returns the index after the closing one. */
function skipString(b: Buffer, i: number): number {
  for (;;) {
    const q = b.indexOf(QUOTE, i + 1);
    if (q === -1) throw new GiveUp();
    let k = q - 1; // escaped only when preceded by an odd run of backslashes
    while (b[k] === BACKSLASH) k--;
    if (((q - 1 - k) & 1) === 0) return q + 1;
    i = q;
  }
}

/** `b[i]` opens an object or array; returns the index after its match. */
function skipNested(b: Buffer, i: number): number {
  let depth = 0;
  while (i < b.length) {
    const c = b[i];
    if (c === QUOTE) { i = skipString(b, i); continue; }
    if (c === OPEN_OBJ || c === OPEN_ARR) depth++;
    else if (c === CLOSE_OBJ || c === CLOSE_ARR) {
      depth--;
      if (depth === 0) return i + 1;
    }
    i++;
  }
  throw new GiveUp();
}

/** The bytes at `i` are exactly `text` (ASCII). */
function bytesAre(b: Uint8Array, i: number, text: string): boolean {
  if (i + text.length > b.length) return false;
  for (let k = 0; k < text.length; k++) if (b[i + k] !== text.charCodeAt(k)) return false;
  return true;
}

/** A node name taken in place: printable ASCII, no quote, no escape. */
function isPlainNameByte(c: number | undefined): boolean {
  return c !== undefined && c >= 0x20 && c <= 0x7e && c !== QUOTE && c !== BACKSLASH;
}

/** `b[i]` opens the NodeNames array; records each name's span, returns the index after `]`. */
function readNames(b: Buffer, i: number, scratch: SpanScratch): number {
  if (b[i] !== OPEN_ARR) throw new GiveUp();
  i = skipWs(b, i + 1);
  if (b[i] === CLOSE_ARR) return i + 1;
  for (;;) {
    if (b[i] !== QUOTE) throw new GiveUp();
    let k = i + 1;
    while (isPlainNameByte(b[k])) k++;
    if (b[k] !== QUOTE) throw new GiveUp();
    scratch.push(i + 1, k);
    i = skipWs(b, k + 1);
    const c = b[i];
    if (c === COMMA) { i = skipWs(b, i + 1); continue; }
    if (c === CLOSE_ARR) return i + 1;
    throw new GiveUp();
  }
}

/**
 * A NodeNames request read in place from `body`, or undefined when it is not in the shape this
 * path takes. `scratch` holds the spans until the next call.
 */
export function readNamesArgs(body: Buffer, scratch: SpanScratch): NamesArgs | undefined {
  scratch.count = 0;
  try {
    let pod: WirePod | undefined;
    let arrayStart = -1;
    let arrayEnd = -1;
    let sawNodes = false;
    let i = skipWs(body, 0);
    if (body[i] !== OPEN_OBJ) return undefined;
    i = skipWs(body, i + 1);
    for (;;) {
      if (body[i] !== QUOTE) return undefined;
      const key = i;
      const keyEnd = skipString(body, i);
      let v = skipWs(body, keyEnd);
      if (body[v] !== COLON) return undefined;
      v = skipWs(body, v + 1);
      // Keys are compared as written: an escaped key ("N\u006fdes") is not taken here.
      if (keyEnd - key === 5 && bytesAre(body, key, '"Pod"') && pod === undefined && body[v] === OPEN_OBJ) {
        i = skipNested(body, v);
        const value: unknown = JSON.parse(body.toString('utf8', v, i)); // a syntax error gives up below
        if (podProblem(value) !== undefined) return undefined;
        pod = value as WirePod;
      } else if (keyEnd - key === 7 && bytesAre(body, key, '"Nodes"') && !sawNodes && bytesAre(body, v, 'null')) {
        sawNodes = true;
        i = v + 4;
      } else if (keyEnd - key === 11 && bytesAre(body, key, '"NodeNames"') && arrayStart === -1) {
        arrayStart = v;
        i = arrayEnd = readNames(body, v, scratch);
      } else {
        return undefined;
      }
      i = skipWs(body, i);
      if (body[i] === COMMA) { i = skipWs(body, i + 1); continue; }
      if (body[i] === CLOSE_OBJ) break;
      return undefined;
    }
    if (skipWs(body, i + 1) !== body.length || pod === undefined || arrayStart === -1) return undefined;
    return { pod, names: { bytes: body, spans: scratch.spans, count: scratch.count }, arrayStart, arrayEnd };
  } catch (err) {
    if (err instanceof GiveUp || err instanceof SyntaxError) return undefined;
    throw err;
  }
}

/** An append-only byte buffer, reused across requests. */
class Bytes {
  private buf = Buffer.allocUnsafe(64 * 1024);
  length = 0;

  private room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.length + n));
    this.buf.copy(bigger, 0, 0, this.length);
    this.buf = bigger;
  }

  /** ASCII text: short constants, copied in JS (a native call costs more). */
  ascii(s: string): void {
    this.room(s.length);
    const buf = this.buf;
    let o = this.length;
    for (let i = 0; i < s.length; i++) buf[o++] = s.charCodeAt(i);
    this.length = o;
  }

  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }

  /** `from[start, end)`: a name's few bytes are copied faster in JS than by a native call. */
  copy(from: Uint8Array, start: number, end: number): void {
    this.room(end - start);
    const buf = this.buf;
    let o = this.length;
    for (let i = start; i < end; i++) buf[o++] = from[i] ?? 0;
    this.length = o;
  }

  byte(c: number): void {
    this.room(1);
    this.buf[this.length++] = c;
  }

  /** A name from the request, as the JSON string it was there. */
  quoted(from: Uint8Array, start: number, end: number): void {
    this.byte(QUOTE);
    this.copy(from, start, end);
    this.byte(QUOTE);
  }

  /** What was written, without copying; valid until the next write. */
  view(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}

/** An answer in a pooled buffer: `release` once the socket is done with `data`. */
export interface Reply { data: Buffer; release(): void }

const NAMES_HEAD = '{"Nodes":null,"NodeNames":';
const FAILED_HEAD = ',"FailedNodes":{},"FailedAndUnresolvableNodes":{';
const FILTER_TAIL = '},"Error":""}';

/**
 * Writes answers for NodeNames requests read by readNamesArgs, byte for byte what JSON.stringify
 * would make of filter()'s and prioritize()'s results. One per server: it reuses its buffers.
 */
export class NamesEncoder {
  /**
   * Answers are written into pooled buffers, handed to the socket as they are, and returned to
   * the pool when the response is done: a fresh 200 kB Buffer per answer is external memory
   * that V8 also answers with GCs. One buffer per response in flight; usually one in all.
   */
  private readonly pool: Bytes[] = [];
  private kept = new Bytes();
  private readonly failed = new Bytes();
  /** A verdict's message as JSON, encoded once: the judge cache hands out the same verdicts. */
  private readonly messages = new WeakMap<Verdict, Buffer>();

  /** A sink for filterSpans, then `filterAnswer` to collect what it was told. */
  filterSink(args: NamesArgs): FilterSink {
    const { bytes, spans } = args.names;
    this.kept = this.pool.pop() ?? new Bytes();
    this.kept.length = 0;
    this.failed.length = 0;
    this.kept.ascii(NAMES_HEAD);
    this.kept.byte(OPEN_ARR);
    return {
      pass: (i) => {
        if (this.kept.length > NAMES_HEAD.length + 1) this.kept.byte(COMMA);
        this.kept.quoted(bytes, spans[2 * i] ?? 0, spans[2 * i + 1] ?? 0);
      },
      fail: (i, verdict) => {
        if (this.failed.length > 0) this.failed.byte(COMMA);
        this.failed.quoted(bytes, spans[2 * i] ?? 0, spans[2 * i + 1] ?? 0);
        this.failed.byte(COLON);
        this.failed.bytes(this.messageOf(verdict));
      },
    };
  }

  /** The filter answer; `allPassed`: the sink was not used, every name goes back as sent. */
  filterAnswer(args: NamesArgs, allPassed: boolean): Reply {
    const kept = this.kept;
    if (allPassed) {
      kept.length = 0;
      kept.ascii(NAMES_HEAD);
      kept.copy(args.names.bytes, args.arrayStart, args.arrayEnd);
    } else {
      kept.byte(CLOSE_ARR);
    }
    kept.ascii(FAILED_HEAD);
    if (!allPassed && this.failed.length > 0) kept.bytes(this.failed.view());
    this.failed.length = 0;
    kept.ascii(FILTER_TAIL);
    return this.reply(kept);
  }

  /** A writer of `{"Host":…,"Score":…}` entries for prioritizeSpans, then `prioritizeAnswer`. */
  scoreWriter(args: NamesArgs): (i: number, score: number) => void {
    const { bytes, spans } = args.names;
    const out = (this.kept = this.pool.pop() ?? new Bytes());
    out.length = 0;
    out.byte(OPEN_ARR);
    return (i, score) => {
      out.ascii(i === 0 ? '{"Host":' : ',{"Host":');
      out.quoted(bytes, spans[2 * i] ?? 0, spans[2 * i + 1] ?? 0);
      out.ascii(',"Score":');
      if (score >= 0 && score <= 9 && Number.isInteger(score)) out.byte(0x30 + score);
      else if (score === 10) out.ascii('10');
      else out.ascii(JSON.stringify(score));
      out.byte(0x7d); // '}'
    };
  }

  prioritizeAnswer(): Reply {
    this.kept.byte(CLOSE_ARR);
    return this.reply(this.kept);
  }

  /** No answer after all (the judging could not be done here): the buffer goes back. */
  abandon(): void {
    this.pool.push(this.kept);
  }

  private reply(bytes: Bytes): Reply {
    let released = false;
    return {
      data: bytes.view(),
      release: () => {
        if (released) return;
        released = true;
        this.pool.push(bytes);
      },
    };
  }

  private messageOf(verdict: Verdict): Buffer {
    let bytes = this.messages.get(verdict);
    if (!bytes) {
      bytes = Buffer.from(JSON.stringify(verdict.message), 'utf8');
      this.messages.set(verdict, bytes);
    }
    return bytes;
  }
}
