/**
 * Creating the demo's Checkpoints on a cluster where Lazarus is installed. There the API server
 * lets only the agent of a Checkpoint's origin node create it (manifests/base/checkpoint-policy.yaml);
 * the demo's checkpoints come from a node that is gone, so the demo stands in for that node's
 * agent by impersonation, exactly as docs/security.md tells a person to. Where the policy is not
 * installed (the demo's own control plane), the caller's own identity is used.
 */
import * as K from '../api/keys.js';
import type { Checkpoint } from '../api/types.js';
import { KubeError, type KubeClient } from '../kube/client.js';

export const AGENT_USER = 'system:serviceaccount:lazarus-system:lazarus-agent';
export const NODE_NAME_EXTRA = 'authentication.kubernetes.io/node-name';

/** Headers that make a request the agent's of `node` (the caller needs `impersonate` rights, as cluster-admin has). */
export function asAgentOf(node: string): Record<string, string> {
  return { 'Impersonate-User': AGENT_USER, [`Impersonate-Extra-${encodeURIComponent(NODE_NAME_EXTRA)}`]: node };
}

/** The refusal of the checkpoint policy, as opposed to any other 403 (RBAC, another policy). */
function refusedByCheckpointPolicy(err: unknown): boolean {
  return err instanceof KubeError && err.status === 403 && /only the Lazarus agent of node/.test(err.message);
}

/** POSTs `checkpoint` to its namespace; if the checkpoint policy refuses the caller, again as the agent of its origin node. */
export async function createCheckpointObject(client: KubeClient, checkpoint: Checkpoint, options: { dryRun?: boolean } = {}): Promise<Checkpoint> {
  const path = `/apis/${K.API_VERSION}/namespaces/${checkpoint.metadata.namespace ?? 'default'}/checkpoints`;
  const query = options.dryRun ? { dryRun: 'All' } : undefined;
  try {
    return await client.request<Checkpoint>('POST', path, { body: checkpoint, ...(query ? { query } : {}) });
  } catch (err) {
    if (!refusedByCheckpointPolicy(err)) throw err;
    return client.request<Checkpoint>('POST', path, { body: checkpoint, headers: asAgentOf(checkpoint.spec.origin.node), ...(query ? { query } : {}) });
  }
}
