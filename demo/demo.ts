/**
 * The demo's steps: an annotated Deployment's pod comes back from its newest usable checkpoint,
 * on the best node that can restore it; again when the pod is replaced; and on the next best
 * node when the best one is cordoned. Every step is narrated with its duration, and the
 * per-node verdicts are `lazarus explain`'s own output.
 *
 * Where it runs is an Environment (environment.ts): a local control plane with Lazarus started
 * here, or an existing cluster where Lazarus is installed.
 */
import * as K from '../api/keys.js';
import type { KubeClient } from '../kube/client.js';
import { selectPolicy } from '../api/policy.js';
import { specHash } from '../api/spec-hash.js';
import type { Checkpoint, Node, Pod } from '../api/types.js';
import { MAX_SCORE, SCORE, parsePairs } from '../api/compat.js';
import { explainPod, formatExplanation, type Explanation } from '../explain/explain.js';
import { snapshot } from '../explain/command.js';
import { createNamespace, waitFor } from '../kube/wait.js';
import { sleep } from '../runtime/sleep.js';
import { fakeNode, microTime, nodeLease, HEARTBEAT_MS, NODE_LEASE_NAMESPACE } from './fake-nodes.js';
import {
  APP, CHECKPOINT_REGISTRY, CONTAINER, DEMO_LABEL, DEMO_TAINT, NAMESPACE, POLICY, demoCheckpoints, demoDeployment, demoNodes, demoPolicy, type DemoNode,
} from './scenario.js';
import type { Narrator } from './narrate.js';
import { checkpointVerdicts, explainNodeLines, indent, nodeTable, originLine, scoreLegend, shortDigest, verdictLines } from './narrate.js';
import type { Environment } from './environment.js';
import { createCheckpointObject } from './checkpoint-writer.js';

/** A kubelet's default; the node-lifecycle controller goes by its own grace period, not this. */
const LEASE_SECONDS = 40;

export interface DemoDeps {
  narrator: Narrator;
  clock: () => number;
  signal: AbortSignal;
  /** How long to wait for each pod (default 30 s). */
  podTimeoutMs?: number;
}

type BoundPod = Pod & { spec: Pod['spec'] & { nodeName?: string }; metadata: Pod['metadata'] & { deletionTimestamp?: string } };

/** Runs the scenario in `env`; throws with a one-line reason when Lazarus does not do its job. */
export async function runScenario(env: Environment, deps: DemoDeps): Promise<void> {
  const { narrator: say, signal } = deps;
  const client = env.client;
  const nodes = demoNodes(env.nodePrefix);

  // The nodes' heartbeats run until the scenario ends (or is abandoned on Ctrl-C).
  const beating = new AbortController();
  const beatSignal = AbortSignal.any([signal, beating.signal]);
  try {
    await say.step(async () => {
      // Pods are refused until the namespace's default ServiceAccount exists: createNamespace waits for it.
      await createNamespace(client, NAMESPACE, { [DEMO_LABEL]: 'true' }, { signal });
      await client.request('POST', `/apis/${K.API_VERSION}/restorepolicies`, { body: demoPolicy() });
      const made: Node[] = [];
      for (const n of nodes) made.push(await createDemoNode(client, n, deps.clock()));
      void keepNodesReady(client, made.map((n) => n.metadata.name ?? ''), deps.clock, beatSignal);
    }, () => ({
      title: `${nodes.length} nodes that differ in architecture, kernel, CRIU, CPU and runtime`,
      details: [
        ...nodeTable(nodes),
        'fake nodes without kubelets: the scheduler binds pods to them, nothing runs; the demo renews their',
        `  Leases (${NODE_LEASE_NAMESPACE}) while it runs, so the node lifecycle controller keeps them Ready`,
        `tainted ${DEMO_TAINT.key}=${DEMO_TAINT.value}:${DEMO_TAINT.effect}: only the demo's pods land there (a DaemonSet that tolerates`,
        '  every taint may bind pods to them too: those never start, and go with the nodes)',
        `RestorePolicy ${POLICY}, for namespace ${NAMESPACE} only: trusts checkpoint images under ${CHECKPOINT_REGISTRY}/`,
        '  (named, never pulled), no checkpoint on drain (no agent runs on a fake node)',
      ],
    }));
    await scenarioActs(env, deps);
  } finally {
    beating.abort();
  }
}

/** The checkpoints and the three acts, on the demo's nodes. */
async function scenarioActs(env: Environment, deps: DemoDeps): Promise<void> {
  const { narrator: say, signal } = deps;
  const client = env.client;
  const nodeName = (short: string): string => `${env.nodePrefix}${short}`;

  const made = demoCheckpoints(deps.clock());
  const checkpoints = await say.step(async () => {
    const out: Checkpoint[] = [];
    for (const { checkpoint, status } of made) out.push(await createCheckpoint(client, checkpoint, status));
    return out;
  }, (cps) => ({
    title: `${cps.length} checkpoints of ${NAMESPACE}/${APP} container ${CONTAINER.name}, taken on node-lost (gone)`,
    details: [`origin: ${made[0] ? originLine(made[0].checkpoint) : ''}`],
  }));
  await env.webhookSees(NAMESPACE, checkpoints.length, signal);

  const podHash = specHash(CONTAINER);
  const wait = (not?: string): Promise<BoundPod> => boundPod(client, not, signal, deps.podTimeoutMs ?? 30_000);
  const restored = (p: BoundPod): { title: string; ok: boolean } => {
    const from = parsePairs(p.metadata.annotations?.[K.RESTORED_FROM]).get(CONTAINER.name);
    return { ok: from !== undefined, title: `${p.metadata.name ?? ''} ${from ? `restored from ${from}` : 'started cold'} → ${p.spec.nodeName ?? ''}` };
  };

  // 1 -------------------------------------------------------------------------------------
  say.section('1. An annotated Deployment: its first pod is restored and placed');
  await say.step(() => client.request('POST', `/apis/apps/v1/namespaces/${NAMESPACE}/deployments`, { body: demoDeployment() }), () => ({
    title: `Deployment ${NAMESPACE}/${APP} created, annotated ${K.RESTORE}=enabled`,
    details: [`image ${CONTAINER.image ?? ''}, spec hash ${podHash} (of image, command, args, env, mounts)`],
  }));
  const first = await say.step(() => wait(), restored);
  const e1 = await explain(client, first, deps.clock());
  const chosen = e1.restoredFrom?.[CONTAINER.name];
  const view = (await snapshot(client, NAMESPACE, first)).view;
  const policy = selectPolicy(view.policies(), { namespaceLabels: view.namespaceLabels(NAMESPACE), workloadLabels: { app: APP } });
  say.lines(indent([
    'which checkpoint (the webhook took the newest Ready one with the pod\'s spec hash):',
    ...indent(verdictLines(checkpointVerdicts({ checkpoints, specHash: podHash, chosen, now: deps.clock(), maxAgeMs: policy.maxCheckpointAgeMs, maxAge: policy.spec.maxCheckpointAge })), '  '),
    `image: ${CONTAINER.image ?? ''} → ${shortDigest(first.spec.containers[0]?.image ?? '')}`,
    `required node affinity added by the webhook: ${affinityText(first)}`,
    `$ lazarus explain pod ${NAMESPACE}/${first.metadata.name ?? ''}`,
    ...indent(formatExplanation(e1).split('\n'), '  '),
    scoreLegend(SCORE, MAX_SCORE),
  ]));
  expectRestored(e1, first, chosen);
  expectBest(e1, first);

  // 2 -------------------------------------------------------------------------------------
  say.section('2. The pod is deleted (as a drain or an eviction would): the replacement is restored too');
  const second = await say.step(async () => {
    await deletePod(client, first.metadata.name ?? '');
    return wait(first.metadata.name);
  }, restored);
  const e2 = await explain(client, second, deps.clock());
  say.lines(indent(explainNodeLines(formatExplanation(e2))));
  expectRestored(e2, second, chosen);
  expectBest(e2, second);

  // 3 -------------------------------------------------------------------------------------
  const best = second.spec.nodeName ?? nodeName('node-exact');
  say.section(`3. ${best} is cordoned and the pod deleted again: the next best node takes it`);
  const third = await say.step(async () => {
    await client.request('PATCH', `/api/v1/nodes/${best}`, { body: { spec: { unschedulable: true } }, contentType: 'application/merge-patch+json' });
    await deletePod(client, second.metadata.name ?? '');
    return wait(second.metadata.name);
  }, restored);
  const e3 = await explain(client, third, deps.clock());
  say.lines(indent(explainNodeLines(formatExplanation(e3))));
  expectRestored(e3, third, chosen);
  expectBest(e3, third);
  if (third.spec.nodeName === best) throw new Error(`pod ${third.metadata.name ?? ''} was bound to the cordoned node ${best}`);
}

/** `kubernetes.io/arch In amd64, lazarus.dev/criu-version Gt 40100, lazarus.dev/restore-capable In true, …`: what the scheduler's own filters enforce. */
function affinityText(pod: BoundPod): string {
  const terms = pod.spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? [];
  const exprs = terms.flatMap((t) => t.matchExpressions ?? []);
  return exprs.map((e) => `${e.key} ${e.operator} ${(e.values ?? []).join(',')}`).join(', ') || '(none)';
}

async function explain(client: KubeClient, pod: BoundPod, now: number): Promise<Explanation> {
  const { view, nodes } = await snapshot(client, NAMESPACE, pod);
  return explainPod(pod, NAMESPACE, view, nodes.filter((n) => n.metadata.labels?.[DEMO_LABEL] === 'true'), now, undefined, '');
}

function expectRestored(e: Explanation, pod: BoundPod, chosen: string | undefined): void {
  const name = pod.metadata.name ?? '';
  if (!e.restoredFrom || !chosen) {
    const w = e.wouldRestore;
    const why = w?.outcome === 'restored'
      ? `the webhook did not restore it, though it would now (from ${Object.values(w.checkpoints ?? {}).join(', ')}): is it running and reachable?`
      : w?.reason ?? 'the webhook did not restore it';
    throw new Error(`pod ${name} started cold: ${why}`);
  }
  const from = e.restoredFrom[CONTAINER.name];
  if (from !== chosen) throw new Error(`pod ${name} was restored from ${from ?? '(nothing)'}, not ${chosen}`);
}

/** The scheduler must have picked a compatible node with the best score among the schedulable ones. */
function expectBest(e: Explanation, pod: BoundPod): void {
  const candidates = e.nodes.filter((n) => n.compatible && n.ready && !n.unschedulable);
  const top = Math.max(...candidates.map((n) => n.score));
  const bound = e.nodes.find((n) => n.node === pod.spec.nodeName);
  if (!bound?.compatible) throw new Error(`pod ${pod.metadata.name ?? ''} was bound to ${pod.spec.nodeName ?? '?'}, which cannot restore it: ${bound?.reasons.join('; ') ?? 'not a demo node'}`);
  if (bound.score < top) {
    const want = candidates.filter((n) => n.score === top).map((n) => n.node).join(' or ');
    throw new Error(`pod ${pod.metadata.name ?? ''} was bound to ${bound.node} (score ${bound.score}), but ${want} scores ${top}: is kube-scheduler configured with the Lazarus extender?`);
  }
}

/** A fake Node as a kubelet and the Lazarus agent would publish it, tainted for the demo only, with its heartbeat Lease. */
async function createDemoNode(client: KubeClient, spec: DemoNode, now: number): Promise<Node> {
  const { note: _note, ...fake } = spec;
  const { node, status } = fakeNode(fake);
  const withTaint = { ...node, spec: { ...(node as { spec?: Record<string, unknown> }).spec, taints: [DEMO_TAINT] } };
  const created = await client.request<Node>('POST', '/api/v1/nodes', { body: withTaint });
  await client.request('POST', `/apis/coordination.k8s.io/v1/namespaces/${NODE_LEASE_NAMESPACE}/leases`, { body: nodeLease({ name: spec.name, uid: created.metadata.uid ?? '' }, now, LEASE_SECONDS) });
  return client.request<Node>('PATCH', `/api/v1/nodes/${spec.name}/status`, { body: { status }, contentType: 'application/merge-patch+json' });
}

/**
 * A kubelet's heartbeat for each of `nodes`: renews their Leases every HEARTBEAT_MS until
 * `signal` aborts. A failed renewal is tried again at the next beat.
 */
async function keepNodesReady(client: KubeClient, nodes: readonly string[], clock: () => number, signal: AbortSignal): Promise<void> {
  for (;;) {
    await sleep(HEARTBEAT_MS, signal);
    if (signal.aborted) return;
    const body = { spec: { renewTime: microTime(clock()) } };
    await Promise.all(nodes.map((n) => client.request('PATCH', `/apis/coordination.k8s.io/v1/namespaces/${NODE_LEASE_NAMESPACE}/leases/${n}`, { body, contentType: 'application/merge-patch+json' })
      .catch(() => undefined)));
  }
}

async function createCheckpoint(client: KubeClient, checkpoint: Checkpoint, status: NonNullable<Checkpoint['status']>): Promise<Checkpoint> {
  const base = `/apis/${K.API_VERSION}/namespaces/${NAMESPACE}/checkpoints`;
  await createCheckpointObject(client, checkpoint);
  return client.request<Checkpoint>('PATCH', `${base}/${checkpoint.metadata.name ?? ''}/status`, { body: { status }, contentType: 'application/merge-patch+json' });
}

async function deletePod(client: KubeClient, name: string): Promise<void> {
  // Grace 0: without a kubelet, nobody would confirm a graceful termination.
  await client.request('DELETE', `/api/v1/namespaces/${NAMESPACE}/pods/${name}`, { query: { gracePeriodSeconds: 0 } });
}

/** Waits for exactly one live, bound pod of the app other than `not`; on timeout, says what the scheduler said. */
async function boundPod(client: KubeClient, not: string | undefined, signal: AbortSignal, timeoutMs: number): Promise<BoundPod> {
  try {
    return await waitFor(async () => {
      const list = await client.request<{ items: BoundPod[] }>('GET', `/api/v1/namespaces/${NAMESPACE}/pods`, { query: { labelSelector: `app=${APP}` } });
      const live = list.items.filter((p) => !p.metadata.deletionTimestamp && p.metadata.name !== not);
      return live.length === 1 && live[0]?.spec.nodeName ? live[0] : undefined;
    }, { timeoutMs, signal, description: `the pod of ${NAMESPACE}/${APP} to be bound` });
  } catch (err) {
    if (signal.aborted) throw err;
    const events = await client.request<{ items: Array<{ reason?: string; message?: string }> }>('GET', `/api/v1/namespaces/${NAMESPACE}/events`).catch(() => ({ items: [] }));
    const last = events.items.filter((e) => e.reason === 'FailedScheduling' || e.reason === 'FailedCreate').pop();
    throw new Error(`${(err as Error).message}${last ? `; last ${last.reason ?? ''}: ${last.message ?? ''}` : ''}`);
  }
}
