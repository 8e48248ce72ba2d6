/** A manual clock: sleep() resolves only when advance() passes its deadline. */
export class FakeClock {
  private timers: { at: number; resolve: () => void }[] = [];
  constructor(private t = 0) {}

  now = (): number => this.t;

  sleep = (ms: number, signal?: AbortSignal): Promise<void> => new Promise((resolve) => {
    if (signal?.aborted) { resolve(); return; }
    const onAbort = (): void => { this.timers = this.timers.filter((x) => x !== timer); resolve(); };
    const timer = { at: this.t + ms, resolve: (): void => { signal?.removeEventListener('abort', onAbort); resolve(); } };
    this.timers.push(timer);
    signal?.addEventListener('abort', onAbort, { once: true });
  });

  /** Moves time forward in steps of at most `stepMs`, letting woken tasks run (and do I/O) between steps. */
  async advance(ms: number, stepMs = 100): Promise<void> {
    const end = this.t + ms;
    while (this.t < end) {
      this.t = Math.min(end, this.t + stepMs);
      const due = this.timers.filter((x) => x.at <= this.t);
      this.timers = this.timers.filter((x) => x.at > this.t);
      for (const x of due) x.resolve();
      await settle();
    }
  }
}

/** Lets pending promise chains (including setImmediate-based fakes) run to quiescence. */
export async function settle(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((r) => setImmediate(r));
}
