/**
 * A counter Deployment on real nodes, and what the real-node tests and the demo do with it:
 * run it, read its count, checkpoint it on demand through the CLI, cordon or taint nodes, ask
 * `lazarus explain`. The counter prints 1, 2, 3, … one a second; a restored container's log
 * begins with the archived lines, so a restore that continues shows one unbroken sequence.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { ControlPlane } from './control-plane.js';
import type { RealCluster } from './real-node.js';
import { waitFor } from './wait.js';
import { parseTimestampedLog } from '../../bench/restore-times.js';
import * as K from '../../api/keys.js';
import type { Checkpoint } from '../../api/types.js';

const run = promisify(execFile);
export const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../cli/main.js');

export interface Pod {
  metadata: { name: string; uid?: string; annotations?: Record<string, string>; deletionTimestamp?: string; labels?: Record<string, string> };
  spec: {
    nodeName?: string; schedulerName?: string; containers: Array<{ image: string }>;
    affinity?: { nodeAffinity?: { requiredDuringSchedulingIgnoredDuringExecution?: { nodeSelectorTerms: Array<{ matchExpressions?: Array<{ key: string; operator: string; values?: string[] }> }> } } };
  };
  status?: { phase?: string; containerStatuses?: Array<{ restartCount: number; state?: { running?: unknown; waiting?: { reason?: string; message?: string } } }> };
}

/** Prints 1, 2, 3, … one a second. */
export const COUNTER_SCRIPT = 'i=0; while true; do i=$((i+1)); echo $i; sleep 1; done';

export interface PreferringDeployment {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  image: string;
  /** A shell script, run as `sh -c`. */
  command: string;
  /** The node its first pod should go to. */
  preferredNode: string;
  /** Annotated lazarus.dev/restore=enabled (default true). */
  restore?: boolean;
  /** Makes the pod Burstable rather than BestEffort (2 CPU shares). */
  cpuRequest?: string;
  /** Default 1. */
  replicas?: number;
}

/** A Deployment (one replica unless asked) of a shell script that prefers, not requires, one node. */
export function preferringDeployment(o: PreferringDeployment): Record<string, unknown> {
  return {
    apiVersion: 'apps/v1', kind: 'Deployment',
    metadata: {
      name: o.name,
      ...(o.namespace ? { namespace: o.namespace } : {}),
      ...(o.labels ? { labels: o.labels } : {}),
      ...(o.restore === false ? {} : { annotations: { [K.RESTORE]: 'enabled' } }),
    },
    spec: {
      replicas: o.replicas ?? 1,
      selector: { matchLabels: { app: o.name } },
      template: {
        metadata: { labels: { app: o.name } },
        spec: {
          // A shell loop as PID 1 ignores SIGTERM: do not wait 30 s for it.
          terminationGracePeriodSeconds: 1,
          // Preferred, not required: the replacement must be free to go elsewhere.
          affinity: { nodeAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 100, preference: { matchExpressions: [{ key: 'kubernetes.io/hostname', operator: 'In', values: [o.preferredNode] }] } }] } },
          containers: [{
            name: 'app', image: o.image, command: ['sh', '-c', o.command],
            ...(o.cpuRequest ? { resources: { requests: { cpu: o.cpuRequest } } } : {}),
          }],
        },
      },
    },
  };
}

/**
 * Where a counter's log breaks, or undefined when it is one run 1, 2, 3, … A restored log may say
 * one number twice at the seam: the kubelet copies the container's log a moment after CRIU dumped
 * its memory, so the line printed in between is in the archive and printed again after restore.
 * A cold start would begin again at 1.
 */
export function counterBreak(seen: readonly number[]): string | undefined {
  if (seen[0] !== 1) return `starts at ${String(seen[0])}, not 1`;
  let repeats = 0;
  for (let i = 1; i < seen.length; i++) {
    const step = (seen[i] ?? 0) - (seen[i - 1] ?? 0);
    if (step === 0 && ++repeats === 1) continue;
    if (step !== 1) return `${String(seen[i - 1])} is followed by ${String(seen[i])} at line ${String(i + 1)}`;
  }
  return undefined;
}

/** A counter's log line with the kubelet's timestamp: [ms since the epoch, the count]. */
export type TimedCount = readonly [number, number];

/**
 * Where a restored counter's log was cut: the archived lines end at the dump and the restored
 * process's lines start at the restore, so the longest pause between two lines is the seam and
 * the count before it is what the checkpoint held. Undefined for fewer than two lines.
 */
export function restoreSeam(lines: readonly TimedCount[]): { held: number; pauseMs: number } | undefined {
  let seam: { held: number; pauseMs: number } | undefined;
  for (let i = 1; i < lines.length; i++) {
    const [before, held] = lines[i - 1] as TimedCount;
    const pauseMs = (lines[i] as TimedCount)[0] - before;
    if (!seam || pauseMs > seam.pauseMs) seam = { held, pauseMs };
  }
  return seam;
}

export type CounterScenario = ReturnType<typeof counterScenario>;

export function counterScenario(cp: ControlPlane, cluster: RealCluster, NS: string) {
  async function createCounter(name: string, preferredNode: string, labels: Record<string, string> = {}): Promise<void> {
    await cp.client.request('POST', `/apis/apps/v1/namespaces/${NS}/deployments`, {
      body: preferringDeployment({ name, labels, image: cluster.busybox, command: COUNTER_SCRIPT, preferredNode }),
    });
  }

  const podsOf = async (app: string): Promise<Pod[]> =>
    (await cp.client.request<{ items: Pod[] }>('GET', `/api/v1/namespaces/${NS}/pods`, { query: { labelSelector: `app=${app}` } })).items.filter((p) => !p.metadata.deletionTimestamp);

  /** The one running pod of `app` other than `not`, once its container runs. */
  function runningPod(app: string, not?: string, timeoutMs = 90_000): Promise<Pod> {
    return waitFor(async () => {
      const pods = (await podsOf(app)).filter((p) => p.metadata.name !== not);
      return pods.length === 1 && pods[0]?.status?.containerStatuses?.[0]?.state?.running ? pods[0] : undefined;
    }, { timeoutMs, description: `a running pod of ${app}${not ? ` other than ${not}` : ''}` });
  }

  /** The counter's output: the archived lines of a restored container come first, then the new ones. */
  async function counts(pod: string): Promise<number[]> {
    const text = await cp.client.request<string>('GET', `/api/v1/namespaces/${NS}/pods/${pod}/log`);
    return String(text).trim().split('\n').filter(Boolean).map(Number);
  }

  async function timedCounts(pod: string): Promise<TimedCount[]> {
    const text = await cp.client.request<string>('GET', `/api/v1/namespaces/${NS}/pods/${pod}/log`, { query: { timestamps: true } });
    // Only counts: once the container is gone the kubelet may answer with words.
    return parseTimestampedLog(String(text)).map((l) => [l.atMs, Number(l.text)] as const).filter(([, n]) => Number.isFinite(n));
  }

  async function waitForCount(pod: string, atLeast: number): Promise<number[]> {
    return waitFor(async () => { const c = await counts(pod); return (c.at(-1) ?? 0) >= atLeast ? c : undefined; }, { timeoutMs: 30_000, description: `${pod} to count to ${String(atLeast)}` });
  }

  async function checkpointNow(pod: string): Promise<Checkpoint> {
    const { stdout } = await run(process.execPath, [CLI, 'checkpoint', 'pod', `${NS}/${pod}`, '--wait', '--timeout=90s', `--kubeconfig=${cp.kubeconfigPath}`], { timeout: 120_000 });
    if (!/ok: 1 checkpoint\(s\) Ready/.test(stdout)) throw new Error(`lazarus checkpoint: ${stdout}`);
    const list = await cp.client.request<{ items: Checkpoint[] }>('GET', `/apis/lazarus.dev/v1alpha1/namespaces/${NS}/checkpoints`);
    const mine = list.items.filter((c) => c.spec.sourcePod === pod && c.status?.phase === 'Ready');
    if (mine.length !== 1) throw new Error(`want one Ready checkpoint of ${pod}, have ${String(mine.length)}`);
    return mine[0] as Checkpoint;
  }

  /** Cordoning also makes the controller checkpoint the node's pods (onDrain), as a drain would. */
  const cordon = (node: string, on: boolean): Promise<unknown> =>
    cp.client.request('PATCH', `/api/v1/nodes/${node}`, { body: { spec: { unschedulable: on } }, contentType: 'application/merge-patch+json' });

  /** Keeps new pods off a node without a cordon (so without drain checkpoints). */
  const taintAway = (node: string, on: boolean): Promise<unknown> =>
    cp.client.request('PATCH', `/api/v1/nodes/${node}`, { body: { spec: { taints: on ? [{ key: 'lazarus.test/away', effect: 'NoSchedule' }] : null } }, contentType: 'application/merge-patch+json' });

  const checkpointsOf = async (sourcePod: string): Promise<Checkpoint[]> =>
    (await cp.client.request<{ items: Checkpoint[] }>('GET', `/apis/lazarus.dev/v1alpha1/namespaces/${NS}/checkpoints`)).items.filter((c) => c.spec.sourcePod === sourcePod);

  async function deletePod(name: string): Promise<void> {
    await cp.client.request('DELETE', `/api/v1/namespaces/${NS}/pods/${name}`);
  }

  async function explain(pod: string): Promise<string> {
    return (await run(process.execPath, [CLI, 'explain', 'pod', `${NS}/${pod}`, `--kubeconfig=${cp.kubeconfigPath}`])).stdout;
  }

  return { createCounter, podsOf, runningPod, counts, timedCounts, waitForCount, checkpointNow, cordon, taintAway, checkpointsOf, deletePod, explain };
}
