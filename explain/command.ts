/** `lazarus explain pod NS/NAME [--json]`: why a pod was restored or started cold. */
import type { Subcommand } from '../cli/subcommand.js';
import { parseFlags, usage, UsageError, type FlagSpec } from '../cli/flags.js';
import { createKubeClient, isNotFound, loadKubeConfig, type KubeClient } from '../kube/client.js';
import { ALWAYS_EXCLUDED_NAMESPACES } from '../api/keys.js';
import { effectivePolicy } from '../api/policy.js';
import type { Checkpoint, Node, Pod, RestorePolicy } from '../api/types.js';
import type { OwnerKind, OwnerView } from '../api/workload.js';
import type { ClusterView } from '../webhook/decide.js';
import { nodeFacts } from '../api/compat.js';
import { explainPod, formatExplanation } from './explain.js';

const FLAGS: Record<string, FlagSpec> = {
  kubeconfig: { type: 'string', env: 'KUBECONFIG', description: 'kubeconfig (default: in-cluster)' },
  json: { type: 'bool', default: false, description: 'print the explanation as JSON' },
  namespace: { type: 'string', default: 'lazarus-system', description: "Lazarus' own namespace (the webhook never mutates it)" },
  'exclude-namespace': { type: 'list', description: "the webhook's --exclude-namespace values (repeatable)" },
  registry: { type: 'string', default: '', description: "the webhook's --registry (trusted prefix for checkpoint images when the policy sets no spec.checkpoint.registry)" },
};

const OWNER_PATHS: Record<OwnerKind, string> = { ReplicaSet: 'replicasets', Deployment: 'deployments', StatefulSet: 'statefulsets' };

/** Absent (404) becomes `fallback`; anything else (forbidden, unreachable) is an error worth reporting. */
async function orIfMissing<T>(p: Promise<T>, fallback: T): Promise<T> {
  try {
    return await p;
  } catch (err) {
    if (isNotFound(err)) return fallback;
    throw err;
  }
}

/** Reads everything once, up front, then answers from memory like the informer cache does. */
export async function snapshot(client: KubeClient, namespace: string, pod: Pod): Promise<{ view: ClusterView; nodes: Node[] }> {
  const list = async <T>(path: string): Promise<T[]> => (await client.request<{ items: T[] }>('GET', path)).items;
  // 404 on the Lazarus lists: the CRDs are not installed, so there is nothing of them.
  const [policies, ns, checkpoints, nodes] = await Promise.all([
    orIfMissing(list<RestorePolicy>('/apis/lazarus.dev/v1alpha1/restorepolicies'), []),
    client.request<{ metadata: { labels?: Record<string, string> } }>('GET', `/api/v1/namespaces/${namespace}`),
    orIfMissing(list<Checkpoint>(`/apis/lazarus.dev/v1alpha1/namespaces/${namespace}/checkpoints`), []),
    list<Node>('/api/v1/nodes'),
  ]);
  // Owners: follow the pod's controller chain (at most two hops). A deleted owner is simply absent.
  const owners = new Map<string, OwnerView>();
  const fetchOwner = async (kind: OwnerKind, name: string): Promise<OwnerView | undefined> => {
    const o = await orIfMissing(client.request<{ metadata: OwnerView } | undefined>('GET', `/apis/apps/v1/namespaces/${namespace}/${OWNER_PATHS[kind]}/${name}`), undefined);
    if (o) owners.set(`${kind}/${name}`, o.metadata);
    return o?.metadata;
  };
  for (const ref of pod.metadata.ownerReferences ?? []) {
    if (ref.kind !== 'ReplicaSet' && ref.kind !== 'StatefulSet') continue;
    const o = await fetchOwner(ref.kind, ref.name);
    for (const up of o?.ownerReferences ?? []) if (up.kind === 'Deployment') await fetchOwner('Deployment', up.name);
  }
  const effective = policies.map(effectivePolicy);
  const facts = nodes.map((n) => nodeFacts(n));
  return {
    nodes,
    view: {
      policies: () => effective,
      namespaceLabels: () => ns.metadata.labels,
      owners: { get: (kind, _ns, name) => owners.get(`${kind}/${name}`) },
      checkpoints: (_ns, w, c) => checkpoints.filter((cp) => cp.spec.workload.kind === w.kind && cp.spec.workload.name === w.name && cp.spec.container === c),
      nodes: () => facts,
    },
  };
}

export const command: Subcommand = {
  summary: 'explain why a pod was restored or started cold, and how every node scores',
  async run(argv, env) {
    if (argv.includes('--help')) { console.log(`${usage('explain pod NAMESPACE/NAME', FLAGS)}`); return 0; }
    const { values, positionals, problems } = parseFlags(argv, FLAGS, env);
    const [what, target] = positionals;
    if (what !== 'pod') problems.push('usage: lazarus explain pod NAMESPACE/NAME [--json]');
    const [namespace = '', name = ''] = (target ?? '').split('/');
    if (what === 'pod' && (!namespace || !name)) problems.push(`"${target ?? ''}" is not NAMESPACE/NAME`);
    if (problems.length) throw new UsageError(problems);
    const excluded = new Set([...ALWAYS_EXCLUDED_NAMESPACES, String(values.namespace), ...((values['exclude-namespace'] as string[] | undefined) ?? [])]);

    const client = await createKubeClient(loadKubeConfig(values.kubeconfig as string | undefined));
    const pod = await orIfMissing(client.request<Pod | undefined>('GET', `/api/v1/namespaces/${namespace}/pods/${name}`), undefined);
    if (!pod) throw new Error(`pod ${namespace}/${name} not found`);
    const { view, nodes } = await snapshot(client, namespace, pod);
    const explanation = explainPod(pod, namespace, view, nodes, Date.now(), excluded, String(values.registry));
    console.log(values.json ? JSON.stringify(explanation, null, 2) : formatExplanation(explanation));
    return 0;
  },
};
