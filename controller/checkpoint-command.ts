/**
 * `lazarus checkpoint pod NS/NAME [--wait] [--timeout 120s]`: asks the controller for a
 * checkpoint now (`lazarus.dev/checkpoint: now`, DESIGN §2) and, with --wait, follows it until
 * the controller answers and the agent's Checkpoint of every container is Ready or Failed.
 */
import { CHECKPOINT_REQUEST } from '../api/keys.js';
import { REQUEST_NOW } from '../api/checkpoint-request.js';
import type { Checkpoint } from '../api/types.js';
import type { Subcommand } from '../cli/subcommand.js';
import { parseFlags, usage, UsageError, type FlagSpec } from '../cli/flags.js';
import { createKubeClient, loadKubeConfig, type KubeClient } from '../kube/client.js';
import { sleep as realSleep } from '../runtime/sleep.js';
import { checkpointPath } from './kube-io.js';
import { formatCheckpoints, judgeWait } from './checkpoint-wait.js';

const FLAGS: Record<string, FlagSpec> = {
  kubeconfig: { type: 'string', env: 'KUBECONFIG', description: 'kubeconfig (default: in-cluster)' },
  wait: { type: 'bool', default: false, description: "wait for the controller's answer and a Ready or Failed Checkpoint of every container" },
  timeout: { type: 'duration', default: '120s', description: 'how long --wait waits' },
  interval: { type: 'duration', default: '1s', description: 'how often --wait looks' },
};

export interface CheckpointCommandConfig {
  kubeconfig: string | undefined;
  namespace: string;
  pod: string;
  wait: boolean;
  timeoutMs: number;
  intervalMs: number;
}

export function parseCheckpointConfig(argv: string[], env: NodeJS.ProcessEnv): Readonly<CheckpointCommandConfig> {
  const { values, positionals, problems } = parseFlags(argv, FLAGS, env);
  const [kind, ref, ...extra] = positionals;
  if (kind !== 'pod') problems.push(kind === undefined ? 'usage: lazarus checkpoint pod NAMESPACE/NAME [--wait] [--timeout 120s]' : `"${kind}" is not pod (only pods can be checkpointed from here; annotate a workload with ${CHECKPOINT_REQUEST}=now)`);
  const [namespace = '', pod = '', more] = (ref ?? '').split('/');
  if (kind === 'pod' && (!namespace || !pod || more !== undefined)) problems.push(`"${ref ?? ''}" is not NAMESPACE/NAME`);
  if (extra.length) problems.push(`unexpected argument ${extra[0] ?? ''}`);
  const ms = (name: string): number => { const v = values[name]; return typeof v === 'number' ? v : Number.NaN; };
  // Defaults are text (`120s`) for --help; parseFlags converts only what the user typed.
  const duration = (name: string, fallback: number): number => (typeof values[name] === 'string' ? fallback : ms(name));
  const config: CheckpointCommandConfig = {
    kubeconfig: values.kubeconfig as string | undefined, namespace, pod,
    wait: values.wait === true, timeoutMs: duration('timeout', 120_000), intervalMs: duration('interval', 1_000),
  };
  if (!(config.timeoutMs > 0)) problems.push('--timeout must be greater than zero');
  if (!(config.intervalMs > 0)) problems.push('--interval must be greater than zero');
  if (problems.length) throw new UsageError(problems);
  return Object.freeze(config);
}

interface PodObject { metadata: { annotations?: Record<string, string> }; spec?: { containers?: { name: string }[] } }

export interface CheckpointDeps {
  client: KubeClient;
  out: (line: string) => void;
  now?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  signal?: AbortSignal;
}

/** Everything the command does, without the process around it; returns the exit code. */
export async function requestCheckpoint(config: Readonly<CheckpointCommandConfig>, deps: CheckpointDeps): Promise<number> {
  const { client, out } = deps;
  const now = deps.now ?? Date.now;
  const sleep = deps.sleep ?? realSleep;
  const podPath = `/api/v1/namespaces/${encodeURIComponent(config.namespace)}/pods/${encodeURIComponent(config.pod)}`;
  const requestedAt = now();
  // As `kubectl annotate --overwrite`: `now` asks again even over an earlier answer.
  await client.request('PATCH', podPath, { contentType: 'application/merge-patch+json', body: { metadata: { annotations: { [CHECKPOINT_REQUEST]: REQUEST_NOW } } } });
  out(`pod ${config.namespace}/${config.pod}: ${CHECKPOINT_REQUEST}=${REQUEST_NOW}`);
  if (!config.wait) return 0;

  const deadline = requestedAt + config.timeoutMs;
  let waiting = 'the controller to answer';
  let answered: string | undefined;
  for (;;) {
    if (deps.signal?.aborted) { out('interrupted'); return 1; }
    const pod = await client.request<PodObject>('GET', podPath);
    const answer = pod.metadata.annotations?.[CHECKPOINT_REQUEST];
    const list = await client.request<{ items: Checkpoint[] }>('GET', checkpointPath(config.namespace));
    const verdict = judgeWait({ pod: config.pod, containers: (pod.spec?.containers ?? []).map((c) => c.name), answer, requestedAt, checkpoints: list.items });
    if (answer !== undefined && answer !== REQUEST_NOW && answer !== answered && !/^requested /.test(answer)) {
      answered = answer;
      out(`controller: ${answer}`);
    }
    if (verdict.done) {
      if (verdict.checkpoints.length) for (const line of formatCheckpoints(verdict.checkpoints)) out(line);
      out(verdict.ok ? `ok: ${verdict.reason}` : `failed: ${verdict.reason}`);
      return verdict.ok ? 0 : 1;
    }
    waiting = verdict.waiting;
    if (now() >= deadline) {
      out(`failed: timed out after ${Math.round(config.timeoutMs / 1000)}s waiting for ${waiting}`);
      return 1;
    }
    await sleep(Math.min(config.intervalMs, Math.max(0, deadline - now())), deps.signal);
  }
}

export const command: Subcommand = {
  summary: 'ask the controller for a checkpoint of a pod now (--wait: until its Checkpoints are Ready)',
  async run(argv, env) {
    if (argv.includes('--help')) { process.stdout.write(`${usage('checkpoint pod NAMESPACE/NAME', FLAGS)}\n`); return 0; }
    const config = parseCheckpointConfig(argv, env);
    const client = await createKubeClient(loadKubeConfig(config.kubeconfig));
    const stop = new AbortController();
    for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => stop.abort());
    return requestCheckpoint(config, { client, out: (line) => process.stdout.write(`${line}\n`), signal: stop.signal });
  },
};
