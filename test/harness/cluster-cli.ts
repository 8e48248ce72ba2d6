/**
 * `npm run cluster -- --dir D [--real-node]`: the local control plane for people. Writes
 * D/kubeconfig, prints a line with `ready` once everything answers, runs until SIGINT/SIGTERM,
 * then stops every process it started. Without `--real-node`, Lazarus' webhook and extender
 * run in this process next to it; with it, a registry (D/registry) and three real nodes.
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseFlags, usage, type FlagSpec } from '../../cli/flags.js';
import { startControlPlane, type ControlPlane, type ControlPlaneOptions, type ExtenderOptions } from './control-plane.js';
import { inProcessLazarusHook, realNodeHook } from './cluster-hooks.js';
import { realNodePreflight } from './real-node.js';

export interface Stoppable { stop(): Promise<void> }

export interface ClusterHook {
  name: string;
  /** Before the control plane starts, e.g. reserve a port and add an extender. */
  prepare?(options: ControlPlaneOptions): Promise<ControlPlaneOptions> | ControlPlaneOptions;
  /** Once the control plane answers, e.g. start the webhook and register it. */
  start?(cp: ControlPlane, signal: AbortSignal): Promise<Stoppable | void>;
}

const FLAGS: Record<string, FlagSpec> = {
  dir: { type: 'string', description: 'directory for the kubeconfig, certificates and logs (default: a new temp dir)' },
  extender: { type: 'list', description: 'scheduler extender URL prefix (repeatable), e.g. http://127.0.0.1:8888' },
  'extender-node-cache': { type: 'bool', description: 'extenders are nodeCacheCapable (NodeNames mode)', default: false },
  profile: { type: 'list', description: 'extra scheduler profile name (repeatable)' },
  'real-node': { type: 'bool', description: 'three real nodes (two containerd, one CRI-O) and a registry; needs root and CRIU', default: false },
  help: { type: 'bool', description: 'print this help', default: false },
};

export interface RunOptions {
  hooks?: readonly ClusterHook[];
  /** Ends the run (the CLI aborts it on SIGINT/SIGTERM). */
  signal: AbortSignal;
  out?: (line: string) => void;
}

/** Starts everything, waits for `signal`, stops everything. Returns the exit code. */
export async function runCluster(argv: readonly string[], env: NodeJS.ProcessEnv, run: RunOptions): Promise<number> {
  const out = run.out ?? ((line: string) => console.log(line));
  const { values, problems } = parseFlags(argv, FLAGS, env);
  if (values.help) { out(usage('cluster', FLAGS).replace('lazarus cluster', 'npm run cluster --')); return 0; }
  if (problems.length > 0) { console.error(`cluster: ${problems.join('; ')}`); return 2; }

  const dir = typeof values.dir === 'string' ? path.resolve(values.dir) : undefined;
  if (dir) await mkdir(dir, { recursive: true });
  const extenders: ExtenderOptions[] = ((values.extender as string[] | undefined) ?? []).map((urlPrefix) => ({ urlPrefix, nodeCacheCapable: values['extender-node-cache'] === true, ignorable: true }));
  let options: ControlPlaneOptions = {
    ...(dir ? { dir } : {}), extenders, profiles: (values.profile as string[] | undefined) ?? [], log: out,
  };
  let hooks = run.hooks;
  if (!hooks) {
    if (values['real-node'] === true) {
      const why = await realNodePreflight();
      if (why) { console.error(`cluster: cannot run real nodes here: ${why}`); return 1; }
      hooks = [realNodeHook({ log: out })];
    } else {
      hooks = [inProcessLazarusHook()];
    }
  }
  for (const h of hooks) if (h.prepare) options = await h.prepare(options);

  const cp = await startControlPlane(options);
  const started: Array<{ name: string; s: Stoppable }> = [];
  let code = 0;
  try {
    for (const h of hooks) {
      const s = await h.start?.(cp, run.signal);
      if (s) started.push({ name: h.name, s });
    }
    out(`cluster ready: server ${cp.server}, kubeconfig ${cp.kubeconfigPath}, logs ${cp.dir}${hooks.length ? `, with ${hooks.map((h) => h.name).join(', ')}` : ''}`);
    out(`  export KUBECONFIG=${cp.kubeconfigPath}`);
    if (!run.signal.aborted) await new Promise<void>((resolve) => run.signal.addEventListener('abort', () => resolve(), { once: true }));
  } catch (err) {
    console.error(`cluster: ${(err as Error).message}`);
    code = 1;
  } finally {
    for (const { name, s } of started.reverse()) {
      try { await s.stop(); } catch (err) { console.error(`cluster: stopping ${name}: ${(err as Error).message}`); code = 1; }
    }
    await cp.stop();
    out('cluster stopped');
  }
  return code;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const controller = new AbortController();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => controller.abort());
  runCluster(process.argv.slice(2), process.env, { signal: controller.signal })
    .then((code) => { process.exitCode = code; })
    .catch((err: unknown) => { console.error(`cluster: ${(err as Error).message}`); process.exitCode = 1; });
}
