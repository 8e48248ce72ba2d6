import { parseControllerConfig } from '../../../controller/command.js';
import { UsageError } from '../../../cli/flags.js';

describe('parseControllerConfig', () => {
  it('defaults', () => {
    const c = parseControllerConfig([], {});
    expect(c).toMatchObject({
      leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000, maxConcurrent: 4,
      failedRetentionMs: 24 * 3_600_000, tickMs: 5_000, jitterFactor: 0.1, backoff: { baseMs: 10_000, maxMs: 600_000 },
      namespace: 'lazarus-system', leaseName: 'lazarus-controller', metricsPort: 8080,
    });
    expect(c.id).toMatch(/_\d+$/);
  });

  it('flags and environment', () => {
    const c = parseControllerConfig(['--id', 'c-1', '--max-concurrent', '2', '--failed-retention', '90m', '--lease-duration=6s', '--renew-deadline=4s', '--retry-period=1s'], { POD_NAMESPACE: 'lz' });
    expect(c).toMatchObject({ id: 'c-1', maxConcurrent: 2, failedRetentionMs: 5_400_000, leaseDurationMs: 6_000, renewDeadlineMs: 4_000, retryPeriodMs: 1_000, namespace: 'lz' });
  });

  it.each([
    { argv: ['--max-concurrent', '0'], problem: '--max-concurrent must be at least 1' },
    { argv: ['--failed-retention', 'soon'], problem: '--failed-retention: "soon" is not a duration' },
    { argv: ['--renew-deadline', '20s'], problem: 'lease duration must be greater than the renew deadline' },
    { argv: ['--jitter-percent', '150'], problem: '--jitter-percent must be between 0 and 100' },
    { argv: ['--bogus'], problem: 'unknown flag --bogus' },
    { argv: ['extra'], problem: 'unexpected argument extra' },
  ])('rejects $argv', ({ argv, problem }) => {
    let caught: unknown;
    try { parseControllerConfig(argv, {}); } catch (err) { caught = err; }
    expect(caught).toBeInstanceOf(UsageError);
    expect((caught as UsageError).message).toContain(problem);
  });
});
