import { firstAnswerSince, histogramTotals, median, parseTimestampedLog } from '../../bench/restore-times.js';

// The shape of `GET …/pods/P/log?timestamps=true` for a restored container: archived lines first.
const RESTORED_LOG = [
  '2026-12-06T04:03:10.118602113Z ready 98 77127',
  '2026-12-06T04:03:10.224785409Z ready 99 845888',
  '2026-12-06T04:03:31.501234567Z ready 100 753787',
  '2026-12-06T04:03:31.607000000Z ready 101 40',
  '',
].join('\n');

describe('bench:restore arithmetic', () => {
  it('reads runtime timestamps to the millisecond, keeping the line', () => {
    const lines = parseTimestampedLog(RESTORED_LOG);
    expect(lines).toHaveLength(4);
    expect(lines[0]).toEqual({ atMs: Date.parse('2026-12-06T04:03:10.118Z'), text: 'ready 98 77127' });
    expect(parseTimestampedLog('2026-12-06T04:03:10+01:00 ready 1 2')[0]?.atMs).toBe(Date.parse('2026-12-06T03:03:10Z'));
    expect(parseTimestampedLog('not a log line\n')).toEqual([]);
  });

  it.each([
    ['before every line: the archived first line', Date.parse('2026-12-06T04:03:00Z'), 'ready 98 77127', undefined],
    ['between archived and new lines: the first new one', Date.parse('2026-12-06T04:03:20Z'), 'ready 100 753787', 'ready 99 845888'],
    ['exactly at a line: that line', Date.parse('2026-12-06T04:03:31.607Z'), 'ready 101 40', 'ready 100 753787'],
  ])('first answer since %s', (_name, since, text, before) => {
    const found = firstAnswerSince(parseTimestampedLog(RESTORED_LOG), since);
    expect(found?.answer.text).toBe(text);
    expect(found?.before?.text).toBe(before);
  });

  it('no answer after the last line, and none from lines that are not answers', () => {
    expect(firstAnswerSince(parseTimestampedLog(RESTORED_LOG), Date.parse('2026-12-06T04:04:00Z'))).toBeUndefined();
    expect(firstAnswerSince(parseTimestampedLog('2026-12-06T04:03:10.1Z warming up\n'), 0)).toBeUndefined();
  });

  it.each([
    [[], NaN], [[3], 3], [[5, 1, 3], 3], [[4, 1, 3, 2], 2.5],
  ])('median of %j is %d', (values, expected) => {
    expect(median(values)).toBe(expected);
  });

  it('histogram sum and count from a Prometheus exposition', () => {
    const text = '# HELP lazarus_agent_archive_seconds x\nlazarus_agent_archive_seconds_bucket{le="1"} 0\nlazarus_agent_archive_seconds_sum 6.25\nlazarus_agent_archive_seconds_count 2\nother_sum 9\n';
    expect(histogramTotals(text, 'lazarus_agent_archive_seconds')).toEqual({ sum: 6.25, count: 2 });
    expect(histogramTotals('lazarus_agent_archive_seconds_sum{node="a"} 1e-3\nlazarus_agent_archive_seconds_count{node="a"} 1\n', 'lazarus_agent_archive_seconds')).toEqual({ sum: 0.001, count: 1 });
    expect(histogramTotals(text, 'missing')).toBeUndefined();
  });
});
