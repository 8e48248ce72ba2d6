/**
 * The arithmetic of bench/restore.ts, apart from any cluster: reading a container log fetched
 * with `timestamps=true`, finding an app's first answer after a moment, medians, histogram sums.
 */

export interface LogLine { atMs: number; text: string }

/**
 * Lines of `GET …/pods/P/log?timestamps=true`: the runtime's RFC 3339 (nanosecond) time of each
 * line, a space, the line. A restored container's log begins with the archived lines, which keep
 * the times they were first written at.
 */
export function parseTimestampedLog(text: string): LogLine[] {
  const out: LogLine[] = [];
  for (const raw of text.split('\n')) {
    const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d) (.*)$/.exec(raw);
    if (!m) continue;
    const frac = (m[2] ?? '.0').slice(1).padEnd(3, '0').slice(0, 3);
    const atMs = Date.parse(`${m[1] ?? ''}.${frac}${m[3] ?? 'Z'}`);
    if (Number.isFinite(atMs)) out.push({ atMs, text: m[4] ?? '' });
  }
  return out;
}

/** The first answer (a line starting with `ready `) written at or after `sinceMs`, and the line before it. */
export function firstAnswerSince(lines: readonly LogLine[], sinceMs: number): { answer: LogLine; before?: LogLine } | undefined {
  const i = lines.findIndex((l) => l.atMs >= sinceMs && l.text.startsWith('ready '));
  if (i < 0) return undefined;
  const answer = lines[i] as LogLine;
  const before = i > 0 ? lines[i - 1] : undefined;
  return before ? { answer, before } : { answer };
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid] as number : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** `_sum` and `_count` of a Prometheus histogram in a text exposition, or undefined when absent. */
export function histogramTotals(exposition: string, name: string): { sum: number; count: number } | undefined {
  const value = (suffix: string): number | undefined => {
    const m = new RegExp(`^${name}_${suffix}(?:\\{[^}]*\\})? ([0-9.eE+-]+)$`, 'm').exec(exposition);
    return m ? Number(m[1]) : undefined;
  };
  const sum = value('sum');
  const count = value('count');
  return sum === undefined || count === undefined ? undefined : { sum, count };
}
