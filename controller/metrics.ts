/** The controller's Prometheus metrics, on a registry passed in (one per instance, no globals). */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Checkpoint } from '../api/types.js';

export interface ControllerMetrics {
  checkpointsTaken: Counter<'reason'>;
  checkpointsFailed: Counter<'reason' | 'code'>;
  /** Answered `lazarus.dev/checkpoint` requests, by annotated kind and result (taken | failed). */
  checkpointRequests: Counter<'kind' | 'result'>;
  restoresSucceeded: Counter;
  restoresFailed: Counter;
  /** Restored pods that could not start through no fault of the checkpoint (reason: the Event's). */
  restoresUnavailable: Counter<'reason'>;
  fallbacks: Counter;
  untrustedCheckpoints: Counter;
  checkpointsExpired: Counter;
  checkpointsDeleted: Counter<'phase'>;
  inFlight: Gauge;
  leader: Gauge;
}

/**
 * `checkpointAge` reads the cache on each scrape: the age of the newest Ready checkpoint per
 * namespace/workload/container — the number to alert on when checkpoints stop coming.
 */
export function createControllerMetrics(registry: Registry, checkpoints: () => Iterable<Checkpoint>, now: () => number): ControllerMetrics {
  const registers = [registry];
  new Gauge({
    name: 'lazarus_controller_checkpoint_age_seconds',
    help: 'Age of the newest Ready checkpoint per workload and container',
    labelNames: ['namespace', 'workload', 'container'] as const,
    registers,
    collect() {
      this.reset();
      const newest = new Map<string, { labels: { namespace: string; workload: string; container: string }; at: number }>();
      for (const cp of checkpoints()) {
        if (cp.status?.phase !== 'Ready') continue;
        const at = Date.parse(cp.spec.takenAt);
        if (!Number.isFinite(at)) continue;
        const labels = { namespace: cp.metadata.namespace ?? '', workload: `${cp.spec.workload.kind}/${cp.spec.workload.name}`, container: cp.spec.container };
        const key = `${labels.namespace}/${labels.workload}/${labels.container}`;
        const seen = newest.get(key);
        if (!seen || seen.at < at) newest.set(key, { labels, at });
      }
      const t = now();
      for (const { labels, at } of newest.values()) this.set(labels, Math.max(0, (t - at) / 1000));
    },
  });
  return {
    checkpointsTaken: new Counter({ name: 'lazarus_controller_checkpoints_taken_total', help: 'Checkpoints the kubelet wrote at our request', labelNames: ['reason'] as const, registers }),
    checkpointsFailed: new Counter({ name: 'lazarus_controller_checkpoints_failed_total', help: 'Checkpoint requests that failed, by HTTP status (0: no answer)', labelNames: ['reason', 'code'] as const, registers }),
    checkpointRequests: new Counter({ name: 'lazarus_controller_checkpoint_requests_total', help: 'On-demand checkpoint requests (lazarus.dev/checkpoint=now) answered, by annotated kind and result', labelNames: ['kind', 'result'] as const, registers }),
    restoresSucceeded: new Counter({ name: 'lazarus_controller_restores_succeeded_total', help: 'Restored pods that came up and stayed up', registers }),
    restoresFailed: new Counter({ name: 'lazarus_controller_restores_failed_total', help: 'Restored pods whose restore failed', registers }),
    restoresUnavailable: new Counter({ name: 'lazarus_controller_restores_unavailable_total', help: 'Restored pods sent cold without blaming the checkpoint (Unschedulable, image pull that may clear), by Event reason', labelNames: ['reason'] as const, registers }),
    untrustedCheckpoints: new Counter({ name: 'lazarus_controller_untrusted_checkpoints_total', help: 'Pods started cold because the Checkpoints they could use named images Lazarus does not trust (see the UntrustedCheckpoint Event)', registers }),
    fallbacks: new Counter({ name: 'lazarus_controller_fallbacks_total', help: 'Pods deleted after a restore that failed or could not start, so that their replacement starts cold', registers }),
    checkpointsExpired: new Counter({ name: 'lazarus_controller_checkpoints_expired_total', help: 'Ready checkpoints beyond retain, expired and deleted', registers }),
    checkpointsDeleted: new Counter({ name: 'lazarus_controller_checkpoints_deleted_total', help: 'Checkpoint objects deleted, by phase', labelNames: ['phase'] as const, registers }),
    inFlight: new Gauge({ name: 'lazarus_controller_checkpoints_in_flight', help: 'Checkpoint requests in flight', registers }),
    leader: new Gauge({ name: 'lazarus_controller_leader', help: '1 while this replica leads', registers }),
  };
}
