/**
 * Teardown that cannot hang a suite: each step gets a bound, a slow step is named in the log
 * (so the next CI log says which), and the steps after it still run. Processes a step failed to
 * stop are the reaper's (control-plane.ts) to kill.
 */
export type Step = readonly [name: string, run: () => Promise<unknown> | unknown];

export async function tearDown(steps: readonly Step[], options: { stepMs?: number; log?: (line: string) => void } = {}): Promise<void> {
  const stepMs = options.stepMs ?? 25_000;
  const log = options.log ?? ((line: string) => console.warn(line));
  for (const [name, run] of steps) {
    const started = Date.now();
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<'late'>((resolve) => { timer = setTimeout(() => resolve('late'), stepMs); });
    const outcome = await Promise.race([Promise.resolve().then(run).then(() => 'done' as const, (err: unknown) => err), bound]);
    clearTimeout(timer);
    const took = Date.now() - started;
    if (outcome === 'late') log(`[teardown] ${name}: still running after ${stepMs} ms; going on without it`);
    else if (outcome !== 'done') log(`[teardown] ${name} failed after ${took} ms: ${String(outcome)}`);
    else if (took > 2_000) log(`[teardown] ${name} took ${took} ms`);
  }
}
