/**
 * Leader election over a coordination.k8s.io/v1 Lease, with client-go's semantics
 * (tools/leaderelection): @kubernetes/client-node 2.x ships no elector, so this is a small one.
 *
 * - A candidate takes the lease when it does not exist, has no holder (released), or has not
 *   changed for `leaseDurationSeconds` as observed on the candidate's OWN clock (never comparing
 *   another process's renewTime with ours: clocks drift).
 * - The leader renews every `retryPeriod`; if it cannot renew for `renewDeadline`, or sees another
 *   holder, it stops leading. renewDeadline < leaseDuration, so it stops before anyone else may start.
 *   That holds only if a renewal cannot outlast the deadline: a GET + PUT against a slow API server
 *   can take longer than the lease. So each renewal runs under the deadline (counted from the start
 *   of the last renewal that succeeded, the earliest its renewTime can have been seen): when it
 *   passes, the requests are aborted and the leader stops, whether or not the store honours abort.
 * - Every write carries the resourceVersion it read: two candidates racing cannot both win.
 * - On shutdown the leader releases the lease (empty holder), so a successor starts at once.
 * Lease I/O, clock and sleep are injected; tests use an in-memory store and a fake clock.
 */

export interface LeaseRecord {
  holderIdentity: string;
  leaseDurationSeconds: number;
  /** MicroTime strings, as on the Lease. */
  acquireTime: string;
  renewTime: string;
  leaseTransitions: number;
}

export interface StoredLease { record: LeaseRecord; resourceVersion: string }

export interface LeaseStore {
  get(signal: AbortSignal): Promise<StoredLease | undefined>;
  /** Fails (any error) if it already exists. */
  create(record: LeaseRecord, signal: AbortSignal): Promise<StoredLease>;
  /** Fails (any error) if resourceVersion is no longer current. */
  update(record: LeaseRecord, resourceVersion: string, signal: AbortSignal): Promise<StoredLease>;
}

export interface Clock { now(): number }

export interface ElectorOptions {
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  store: LeaseStore;
  clock: Clock;
  sleep(ms: number, signal: AbortSignal): Promise<void>;
  /** Runs while leading; `signal` aborts when leadership ends. */
  onStartedLeading(signal: AbortSignal): Promise<void> | void;
  onStoppedLeading?(): void;
  /** Called when the observed holder changes (including to us). */
  onNewLeader?(identity: string): void;
  /** Reports errors from lease I/O (they are retried, never thrown). */
  onError?(err: unknown): void;
  /** Default true. */
  releaseOnCancel?: boolean;
}

/** MicroTime: RFC 3339 with exactly six fractional digits. */
export function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export function validateElectorTimes(o: Pick<ElectorOptions, 'leaseDurationMs' | 'renewDeadlineMs' | 'retryPeriodMs'>): string[] {
  const problems: string[] = [];
  if (!(o.retryPeriodMs > 0)) problems.push('retry period must be greater than zero');
  if (!(o.renewDeadlineMs > o.retryPeriodMs)) problems.push('renew deadline must be greater than the retry period');
  if (!(o.leaseDurationMs > o.renewDeadlineMs)) problems.push('lease duration must be greater than the renew deadline');
  if (o.leaseDurationMs % 1000 !== 0) problems.push('lease duration must be whole seconds');
  return problems;
}

type Attempt = 'acquired' | 'held-by-other' | 'error';

export class LeaderElector {
  private observed: LeaseRecord | undefined;
  private observedAt = 0;
  private leading = false;
  private lastHolder = '';
  /** When the attempt that acquired the lease started. */
  private acquiredAt = 0;

  constructor(private readonly o: ElectorOptions) {
    const problems = validateElectorTimes(o);
    if (problems.length) throw new Error(`leader election: ${problems.join('; ')}`);
  }

  get isLeader(): boolean { return this.leading; }

  /** Until `signal` aborts: wait for the lease, lead while it is ours, and start over after losing it. */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      if (!(await this.acquire(signal))) return;
      await this.lead(signal);
    }
  }

  private async acquire(signal: AbortSignal): Promise<boolean> {
    while (!signal.aborted) {
      const startedAt = this.o.clock.now();
      if ((await this.tryAcquireOrRenew(signal)) === 'acquired') {
        this.acquiredAt = startedAt;
        return true;
      }
      await this.o.sleep(this.o.retryPeriodMs, signal);
    }
    return false;
  }

  private async lead(signal: AbortSignal): Promise<void> {
    this.leading = true;
    const leadership = new AbortController();
    const stop = (): void => leadership.abort();
    signal.addEventListener('abort', stop, { once: true });
    const work = (async () => { await this.o.onStartedLeading(leadership.signal); })()
      .catch((err: unknown) => this.o.onError?.(err));
    // The acquiring attempt started at most this long ago; counting from now would be later than the truth.
    let lastRenewStart = this.acquiredAt;
    try {
      while (!leadership.signal.aborted) {
        await this.o.sleep(this.o.retryPeriodMs, leadership.signal);
        if (leadership.signal.aborted) break;
        const startedAt = this.o.clock.now();
        const attempt = await this.renewBefore(lastRenewStart + this.o.renewDeadlineMs, leadership.signal);
        if (attempt === 'acquired') lastRenewStart = startedAt;
        else if (attempt !== 'error' || this.o.clock.now() - lastRenewStart >= this.o.renewDeadlineMs) break;
      }
    } finally {
      signal.removeEventListener('abort', stop);
      leadership.abort();
      this.leading = false;
      await work;
      this.o.onStoppedLeading?.();
    }
    if (signal.aborted && (this.o.releaseOnCancel ?? true)) await this.release();
  }

  /** One renewal that gives up (aborting its requests) at `deadline` on the elector's clock. */
  private async renewBefore(deadline: number, leadership: AbortSignal): Promise<Attempt | 'deadline'> {
    const left = deadline - this.o.clock.now();
    if (left <= 0) return 'deadline';
    const timer = new AbortController();
    const attemptSignal = AbortSignal.any([leadership, timer.signal]);
    // Ends at the deadline, or early when leadership ends (then the loop stops anyway).
    const expired = this.o.sleep(left, attemptSignal).then(() => 'deadline' as const);
    try {
      const result = await Promise.race([this.tryAcquireOrRenew(attemptSignal), expired]);
      if (result === 'deadline' && !leadership.aborted) this.o.onError?.(new Error(`lease renewal did not finish within the renew deadline (${this.o.renewDeadlineMs} ms); stepping down`));
      return result;
    } finally {
      // Aborts the requests still in flight after the deadline, and the deadline's sleep after a renewal.
      timer.abort();
    }
  }

  private async tryAcquireOrRenew(signal: AbortSignal): Promise<Attempt> {
    const now = this.o.clock.now();
    const fresh: LeaseRecord = {
      holderIdentity: this.o.identity,
      leaseDurationSeconds: this.o.leaseDurationMs / 1000,
      acquireTime: microTime(now),
      renewTime: microTime(now),
      leaseTransitions: 0,
    };
    let current: StoredLease | undefined;
    try {
      current = await this.o.store.get(signal);
      if (!current) {
        this.observe(await this.o.store.create(fresh, signal).then((s) => s.record), now);
        return 'acquired';
      }
    } catch (err) {
      this.o.onError?.(err);
      return 'error';
    }
    const old = current.record;
    if (!this.observed || !sameRecord(this.observed, old)) this.observe(old, now);
    const mine = old.holderIdentity === this.o.identity;
    const expired = this.observedAt + old.leaseDurationSeconds * 1000 <= now;
    if (old.holderIdentity && !mine && !expired) return 'held-by-other';
    // A renewal abandoned at the renew deadline must not write afterwards (a store may ignore abort).
    if (signal.aborted) return 'error';
    const next: LeaseRecord = mine
      ? { ...fresh, acquireTime: old.acquireTime, leaseTransitions: old.leaseTransitions }
      : { ...fresh, leaseTransitions: old.leaseTransitions + 1 };
    try {
      this.observe((await this.o.store.update(next, current.resourceVersion, signal)).record, now);
      return 'acquired';
    } catch (err) {
      this.o.onError?.(err);
      return 'error';
    }
  }

  /** Gives the lease up so a successor need not wait out the lease duration. */
  private async release(): Promise<void> {
    const signal = AbortSignal.timeout(5_000);
    try {
      const current = await this.o.store.get(signal);
      if (!current || current.record.holderIdentity !== this.o.identity) return;
      const now = microTime(this.o.clock.now());
      await this.o.store.update({
        holderIdentity: '', leaseDurationSeconds: 1, acquireTime: now, renewTime: now,
        leaseTransitions: current.record.leaseTransitions,
      }, current.resourceVersion, signal);
    } catch (err) {
      this.o.onError?.(err);
    }
  }

  private observe(record: LeaseRecord, now: number): void {
    this.observed = record;
    this.observedAt = now;
    if (record.holderIdentity !== this.lastHolder) {
      this.lastHolder = record.holderIdentity;
      if (record.holderIdentity) this.o.onNewLeader?.(record.holderIdentity);
    }
  }
}

function sameRecord(a: LeaseRecord, b: LeaseRecord): boolean {
  return a.holderIdentity === b.holderIdentity && a.renewTime === b.renewTime && a.acquireTime === b.acquireTime
    && a.leaseTransitions === b.leaseTransitions && a.leaseDurationSeconds === b.leaseDurationSeconds;
}
