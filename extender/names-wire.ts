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
 */
import type { FilterSink, NameSpans, Verdict } from './decide.js';
import { podProblem } from './decide.js';
import type { WirePod } from './protocol.js';
import { BACKSLASH, CLOSE_ARR, COMMA, GiveUp, OPEN_ARR, OPEN_OBJ, QUOTE, eachMember, keyIs, skipValue, skipWs } from './raw-json.js';

export interface NamesArgs {
  pod: WirePod;
  names: NameSpans;
  /** Where the NodeNames array is in the text, brackets included: copied whole when all pass. */
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

function isPlainNameChar(c: number): boolean {
  return c >= 0x20 && c <= 0x7e && c !== QUOTE && c !== BACKSLASH;
}

/** `text[i]` opens the NodeNames array; records each name's span, returns the index after `]`. */
function readNames(text: string, i: number, scratch: SpanScratch): number {
  if (text.charCodeAt(i) !== OPEN_ARR) throw new GiveUp();
  i = skipWs(text, i + 1);
  if (text.charCodeAt(i) === CLOSE_ARR) return i + 1;
  for (;;) {
    if (text.charCodeAt(i) !== QUOTE) throw new GiveUp();
    const close = text.indexOf('"', i + 1);
    if (close === -1) throw new GiveUp();
    for (let k = i + 1; k < close; k++) if (!isPlainNameChar(text.charCodeAt(k))) throw new GiveUp();
    scratch.push(i + 1, close);
    i = skipWs(text, close + 1);
    const c = text.charCodeAt(i);
    if (c === COMMA) { i = skipWs(text, i + 1); continue; }
    if (c === CLOSE_ARR) return i + 1;
    throw new GiveUp();
  }
}

/**
 * A NodeNames request read in place from `text` (the body as latin1, pure ASCII), or undefined
 * when it is not in the shape this path takes. `scratch` holds the spans until the next call.
 */
export function readNamesArgs(text: string, scratch: SpanScratch): NamesArgs | undefined {
  scratch.count = 0;
  try {
    let pod: WirePod | undefined;
    let arrayStart = -1;
    let arrayEnd = -1;
    let sawNodes = false;
    const end = eachMember(text, skipWs(text, 0), (ks, ke, vs) => {
      if (keyIs(text, ks, ke, 'Pod') && pod === undefined && text.charCodeAt(vs) === OPEN_OBJ) {
        const ve = skipValue(text, vs);
        const value: unknown = JSON.parse(text.slice(vs, ve)); // a syntax error gives up below
        if (podProblem(value) !== undefined) throw new GiveUp();
        pod = value as WirePod;
        return ve;
      }
      if (keyIs(text, ks, ke, 'Nodes') && !sawNodes && text.startsWith('null', vs)) {
        sawNodes = true;
        return vs + 4;
      }
      if (keyIs(text, ks, ke, 'NodeNames') && arrayStart === -1) {
        arrayStart = vs;
        arrayEnd = readNames(text, vs, scratch);
        return arrayEnd;
      }
      throw new GiveUp();
    });
    if (skipWs(text, end) !== text.length || pod === undefined || arrayStart === -1) return undefined;
    return { pod, names: { text, spans: scratch.spans, count: scratch.count }, arrayStart, arrayEnd };
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

  /** ASCII text: short constants and numbers, copied in JS (a native call costs more). */
  ascii(s: string): void {
    this.chars(s, 0, s.length);
  }

  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }

  /** The characters `text[start, end)`, all ASCII, one byte each. */
  chars(text: string, start: number, end: number): void {
    this.room(end - start);
    const buf = this.buf;
    let o = this.length;
    for (let i = start; i < end; i++) buf[o++] = text.charCodeAt(i);
    this.length = o;
  }

  byte(c: number): void {
    this.room(1);
    this.buf[this.length++] = c;
  }

  /** A name from the request, as the JSON string it was there. */
  quoted(text: string, start: number, end: number): void {
    this.byte(QUOTE);
    this.chars(text, start, end);
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
    const { text, spans } = args.names;
    this.kept = this.pool.pop() ?? new Bytes();
    this.kept.length = 0;
    this.failed.length = 0;
    this.kept.ascii(NAMES_HEAD);
    this.kept.byte(OPEN_ARR);
    return {
      pass: (i) => {
        if (this.kept.length > NAMES_HEAD.length + 1) this.kept.byte(COMMA);
        this.kept.quoted(text, spans[2 * i] ?? 0, spans[2 * i + 1] ?? 0);
      },
      fail: (i, verdict) => {
        if (this.failed.length > 0) this.failed.byte(COMMA);
        this.failed.quoted(text, spans[2 * i] ?? 0, spans[2 * i + 1] ?? 0);
        this.failed.byte(0x3a); // ':'
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
      kept.chars(args.names.text, args.arrayStart, args.arrayEnd);
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
    const { text, spans } = args.names;
    const out = (this.kept = this.pool.pop() ?? new Bytes());
    out.length = 0;
    out.byte(OPEN_ARR);
    return (i, score) => {
      out.ascii(i === 0 ? '{"Host":' : ',{"Host":');
      out.quoted(text, spans[2 * i] ?? 0, spans[2 * i + 1] ?? 0);
      out.ascii(',"Score":');
      if (score >= 0 && score <= 9 && Number.isInteger(score)) out.byte(0x30 + score);
      else out.ascii(JSON.stringify(score));
      out.byte(0x7d); // '}'
    };
  }

  prioritizeAnswer(): Reply {
    this.kept.byte(CLOSE_ARR);
    return this.reply(this.kept);
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
