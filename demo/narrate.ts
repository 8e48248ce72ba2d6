/**
 * The demo's words: pure functions from plain data to the lines a person reads, and a small
 * writer that prints steps with their durations. No component logs ever come through here.
 */
import { formatAge } from '../api/duration.js';
import { criuString } from '../api/versions.js';
import type { Checkpoint } from '../api/types.js';
import type { DemoNode } from './scenario.js';

export const OK = '✔';
export const FAIL = '✘';
/** Step titles are padded to this width so the durations line up. */
export const TITLE_WIDTH = 80;
export const INDENT = '    ';

/** 85 → "85 ms", 1234 → "1.2 s". */
export function formatDuration(ms: number): string {
  const t = Math.max(0, Math.round(ms));
  return t < 1000 ? `${t} ms` : `${(t / 1000).toFixed(1)} s`;
}

/** `✔ title ........ 1.2 s` with the duration right-aligned in one column. */
export function stepLine(ok: boolean, title: string, ms: number): string {
  return `${ok ? OK : FAIL} ${title.padEnd(TITLE_WIDTH)} ${formatDuration(ms).padStart(7)}`;
}

/** Lines indented under a step. */
export function indent(lines: readonly string[], prefix = INDENT): string[] {
  return lines.map((l) => (l ? `${prefix}${l}` : l));
}

/** `repo@sha256:0123456789abcdef…` → `repo@sha256:0123456789ab…`: enough to tell images apart on a terminal. */
export function shortDigest(image: string): string {
  return image.replace(/@sha256:([0-9a-f]{12})[0-9a-f]{52}$/, '@sha256:$1…');
}

/** One line per node: what it is, and what is special about it. */
export function nodeTable(nodes: readonly DemoNode[]): string[] {
  const w = Math.max(...nodes.map((n) => n.name.length));
  const rw = Math.max(...nodes.map((n) => (n.runtime ?? '').length));
  return nodes.map((n) => [
    n.name.padEnd(w), (n.arch ?? 'amd64').padEnd(5), `kernel ${n.kernel ?? ''}`.padEnd(23),
    `criu ${n.criu ?? '-'}`.padEnd(11), (n.runtime ?? '').padEnd(rw), n.note,
  ].join('  '));
}

export interface CheckpointVerdict { name: string; chosen: boolean; text: string }

export interface VerdictInput {
  checkpoints: readonly Checkpoint[];
  /** The pod's spec hash for the container. */
  specHash: string;
  /** What the webhook chose (from the pod's lazarus.dev/restored-from), if anything. */
  chosen: string | undefined;
  now: number;
  maxAgeMs: number;
  maxAge: string;
}

/**
 * Why each checkpoint was or was not used, newest first, in the webhook's order of rules:
 * phase Ready, not older than maxCheckpointAge, same spec hash, then the newest wins.
 */
export function checkpointVerdicts(input: VerdictInput): CheckpointVerdict[] {
  const taken = (c: Checkpoint): number => Date.parse(c.spec.takenAt);
  return [...input.checkpoints].sort((a, b) => taken(b) - taken(a)).map((c) => {
    const name = c.metadata.name ?? '';
    const age = formatAge(input.now - taken(c));
    const phase = c.status?.phase ?? 'Pending';
    if (name === input.chosen) return { name, chosen: true, text: `${age} ago, Ready, same spec hash: the newest usable one` };
    if (phase !== 'Ready') return { name, chosen: false, text: `${age} ago, ${phase}${c.status?.reason ? `: ${c.status.reason}` : ''}` };
    if (input.now - taken(c) > input.maxAgeMs) return { name, chosen: false, text: `${age} ago, older than maxCheckpointAge ${input.maxAge}` };
    if (c.spec.specHash !== input.specHash) return { name, chosen: false, text: `${age} ago, spec hash ${c.spec.specHash} ≠ ${input.specHash}: taken from ${c.spec.baseImage}` };
    return { name, chosen: false, text: `${age} ago, Ready, same spec hash, but ${input.chosen ? 'older than the chosen one' : 'not chosen'}` };
  });
}

export function verdictLines(verdicts: readonly CheckpointVerdict[]): string[] {
  const w = Math.max(0, ...verdicts.map((v) => v.name.length));
  return verdicts.map((v) => `${v.chosen ? OK : FAIL} ${v.name.padEnd(w)}  ${v.text}`);
}

/** The checkpoint's origin in one line, as `lazarus explain` words it. */
export function originLine(c: Checkpoint): string {
  const o = c.spec.origin;
  return `${o.node} (${o.architecture}, kernel ${o.kernelVersion}, criu ${criuString(o.criuVersion)}, ${o.runtime}, cpu ${o.cpuFlags.join(' ')})`;
}

/** The `nodes:` section of `lazarus explain`'s output (the lines after "nodes:"). */
/** How a compatible node's score adds up (DESIGN §4), from the weights the extender uses. */
export function scoreLegend(w: Readonly<Record<'kernelExact' | 'kernelMajorMinor' | 'kernelMajor' | 'criuExact' | 'criuNewer' | 'runtimeExactVersion' | 'baseImagePresent', number>>, max: number): string {
  return `score (0-${max}): kernel same ${w.kernelExact} / same major.minor ${w.kernelMajorMinor} / same major ${w.kernelMajor}`
    + ` + CRIU same ${w.criuExact} / newer ${w.criuNewer} + same runtime version ${w.runtimeExactVersion} + base image already on the node ${w.baseImagePresent}`;
}

export function explainNodeLines(explanation: string): string[] {
  const lines = explanation.split('\n');
  const i = lines.indexOf('nodes:');
  return i === -1 ? [] : lines.slice(i + 1).map((l) => l.replace(/^ {2}/, ''));
}

/** Writes lines; `out` is console.log in the CLI and a buffer in tests. */
export class Narrator {
  constructor(private readonly out: (line: string) => void, private readonly clock: () => number) {}

  line(text = ''): void { this.out(text); }

  lines(texts: readonly string[]): void { for (const t of texts) this.out(t); }

  section(title: string): void { this.out(''); this.out(`── ${title} ${'─'.repeat(Math.max(3, TITLE_WIDTH + 6 - title.length))}`); }

  /** One plain line, for a step that has no duration of its own. */
  note(text: string): void { this.out(`${INDENT}${text}`); }

  /**
   * Runs `work`, then prints its step line (title from the result) and details. A failure is
   * not printed here: the command prints one line with the reason.
   */
  async step<T>(work: () => Promise<T>, describe: (result: T) => { title: string; ok?: boolean; details?: readonly string[] }): Promise<T> {
    const t0 = this.clock();
    const result = await work();
    const { title, ok = true, details = [] } = describe(result);
    this.out(stepLine(ok, title, this.clock() - t0));
    this.lines(indent(details));
    return result;
  }
}

// ---- real nodes ------------------------------------------------------------------------------

/** A real node as its kubelet and the Lazarus agent published it. */
export interface RealNodeInfo {
  name: string;
  ready: boolean;
  runtime: string;
  kernel: string;
  kubelet: string;
  restoreCapable: string | undefined;
  criu: string | undefined;
  reason: string | undefined;
}

/** One line per node: what it runs, or (`facts`) what the agent published about restoring on it. */
export function realNodeLines(nodes: readonly RealNodeInfo[], facts = false): string[] {
  const w = Math.max(0, ...nodes.map((n) => n.name.length));
  if (facts) {
    return nodes.map((n) => `${n.name.padEnd(w)}  restore-capable=${n.restoreCapable ?? '(none)'}  criu ${n.criu ?? '-'}  ${n.reason ?? ''}`.trimEnd());
  }
  const rw = Math.max(0, ...nodes.map((n) => n.runtime.length));
  return nodes.map((n) => `${n.name.padEnd(w)}  ${n.ready ? 'Ready   ' : 'NotReady'}  ${n.runtime.padEnd(rw)}  kubelet ${n.kubelet}  kernel ${n.kernel}`);
}

/** Lazarus' pods by component: `lazarus-webhook  ×2  node-a, node-b  Ready`. */
export function lazarusPodLines(pods: ReadonlyArray<{ app: string; node: string; ready: boolean }>): string[] {
  const apps = [...new Set(pods.map((p) => p.app))].sort();
  const w = Math.max(0, ...apps.map((a) => a.length));
  return apps.map((app) => {
    const mine = pods.filter((p) => p.app === app);
    const nodes = mine.map((p) => p.node).sort().join(', ');
    const ready = mine.filter((p) => p.ready).length;
    return `${app.padEnd(w)}  ×${mine.length}  on ${nodes.padEnd(22)}  ${ready === mine.length ? 'Ready' : `${ready}/${mine.length} Ready`}`;
  });
}

/** One line of a pod's log with the kubelet's timestamp (ms since the epoch) and the number printed. */
export interface LogLine { at: number; n: number }

export interface RestoredCounts {
  /** Every number in the log, in order. */
  all: number[];
  /** Lines stamped before the pod was created: the log archived with the checkpoint. */
  before: number[];
  /** Lines of the restored process. */
  after: number[];
  /** The count in the process' checkpointed memory: one less than its first new line. */
  atCheckpoint: number | undefined;
  /**
   * The archived log is 1, 2, …, k, and the restored process goes on from a count of at most k
   * (the runtime copies the log after CRIU's dump while the container runs on, so the archive
   * may hold a line or two more than the memory image): a cold start would print 1 again.
   */
  continues: boolean;
}

/** Splits a restored counter's log at the pod's creation. */
export function restoredCounts(lines: readonly LogLine[], createdAt: number): RestoredCounts {
  const all = lines.map((l) => l.n);
  const before = lines.filter((l) => l.at < createdAt).map((l) => l.n);
  const after = lines.filter((l) => l.at >= createdAt).map((l) => l.n);
  const first = after[0];
  const atCheckpoint = first === undefined ? undefined : first - 1;
  const last = before.at(-1) ?? 0;
  const counts = (xs: readonly number[], from: number): boolean => xs.every((n, i) => n === from + i);
  const continues = atCheckpoint !== undefined && atCheckpoint >= 1 && atCheckpoint <= last
    && counts(before, 1) && counts(after, atCheckpoint + 1);
  return { all, before, after, atCheckpoint, continues };
}
