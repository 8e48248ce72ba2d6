import { LeaderElector, microTime, validateElectorTimes, type LeaseRecord, type LeaseStore, type StoredLease } from '../../../controller/leader.js';
import { FakeClock, settle } from '../../support/fake-clock.js';

class Conflict extends Error {}

/** A Lease in memory that enforces resourceVersion like the API server. */
class MemoryLeaseStore implements LeaseStore {
  lease: StoredLease | undefined;
  writes: LeaseRecord[] = [];
  down = false;
  private rv = 0;

  async get(): Promise<StoredLease | undefined> {
    await Promise.resolve();
    if (this.down) throw new Error('connection refused');
    return this.lease && structuredClone(this.lease);
  }
  async create(record: LeaseRecord): Promise<StoredLease> {
    await Promise.resolve();
    if (this.down) throw new Error('connection refused');
    if (this.lease) throw new Conflict('already exists');
    return this.put(record);
  }
  async update(record: LeaseRecord, resourceVersion: string): Promise<StoredLease> {
    await Promise.resolve();
    if (this.down) throw new Error('connection refused');
    if (!this.lease || this.lease.resourceVersion !== resourceVersion) throw new Conflict('the object has been modified');
    return this.put(record);
  }
  private put(record: LeaseRecord): StoredLease {
    this.writes.push(structuredClone(record));
    this.lease = { record: structuredClone(record), resourceVersion: String(++this.rv) };
    return structuredClone(this.lease);
  }
}

/** Delegates to a store, each call first taking `delayMs` on the fake clock and ignoring abort: a hung API server. */
class SlowStore implements LeaseStore {
  delayMs = 0;
  calls = 0;
  constructor(private readonly inner: LeaseStore, private readonly clock: FakeClock) {}
  private async slow<T>(call: () => Promise<T>): Promise<T> {
    this.calls++;
    if (this.delayMs > 0) await this.clock.sleep(this.delayMs);
    return call();
  }
  get(signal: AbortSignal): Promise<StoredLease | undefined> { return this.slow(() => this.inner.get(signal)); }
  create(record: LeaseRecord, signal: AbortSignal): Promise<StoredLease> { return this.slow(() => this.inner.create(record, signal)); }
  update(record: LeaseRecord, rv: string, signal: AbortSignal): Promise<StoredLease> { return this.slow(() => this.inner.update(record, rv, signal)); }
}

const TIMES = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 };

interface Candidate { elector: LeaderElector; stop: AbortController; done: Promise<void>; events: string[]; leading: () => boolean }

function candidate(id: string, store: LeaseStore, clock: FakeClock, releaseOnCancel = true): Candidate {
  const events: string[] = [];
  let leading = false;
  const elector = new LeaderElector({
    identity: id, ...TIMES, store, clock, sleep: clock.sleep, releaseOnCancel,
    onStartedLeading: async (signal) => {
      leading = true;
      events.push(`start@${clock.now()}`);
      await new Promise<void>((r) => signal.addEventListener('abort', () => r(), { once: true }));
      leading = false;
    },
    onStoppedLeading: () => events.push(`stop@${clock.now()}`),
  });
  const stop = new AbortController();
  return { elector, stop, done: elector.run(stop.signal), events, leading: () => leading };
}

describe('LeaderElector', () => {
  let clock: FakeClock;
  let store: MemoryLeaseStore;
  const running: Candidate[] = [];
  beforeEach(() => { clock = new FakeClock(Date.parse('2026-11-27T12:00:00Z')); store = new MemoryLeaseStore(); });
  afterEach(async () => {
    for (const c of running.splice(0)) c.stop.abort();
    await clock.advance(1000);
  });
  const start = (id: string, releaseOnCancel = true): Candidate => { const c = candidate(id, store, clock, releaseOnCancel); running.push(c); return c; };

  it('takes a missing lease and writes the usual fields', async () => {
    const t0 = clock.now();
    const a = start('a');
    await settle();
    expect(a.elector.isLeader).toBe(true);
    expect(a.events).toEqual([`start@${t0}`]);
    expect(store.lease?.record).toEqual({
      holderIdentity: 'a', leaseDurationSeconds: 15, acquireTime: microTime(t0), renewTime: microTime(t0), leaseTransitions: 0,
    });
  });

  it('renews every retry period, keeping acquireTime', async () => {
    const t0 = clock.now();
    start('a');
    await settle();
    await clock.advance(6_000);
    expect(store.writes.length).toBe(4);
    expect(store.lease?.record.acquireTime).toBe(microTime(t0));
    expect(store.lease?.record.renewTime).toBe(microTime(t0 + 6_000));
    expect(store.lease?.record.leaseTransitions).toBe(0);
  });

  it('two candidates: only one leads while it renews', async () => {
    const a = start('a');
    const b = start('b');
    await settle();
    await clock.advance(60_000);
    expect([a.leading(), b.leading()].filter(Boolean)).toHaveLength(1);
    expect(store.writes.every((w) => w.holderIdentity === store.lease?.record.holderIdentity)).toBe(true);
  });

  it('a leader that dies without releasing is replaced after the lease duration, not before', async () => {
    const a = start('a', false);
    await settle();
    const b = start('b');
    await settle();
    expect(b.leading()).toBe(false);
    // "Crash": a stops renewing without releasing.
    const crashAt = clock.now();
    a.stop.abort();
    await settle();
    expect(store.lease?.record.holderIdentity).toBe('a');
    await clock.advance(TIMES.leaseDurationMs - TIMES.retryPeriodMs);
    expect(b.leading()).toBe(false);
    await clock.advance(TIMES.retryPeriodMs * 2);
    expect(b.leading()).toBe(true);
    const takeover = Number(b.events[0]?.split('@')[1]);
    expect(takeover - crashAt).toBeLessThanOrEqual(TIMES.leaseDurationMs + TIMES.retryPeriodMs);
    expect(store.lease?.record).toMatchObject({ holderIdentity: 'b', leaseTransitions: 1, acquireTime: microTime(takeover) });
  });

  it('a leader that stops releases the lease, and the other takes over at its next retry', async () => {
    const a = start('a');
    await settle();
    const b = start('b');
    await settle();
    a.stop.abort();
    await a.done;
    expect(store.lease?.record.holderIdentity).toBe('');
    const stoppedAt = clock.now();
    await clock.advance(TIMES.retryPeriodMs);
    expect(b.leading()).toBe(true);
    expect(Number(b.events[0]?.split('@')[1]) - stoppedAt).toBeLessThanOrEqual(TIMES.retryPeriodMs);
    expect(a.events.at(-1)).toMatch(/^stop@/);
  });

  it('a leader that cannot renew steps down after the renew deadline, before anyone may take over', async () => {
    const a = start('a');
    await settle();
    const lastGood = clock.now();
    store.down = true;
    await clock.advance(TIMES.renewDeadlineMs - TIMES.retryPeriodMs);
    expect(a.leading()).toBe(true);
    await clock.advance(TIMES.retryPeriodMs * 2);
    expect(a.leading()).toBe(false);
    const stoppedAt = Number(a.events.find((e) => e.startsWith('stop@'))?.split('@')[1]);
    expect(stoppedAt - lastGood).toBeLessThan(TIMES.leaseDurationMs);
    // Once the API is back, it campaigns again.
    store.down = false;
    await clock.advance(TIMES.retryPeriodMs * 2);
    expect(a.leading()).toBe(true);
  });

  it('a renewal slower than the lease is cut at the renew deadline: the old leader stops before anyone else may lead', async () => {
    const slow = new SlowStore(store, clock);
    const a = candidate('a', slow, clock);
    running.push(a);
    await settle();
    expect(a.leading()).toBe(true);
    const b = start('b');
    await settle();
    await clock.advance(TIMES.retryPeriodMs * 2, 500);
    const lastRenewStart = clock.now();
    // From now on each of a's GETs and PUTs takes 30 s: longer than the lease, and it ignores abort.
    slow.delayMs = 30_000;
    let overlapAt: number | undefined;
    for (let t = 0; t < 40_000; t += 250) {
      await clock.advance(250, 250);
      if (overlapAt === undefined && a.leading() && b.leading()) overlapAt = clock.now();
    }
    expect(overlapAt).toBeUndefined();
    expect(b.leading()).toBe(true);
    const stoppedAt = Number(a.events.find((e) => e.startsWith('stop@'))?.split('@')[1]);
    const bStartedAt = Number(b.events.find((e) => e.startsWith('start@'))?.split('@')[1]);
    expect(stoppedAt).toBeLessThan(bStartedAt);
    // Stopped within the renew deadline of the last renewal that started in time.
    expect(stoppedAt - lastRenewStart).toBeLessThanOrEqual(TIMES.renewDeadlineMs);
    // The abandoned renewal, answered late, wrote nothing: the lease is b's.
    await clock.advance(30_000, 1000);
    expect(store.lease?.record.holderIdentity).toBe('b');
    expect(store.writes.filter((w) => w.holderIdentity === 'a' && Date.parse(w.renewTime) > lastRenewStart)).toEqual([]);
  });

  it('a leader that finds someone else holding the lease steps down at once', async () => {
    const a = start('a');
    await settle();
    const current = store.lease;
    if (!current) throw new Error('no lease');
    await store.update({ ...current.record, holderIdentity: 'intruder', renewTime: microTime(clock.now()) }, current.resourceVersion);
    await clock.advance(TIMES.retryPeriodMs);
    expect(a.leading()).toBe(false);
  });

  it('candidates racing on the same resourceVersion cannot both win', async () => {
    const many = ['a', 'b', 'c', 'd', 'e'].map((id) => start(id));
    await settle();
    await clock.advance(30_000);
    expect(many.filter((c) => c.leading())).toHaveLength(1);
    expect(many.reduce((n, c) => n + c.events.filter((e) => e.startsWith('start')).length, 0)).toBe(1);
  });

  it.each([
    { times: { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 }, problems: 0 },
    { times: { leaseDurationMs: 10_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 }, problems: 1 },
    { times: { leaseDurationMs: 15_000, renewDeadlineMs: 2_000, retryPeriodMs: 2_000 }, problems: 1 },
    { times: { leaseDurationMs: 15_500, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 }, problems: 1 },
    { times: { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 0 }, problems: 1 },
  ])('validates times: $times → $problems problem(s)', ({ times, problems }) => {
    expect(validateElectorTimes(times)).toHaveLength(problems);
  });

  it('microTime has six fractional digits', () => {
    expect(microTime(Date.parse('2026-11-27T12:00:00.123Z'))).toBe('2026-11-27T12:00:00.123000Z');
  });
});
