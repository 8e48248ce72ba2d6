/**
 * The active replica's work (DESIGN §4, Controller): feeds the pure decisions in schedule.ts,
 * outcome.ts and retention.ts from caches, and carries out what they decide through
 * ControllerIO. One instance per leadership term; `run` ends when its signal aborts.
 */
import type { Logger } from 'pino';
import { formatAnswer, parseAnswer, type CheckpointAnswer } from '../api/checkpoint-request.js';
import { formatAge, parseDuration } from '../api/duration.js';
import { liveHoldSince } from '../api/eviction-hold.js';
import { NOT_TRUSTED } from '../api/image-trust.js';
import { DEFAULT_POLICY_SPEC } from '../api/policy.js';
import * as K from '../api/keys.js';
import type { Checkpoint, CheckpointStatus, CheckpointTrigger, EffectivePolicy, WorkloadRef } from '../api/types.js';
import { KubeError } from '../kube/client.js';
import { askedSubjects, failedAnswer, intake, planDemand, subjectKey, summarize, type AnnotatedWorkload, type DemandItem, type DemandSubject, type ItemResult } from './demand.js';
import type { ControllerIO, EventSubject } from './kube-io.js';
import type { ControllerMetrics } from './metrics.js';
import { classifyRestore, type RestoreOutcome } from './outcome.js';
import { planRetention } from './retention.js';
import { backoffDelay, type Backoff } from '../runtime/backoff.js';
import { hashJitter, perNodeBound, planCheckpoints, type Job, type NodeLoad, type Target, type TargetState } from './schedule.js';
import { checkpointTargets, podPolicy, workloadPolicy, type PodView, type PolicyView } from './targets.js';

export interface ControllerView extends PolicyView {
  pods(): Iterable<PodView>;
  checkpoints(): Iterable<Checkpoint>;
  checkpoint(namespace: string, name: string): Checkpoint | undefined;
  /** Grows with every change to Checkpoints (adds, updates, deletes); unchanged means unchanged. */
  checkpointsVersion(): number;
  /** Deployments, StatefulSets and ReplicaSets with a `lazarus.dev/checkpoint` annotation. */
  annotatedWorkloads(): Iterable<AnnotatedWorkload>;
  /** Name and cordon state of every node. */
  nodes(): Iterable<{ name: string; unschedulable: boolean }>;
  /** Undefined when every cache has synced. */
  notSynced(): string | undefined;
}

export interface ControllerConfig {
  maxConcurrent: number;
  tickMs: number;
  retentionIntervalMs: number;
  failedRetentionMs: number;
  /** A restored container must run this long to count as restored. */
  settleMs: number;
  /** A non-zero exit within this long after start is a failed restore. */
  earlyExitMs: number;
  /** How long a checkpoint stays Unavailable (set aside after a restore that could not start) before it is Ready again. */
  unavailableMs: number;
  jitterFactor: number;
  backoff: Backoff;
}

export interface ControllerDeps {
  view: ControllerView;
  io: ControllerIO;
  now: () => number;
  sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  log: Logger;
  metrics: ControllerMetrics;
  config: Readonly<ControllerConfig>;
  jitter?: (key: string) => number;
}

/** How soon after a change to Checkpoints retention runs again (at most this often for changes). */
export const RETENTION_AFTER_CHANGE_MS = 5_000;
/**
 * Cold starts are announced for pods created this recently: a new leader (or a restarted
 * controller) does not repeat Events its predecessor already wrote for older pods.
 */
export const COLD_START_EVENT_WINDOW_MS = 5 * 60_000;
/** How long a kubelet checkpoint's reason waits for the agent's Checkpoint (build + push, retries). */
const TRIGGER_MEMORY_MS = 15 * 60_000;
/** A Checkpoint's takenAt (the archive's time) lies this close to when the controller asked for it. */
const TRIGGER_MATCH_MS = 30_000;

const podSubject = (pod: PodView): EventSubject => ({ apiVersion: 'v1', kind: 'Pod', name: pod.name, namespace: pod.namespace, uid: pod.uid });
function workloadSubject(namespace: string, workload: WorkloadRef): EventSubject | undefined {
  return workload.kind === 'Pod' ? undefined : { apiVersion: 'apps/v1', kind: workload.kind, name: workload.name, namespace };
}

/** The policy's restore bounds; a value the CRD schema would refuse falls back to the default. */
function restoreBounds(policy: EffectivePolicy): { unschedulableTimeoutMs: number; imagePullTimeoutMs: number } {
  const d = DEFAULT_POLICY_SPEC.restore;
  const r = policy.spec.restore;
  return {
    unschedulableTimeoutMs: parseDuration(r.unschedulableTimeout) ?? parseDuration(d.unschedulableTimeout) ?? 60_000,
    imagePullTimeoutMs: parseDuration(r.imagePullTimeout) ?? parseDuration(d.imagePullTimeout) ?? 120_000,
  };
}

function demandSubject(s: DemandSubject): EventSubject {
  return { apiVersion: s.kind === 'Pod' ? 'v1' : 'apps/v1', kind: s.kind, name: s.name, namespace: s.namespace, ...(s.uid ? { uid: s.uid } : {}) };
}

/** An on-demand request this controller is working on. */
interface Demand {
  subject: DemandSubject;
  /** The annotation value written when it was accepted (`requested <time>`): the answer's precondition. */
  value: string;
  requestedAt: number;
  items: DemandItem[];
  results: Map<string, ItemResult>;
}

function describeError(err: unknown): { code: number; text: string } {
  if (err instanceof KubeError) return { code: err.status, text: err.message };
  return { code: 0, text: err instanceof Error ? err.message : String(err) };
}

export class Controller {
  private readonly states = new Map<string, TargetState>();
  private readonly cordoned = new Map<string, number>();
  /** Checkpoints in flight, per node. */
  private readonly onNode = new Map<string, Set<Job>>();
  private readonly jobs = new Set<Promise<void>>();
  /** Restored pods whose outcome is recorded, by uid. */
  private readonly decided = new Set<string>();
  /** Kubelet checkpoints taken lately, by target key: why and when, until the agent's Checkpoint carries it. */
  private readonly taken = new Map<string, { trigger: CheckpointTrigger; at: number }[]>();
  /** Cold-started pods whose Event is written (or too old to write), by uid. */
  private readonly announced = new Set<string>();
  /** On-demand requests in progress, by subjectKey. */
  private readonly demands = new Map<string, Demand>();
  /** The `requested …` value last answered per subject: a lagging cache must not make it look unserved. */
  private readonly answered = new Map<string, string>();
  /** The last ErrImagePull message per restored pod (uid) and container, from every pod update. */
  private readonly pullErrors = new Map<string, Record<string, string>>();
  private nextRetention = 0;
  private lastRetention = Number.NEGATIVE_INFINITY;
  /** checkpointsVersion() when retention last ran. */
  private retainedAt = -1;
  private wake: (() => void) | undefined;

  constructor(private readonly d: ControllerDeps) {}

  /** Something changed (e.g. a restored pod's status): look again now rather than at the next tick. */
  kick(): void { this.wake?.(); }

  /**
   * A restored pod changed (every informer update, not only what a tick sees): remembers its
   * ErrImagePull messages, which the ImagePullBackOff that follows within seconds no longer
   * carries, then looks again.
   */
  observeRestoredPod(pod: PodView): void {
    for (const s of pod.containerStatuses ?? []) {
      const waiting = s.state?.waiting;
      if (waiting?.reason !== 'ErrImagePull' || !waiting.message) continue;
      this.pullErrors.set(pod.uid, { ...this.pullErrors.get(pod.uid), [s.name]: waiting.message });
    }
    this.kick();
  }

  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const notSynced = this.d.view.notSynced();
      if (notSynced) this.d.log.debug({ notSynced }, 'waiting for caches');
      else await this.tick(signal);
      // Sleep a tick, or less when kicked; the sleep ends either way so no timers pile up.
      const wait = new AbortController();
      this.wake = () => wait.abort();
      await this.d.sleep(this.d.config.tickMs, AbortSignal.any([signal, wait.signal]));
      this.wake = undefined;
    }
    await Promise.allSettled([...this.jobs]);
  }

  async tick(signal: AbortSignal): Promise<void> {
    const now = this.d.now();
    this.observeNodes(now);
    await this.guard('checkpoint requests', () => this.takeRequests(now));
    this.startCheckpoints(now, signal);
    await this.guard('checkpoint answers', () => this.answerRequests());
    await this.guard('restore outcomes', () => this.restoreOutcomes());
    await this.guard('cold starts', () => this.announceColdStarts(now));
    await this.guard('checkpoint triggers', () => this.recordTriggers(now));
    // A Checkpoint that changed (a new one Ready) brings retention forward, so `retain` holds
    // seconds after a checkpoint, not up to a retention interval later.
    if (this.d.view.checkpointsVersion() !== this.retainedAt) this.nextRetention = Math.min(this.nextRetention, this.lastRetention + RETENTION_AFTER_CHANGE_MS);
    if (now >= this.nextRetention) {
      this.retainedAt = this.d.view.checkpointsVersion();
      await this.guard('retention', () => this.retention(now));
      this.lastRetention = now;
      this.nextRetention = now + this.d.config.retentionIntervalMs;
    }
  }

  /** Waits for the checkpoint requests started so far (tests). */
  async idle(): Promise<void> { await Promise.allSettled([...this.jobs]); }

  private async guard(what: string, work: () => Promise<void>): Promise<void> {
    try {
      await work();
    } catch (err) {
      this.d.log.warn({ err: describeError(err).text }, `${what} failed; retrying next tick`);
    }
  }

  private async emit(subjects: (EventSubject | undefined)[], type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    for (const regarding of subjects) {
      if (!regarding) continue;
      try {
        await this.d.io.event({ regarding, type, reason, message });
      } catch (err) {
        this.d.log.warn({ err: describeError(err).text, reason, object: `${regarding.kind}/${regarding.name}` }, 'could not record event');
      }
    }
  }

  // ---- checkpoints ------------------------------------------------------------------------

  private observeNodes(now: number): void {
    const seen = new Set<string>();
    for (const node of this.d.view.nodes()) {
      seen.add(node.name);
      if (!node.unschedulable) this.cordoned.delete(node.name);
      else if (!this.cordoned.has(node.name)) {
        this.cordoned.set(node.name, now);
        this.d.log.info({ node: node.name }, 'node cordoned');
      }
    }
    for (const name of this.cordoned.keys()) if (!seen.has(name)) this.cordoned.delete(name);
  }

  /** Newest takenAt per namespace/pod/container from Checkpoint objects (any phase but Failed). */
  private knownCheckpoints(): Map<string, number> {
    const newest = new Map<string, number>();
    for (const cp of this.d.view.checkpoints()) {
      if (cp.status?.phase === 'Failed') continue;
      const at = Date.parse(cp.spec.takenAt);
      if (!Number.isFinite(at)) continue;
      const key = `${cp.metadata.namespace ?? ''}/${cp.spec.sourcePod}/${cp.spec.container}`;
      if ((newest.get(key) ?? 0) < at) newest.set(key, at);
    }
    return newest;
  }

  private startCheckpoints(now: number, signal: AbortSignal): void {
    const targets: Target[] = checkpointTargets(this.d.view.pods(), this.d.view, now);
    const scheduled = new Set(targets.map((t) => t.key));
    for (const demand of this.demands.values()) {
      for (const item of demand.items) {
        if (item.target && !scheduled.has(item.key)) { targets.push(item.target); scheduled.add(item.key); }
      }
    }
    const known = this.knownCheckpoints();
    const live = new Set<string>();
    for (const t of targets) {
      live.add(t.key);
      const fromObjects = known.get(t.key);
      const state = this.states.get(t.key);
      if (fromObjects !== undefined && (state?.lastCheckpointAt ?? 0) < fromObjects) {
        this.states.set(t.key, { ...(state ?? { failures: 0 }), lastCheckpointAt: fromObjects });
      }
    }
    for (const key of this.states.keys()) if (!live.has(key)) this.states.delete(key);

    const jobs = planCheckpoints({
      targets, now,
      state: (key) => this.states.get(key),
      cordonedAt: (node) => this.cordoned.get(node),
      demanded: (key) => this.demandedAt(key),
      nodeLoad: this.nodeLoad(),
      running: new Set([...this.onNode.values()].flatMap((jobs) => [...jobs].map((j) => j.target.key))),
      inFlight: this.jobs.size,
      maxConcurrent: this.d.config.maxConcurrent,
      jitter: this.d.jitter ?? hashJitter,
      jitterFactor: this.d.config.jitterFactor,
      backoff: this.d.config.backoff,
    });
    for (const job of jobs) {
      const node = job.target.node;
      const here = this.onNode.get(node) ?? new Set<Job>();
      here.add(job);
      this.onNode.set(node, here);
      const running = this.checkpoint(job, signal).finally(() => {
        here.delete(job);
        if (!here.size && this.onNode.get(node) === here) this.onNode.delete(node);
        this.jobs.delete(running);
        this.d.metrics.inFlight.set(this.jobs.size);
        this.kick();
      });
      this.jobs.add(running);
      this.d.metrics.inFlight.set(this.jobs.size);
    }
  }

  /** Per node: checkpoints in flight and the smallest per-node bound among their policies. */
  private nodeLoad(): Map<string, NodeLoad> {
    const load = new Map<string, NodeLoad>();
    for (const [node, jobs] of this.onNode) {
      let bound = Number.POSITIVE_INFINITY;
      for (const job of jobs) bound = Math.min(bound, perNodeBound(job.target));
      load.set(node, { inFlight: jobs.size, bound });
    }
    return load;
  }

  private async checkpoint(job: Job, signal: AbortSignal): Promise<void> {
    const t = job.target;
    const subject: EventSubject = { apiVersion: 'v1', kind: 'Pod', name: t.pod, namespace: t.namespace, uid: t.podUid };
    this.d.log.info({ pod: `${t.namespace}/${t.pod}`, container: t.container, node: t.node, reason: job.reason }, 'checkpointing');
    const startedAt = this.d.now();
    try {
      const paths = await this.d.io.checkpoint(t.node, t.namespace, t.pod, t.container, t.timeoutSeconds, signal);
      this.states.set(t.key, { lastCheckpointAt: this.d.now(), failures: 0 });
      this.taken.set(t.key, [...(this.taken.get(t.key) ?? []), { trigger: this.triggerOf(job), at: startedAt }]);
      this.d.metrics.checkpointsTaken.inc({ reason: job.reason });
      this.recordDemand(t.key, startedAt, { ok: true, node: t.node, paths });
      const why = job.reason === 'drain' ? `node ${t.node} is cordoned` : job.reason === 'demand' ? `requested with ${K.CHECKPOINT_REQUEST}` : 'periodic';
      await this.emit([subject], 'Normal', 'CheckpointTaken', `checkpoint of container ${t.container} (${why}) written to ${paths.join(', ') || 'the kubelet checkpoint directory'}`);
    } catch (err) {
      if (signal.aborted) return;
      const before = this.states.get(t.key);
      const failures = (before?.failures ?? 0) + 1;
      this.states.set(t.key, { ...before, failures, lastFailureAt: this.d.now() });
      const { code, text } = describeError(err);
      this.d.metrics.checkpointsFailed.inc({ reason: job.reason, code: String(code) });
      const hint = code === 404 ? ' (is the ContainerCheckpoint feature gate on in the kubelet?)' : '';
      this.recordDemand(t.key, startedAt, { ok: false, reason: `node ${t.node}${hint}: ${text}` });
      const retry = job.reason === 'demand' ? `not retried (requested with ${K.CHECKPOINT_REQUEST})` : `retrying in ${formatAge(backoffDelay(failures, this.d.config.backoff))}`;
      this.d.log.warn({ pod: `${t.namespace}/${t.pod}`, container: t.container, node: t.node, code, failures, err: text }, 'checkpoint failed');
      await this.emit([subject], 'Warning', 'CheckpointFailed', `checkpoint of container ${t.container} on node ${t.node} failed${hint}: ${text}; ${retry}`);
    }
  }

  // ---- checkpoint on demand ---------------------------------------------------------------

  /** Reads `lazarus.dev/checkpoint` on pods and workloads: accepts `now`, carries on orphaned `requested`. */
  private async takeRequests(now: number): Promise<void> {
    const seen = new Set<string>();
    for (const { subject, value } of askedSubjects(this.d.view.pods(), this.d.view.annotatedWorkloads())) {
      const key = subjectKey(subject);
      seen.add(key);
      const parsed = parseAnswer(value);
      if (parsed?.state === 'taken' || parsed?.state === 'failed') this.answered.delete(key);
      const what = intake(value, { pending: this.demands.has(key), answered: this.answered.get(key) });
      if (what.action === 'ignore') continue;
      if (what.action === 'reject') {
        await this.finish(subject, value, failedAnswer(what.reason, now));
        continue;
      }
      const plan = planDemand(subject, this.d.view.pods(), this.d.view, now);
      if ('error' in plan) {
        await this.finish(subject, value, failedAnswer(plan.error, now));
        continue;
      }
      let accepted = value;
      if (what.action === 'claim') {
        accepted = formatAnswer({ state: 'requested', at: now });
        // A lagging cache may still show `now` after we answered: the precondition turns that away.
        if (!(await this.d.io.answer(subject, value, accepted))) continue;
        const pods = new Set(plan.items.map((i) => i.pod));
        const containers = plan.items.filter((i) => i.target).length;
        await this.emit([demandSubject(subject)], 'Normal', 'CheckpointRequested', `checkpoint requested with ${K.CHECKPOINT_REQUEST}=now: ${containers} running container(s) of ${pods.size} pod(s)`);
      }
      this.d.log.info({ subject: key, action: what.action, containers: plan.items.length }, 'checkpoint requested');
      this.demands.set(key, { subject, value: accepted, requestedAt: what.action === 'adopt' ? what.requestedAt : now, items: plan.items, results: new Map() });
    }
    for (const key of this.answered.keys()) if (!seen.has(key)) this.answered.delete(key);
  }

  /** The earliest open request for this container; undefined when none. */
  private demandedAt(key: string): number | undefined {
    let at: number | undefined;
    for (const d of this.demands.values()) {
      if (d.results.has(key) || !d.items.some((i) => i.key === key && i.target)) continue;
      if (at === undefined || d.requestedAt < at) at = d.requestedAt;
    }
    return at;
  }

  /** A checkpoint started at or after a request serves it, whatever made it due. */
  private recordDemand(key: string, startedAt: number, result: ItemResult): void {
    for (const d of this.demands.values()) {
      if (d.requestedAt > startedAt || d.results.has(key) || !d.items.some((i) => i.key === key && i.target)) continue;
      d.results.set(key, result);
    }
  }

  /** Answers every request whose containers all have a result. */
  private async answerRequests(): Promise<void> {
    for (const [key, d] of this.demands) {
      if (d.items.some((i) => i.target && !d.results.has(i.key))) continue;
      await this.finish(d.subject, d.value, summarize(d.subject, d.items, d.results, this.d.now()));
      this.demands.delete(key);
    }
  }

  /** Writes the answer if the annotation still reads `expected` (a new `now` is never overwritten). */
  private async finish(subject: DemandSubject, expected: string, answer: CheckpointAnswer): Promise<void> {
    const text = formatAnswer(answer);
    const key = subjectKey(subject);
    if (!(await this.d.io.answer(subject, expected, text))) {
      this.d.log.info({ subject: key, expected }, 'checkpoint request changed meanwhile; answer dropped');
      return;
    }
    this.answered.set(key, expected);
    const taken = answer.state === 'taken';
    this.d.metrics.checkpointRequests.inc({ kind: subject.kind, result: taken ? 'taken' : 'failed' });
    this.d.log.info({ subject: key, answer: text }, 'checkpoint request answered');
    await this.emit([demandSubject(subject)], taken ? 'Normal' : 'Warning', taken ? 'CheckpointTaken' : 'CheckpointFailed', `on-demand checkpoint of ${subject.kind} ${subject.name}: ${text}`);
  }

  // ---- restore outcome --------------------------------------------------------------------

  private async restoreOutcomes(): Promise<void> {
    const now = this.d.now();
    const present = new Set<string>();
    for (const pod of this.d.view.pods()) {
      if (!pod.annotations?.[K.RESTORED_FROM]) continue;
      present.add(pod.uid);
      if (this.decided.has(pod.uid) || pod.deleting) continue;
      const { policy } = podPolicy(pod, this.d.view);
      const pullErrors = this.pullErrors.get(pod.uid);
      const outcome = classifyRestore({
        annotations: pod.annotations,
        ...(pod.phase ? { phase: pod.phase } : {}),
        ...(pod.startTime ? { startTime: pod.startTime } : {}),
        ...(pod.unschedulable ? { unschedulable: pod.unschedulable } : {}),
        ...(pullErrors ? { lastPullErrors: pullErrors } : {}),
        ...(pod.containerStatuses ? { containerStatuses: pod.containerStatuses } : {}),
      }, { now, settleMs: this.d.config.settleMs, earlyExitMs: this.d.config.earlyExitMs, ...restoreBounds(policy) });
      if (!outcome || outcome.verdict === 'pending') continue;
      await this.record(pod, outcome, now);
      this.decided.add(pod.uid);
    }
    for (const uid of this.decided) if (!present.has(uid)) this.decided.delete(uid);
    for (const uid of this.pullErrors.keys()) if (!present.has(uid)) this.pullErrors.delete(uid);
  }

  /** An on-demand checkpoint of a pod whose eviction Lazarus holds was asked for by that hold. */
  private triggerOf(job: Job): CheckpointTrigger {
    if (job.reason !== 'demand') return job.reason;
    const t = job.target;
    for (const pod of this.d.view.pods()) {
      if (pod.uid !== t.podUid) continue;
      const timeout = parseDuration(podPolicy(pod, this.d.view).policy.spec.checkpoint.evictionTimeout) ?? 60_000;
      return liveHoldSince(pod.annotations, timeout, this.d.now()) === undefined ? 'demand' : 'eviction';
    }
    return 'demand';
  }

  /**
   * The agent writes a Checkpoint from the kubelet's archive and cannot know why it was taken; the
   * controller asked for it, so it says in status.trigger (what `lazarus explain` prints): the
   * record of the same pod and container closest in time to the Checkpoint's takenAt.
   */
  private async recordTriggers(now: number): Promise<void> {
    for (const [key, list] of this.taken) {
      const fresh = list.filter((r) => now - r.at < TRIGGER_MEMORY_MS);
      if (fresh.length) this.taken.set(key, fresh);
      else this.taken.delete(key);
    }
    if (this.taken.size === 0) return;
    for (const cp of this.d.view.checkpoints()) {
      if (cp.status?.trigger || cp.status?.phase !== 'Ready') continue;
      const records = this.taken.get(`${cp.metadata.namespace ?? ''}/${cp.spec.sourcePod}/${cp.spec.container}`);
      if (!records) continue;
      const takenAt = Date.parse(cp.spec.takenAt);
      let best: { trigger: CheckpointTrigger; at: number } | undefined;
      for (const r of records) if (Math.abs(r.at - takenAt) <= TRIGGER_MATCH_MS && (!best || Math.abs(r.at - takenAt) < Math.abs(best.at - takenAt))) best = r;
      if (!best) continue;
      const trigger = best.trigger;
      await this.d.io.updateCheckpointStatus(cp.metadata.namespace ?? '', cp.metadata.name ?? '', (current) =>
        current.status?.trigger ? undefined : { ...current.status, trigger });
    }
  }

  /**
   * The webhook writes why it started an opted-in pod cold (K.COLD_START); say it once per pod as
   * an Event where `kubectl describe pod` shows it. A Checkpoint naming an image Lazarus does not
   * trust means somebody wrote one the agents did not push: a Warning, on the workload too.
   */
  private async announceColdStarts(now: number): Promise<void> {
    const present = new Set<string>();
    for (const pod of this.d.view.pods()) {
      const why = pod.annotations?.[K.COLD_START];
      if (!why) continue;
      present.add(pod.uid);
      if (this.announced.has(pod.uid) || pod.deleting) continue;
      this.announced.add(pod.uid);
      if (!(now - Date.parse(pod.createdAt ?? '') <= COLD_START_EVENT_WINDOW_MS)) continue;
      if (why.includes(NOT_TRUSTED)) {
        const { workload } = podPolicy(pod, this.d.view);
        this.d.metrics.untrustedCheckpoints.inc();
        await this.emit([podSubject(pod), workloadSubject(pod.namespace, workload)], 'Warning', 'UntrustedCheckpoint', `pod ${pod.name} started cold: ${why}`);
      } else {
        await this.emit([podSubject(pod)], 'Normal', 'StartedCold', `started cold: ${why}`);
      }
    }
    for (const uid of this.announced) if (!present.has(uid)) this.announced.delete(uid);
  }

  /**
   * Writes the outcome on each restored-from Checkpoint, with Events, and sends a pod that did not
   * come back to the cold path (deleted, so that its controller recreates it):
   * - failed: the checkpoint is at fault → phase Failed, and the webhook never picks it again;
   * - unavailable (Unschedulable, a pull error that may clear): the checkpoint is not at fault →
   *   phase Unavailable for `unavailableMs`, so the replacement starts cold (the webhook wants
   *   Ready) and a later pod may restore from it again; lastRestore says what happened.
   */
  private async record(pod: PodView, outcome: RestoreOutcome, now: number): Promise<void> {
    const at = new Date(now).toISOString();
    const node = pod.nodeName ?? '';
    const where = node ? ` on node ${node}` : '';
    const { workload } = podPolicy(pod, this.d.view);
    const subjects = [podSubject(pod), workloadSubject(pod.namespace, workload)];
    const culprits = outcome.containers.filter((c) => c.verdict === outcome.verdict && outcome.verdict !== 'succeeded');
    const readyAgain = new Date(now + this.d.config.unavailableMs).toISOString();
    let fresh = false;
    for (const c of outcome.containers) {
      const own = c.verdict === 'failed' || c.verdict === 'unavailable';
      const message = own ? c.message : culprits.length ? `container ${culprits.map((f) => f.container).join(', ')} of the same pod ${outcome.verdict === 'unavailable' ? 'could not start' : 'failed to restore'}` : '';
      const change = (cp: Checkpoint): CheckpointStatus | undefined => {
        const last = cp.status?.lastRestore;
        const result = outcome.verdict === 'succeeded' ? 'Succeeded' : 'Failed';
        if (last?.pod === pod.name && last.outcome === result) return undefined; // recorded already (e.g. by a previous leader)
        const phase: Partial<CheckpointStatus> = c.verdict === 'failed'
          ? { phase: 'Failed', reason: `restore of pod ${pod.name}${where} failed: ${c.message}` }
          // Only a Ready checkpoint is set aside: a Failed one stays Failed.
          : c.verdict === 'unavailable' && cp.status?.phase === 'Ready'
            ? { phase: 'Unavailable', reason: `restore of pod ${pod.name} could not start: ${c.message}; not the checkpoint's fault, Ready again at ${readyAgain}` }
            : {};
        return {
          ...cp.status,
          ...(outcome.verdict === 'succeeded' ? { restores: (cp.status?.restores ?? 0) + 1 } : {}),
          ...phase,
          lastRestore: { pod: pod.name, node, at, outcome: result, ...(message ? { message } : {}) },
        };
      };
      try {
        if (await this.d.io.updateCheckpointStatus(pod.namespace, c.checkpoint, change)) fresh = true;
      } catch (err) {
        // A checkpoint deleted meanwhile must not keep the pod from falling back.
        if (!(err instanceof KubeError && err.status === 404)) throw err;
        this.d.log.warn({ checkpoint: `${pod.namespace}/${c.checkpoint}` }, 'restored-from checkpoint no longer exists');
      }
    }
    const names = outcome.containers.map((c) => `${c.container} from ${c.checkpoint}`).join(', ');
    if (outcome.verdict === 'succeeded') {
      if (fresh) {
        this.d.metrics.restoresSucceeded.inc();
        await this.emit(subjects, 'Normal', 'Restored', `pod ${pod.name} restored on node ${node}: ${names}`);
      }
      this.d.log.info({ pod: `${pod.namespace}/${pod.name}`, fresh }, 'restore succeeded');
      return;
    }
    const owned = (pod.ownerReferences ?? []).some((r) => r.controller);
    const why = outcome.unschedulable ?? culprits.map((f) => `${f.container} (${f.checkpoint}): ${f.message}`).join('; ');
    if (fresh) {
      const next = owned ? 'deleting the pod so that its replacement starts cold' : 'the pod has no controller, so it is left for you to delete';
      if (outcome.verdict === 'failed') {
        this.d.metrics.restoresFailed.inc();
        await this.emit(subjects, 'Warning', 'RestoreFailed', `restore of pod ${pod.name}${where} failed: ${why}; ${next}`);
      } else {
        const reason = outcome.unschedulable ? 'RestoreUnschedulable' : 'RestoreImageUnavailable';
        this.d.metrics.restoresUnavailable.inc({ reason });
        const cps = culprits.map((f) => f.checkpoint).join(', ');
        await this.emit(subjects, 'Warning', reason, `restored pod ${pod.name} ${outcome.unschedulable ? why : `could not start: ${why}`}; ${next}; checkpoint ${cps} is set aside (Unavailable) until ${readyAgain}, not Failed`);
      }
    }
    this.d.log.warn({ pod: `${pod.namespace}/${pod.name}`, verdict: outcome.verdict, why, owned }, 'restore did not succeed');
    if (owned) {
      await this.d.io.deletePod(pod.namespace, pod.name, pod.uid);
      this.d.metrics.fallbacks.inc();
    }
  }

  // ---- retention --------------------------------------------------------------------------

  private async retention(now: number): Promise<void> {
    const podLabels = new Map<string, Record<string, string> | undefined>();
    const podContainers = new Map<string, readonly string[]>();
    const held = new Set<string>();
    for (const pod of this.d.view.pods()) {
      podLabels.set(`${pod.namespace}/${pod.name}`, pod.labels);
      podContainers.set(`${pod.namespace}/${pod.name}`, pod.containers);
      if (pod.annotations?.[K.EVICTION_HELD_SINCE]) {
        const timeout = parseDuration(podPolicy(pod, this.d.view).policy.spec.checkpoint.evictionTimeout) ?? 60_000;
        if (liveHoldSince(pod.annotations, timeout, now) !== undefined) held.add(`${pod.namespace}/${pod.name}`);
      }
    }
    const plan = planRetention({
      checkpoints: this.d.view.checkpoints(), now, failedRetentionMs: this.d.config.failedRetentionMs, unavailableMs: this.d.config.unavailableMs,
      retain: (namespace, workload) => workloadPolicy(namespace, workload, this.d.view, podLabels.get(`${namespace}/${workload.name}`)).spec.checkpoint.retain,
      podContainers: (namespace, pod) => podContainers.get(`${namespace}/${pod}`),
      held: (namespace, pod) => held.has(`${namespace}/${pod}`),
    });
    for (const cp of plan.revive) {
      const ns = cp.metadata.namespace ?? '';
      const name = cp.metadata.name ?? '';
      const readyAgain = (current: Checkpoint): CheckpointStatus | undefined => {
        if (current.status?.phase !== 'Unavailable') return undefined;
        const { reason: _setAside, ...status } = current.status;
        return { ...status, phase: 'Ready' };
      };
      if (await this.d.io.updateCheckpointStatus(ns, name, readyAgain)) {
        this.d.log.info({ checkpoint: `${ns}/${name}` }, 'checkpoint Ready again after being set aside');
      }
    }
    for (const cp of plan.expire) {
      const ns = cp.metadata.namespace ?? '';
      const name = cp.metadata.name ?? '';
      // Expired first, so a reader between the two writes never picks it (the webhook wants Ready).
      await this.d.io.updateCheckpointStatus(ns, name, (current) => current.status?.phase === 'Ready' || current.status?.phase === 'Unavailable'
        ? { ...current.status, phase: 'Expired', reason: `not in the ${cp.spec.workload.kind}/${cp.spec.workload.name} checkpoint sets kept by retain (the newest restorable sets, one checkpoint per container of one source pod and round)` }
        : undefined);
      await this.d.io.deleteCheckpoint(ns, name);
      this.d.metrics.checkpointsExpired.inc();
      this.d.metrics.checkpointsDeleted.inc({ phase: 'Expired' });
      this.d.log.info({ checkpoint: `${ns}/${name}` }, 'checkpoint expired');
    }
    for (const cp of plan.remove) {
      await this.d.io.deleteCheckpoint(cp.metadata.namespace ?? '', cp.metadata.name ?? '');
      this.d.metrics.checkpointsDeleted.inc({ phase: cp.status?.phase ?? 'Unknown' });
      this.d.log.info({ checkpoint: `${cp.metadata.namespace ?? ''}/${cp.metadata.name ?? ''}`, phase: cp.status?.phase }, 'checkpoint deleted');
    }
  }
}
