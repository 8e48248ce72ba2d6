/**
 * `lazarus agent build ARCHIVE IMAGE_REF [--insecure] [--auth-file F]` — one archive to one pushed
 * image, prints `registry/repo@sha256:…`.
 * `lazarus agent --node-name N [--checkpoint-dir D] [--kubeconfig K] …` — the DaemonSet: node
 * facts on its Node, and every archive in the checkpoint directory turned into an image and a
 * Checkpoint.
 */
import { readFile } from 'node:fs/promises';
import type { Subcommand } from '../cli/subcommand.js';
import { UsageError, parseFlags, usage, type FlagSpec } from '../cli/flags.js';
import { inspectArchive, buildAndPush } from './build.js';
import { hostFacts, readLocalFacts, systemSources } from './host.js';
import { RegistryClient, credentialsFor, parseImageRef } from './registry.js';
import { sleep } from '../runtime/sleep.js';

const BUILD_FLAGS = {
  insecure: { type: 'bool', description: 'plain HTTP to this registry (loopback/test registries only)', default: false },
  'auth-file': { type: 'string', description: 'a dockerconfigjson file with credentials for the registry', env: 'REGISTRY_AUTH_FILE' },
  criu: { type: 'string', description: 'the criu binary whose version is stamped on the image', default: 'criu' },
  help: { type: 'bool', description: 'print this help', default: false },
} satisfies Record<string, FlagSpec>;

async function runBuild(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values, positionals, problems } = parseFlags(argv, BUILD_FLAGS, env);
  if (values.help === true) { process.stdout.write(`${usage('agent build ARCHIVE IMAGE_REF', BUILD_FLAGS)}\n`); return 0; }
  if (positionals.length !== 2) problems.push('want exactly two arguments: ARCHIVE IMAGE_REF');
  const [archive = '', refText = ''] = positionals;
  let ref;
  try { ref = parseImageRef(refText); } catch (err) { problems.push(err instanceof Error ? err.message : String(err)); }
  if (problems.length > 0 || !ref) throw new UsageError(problems);
  const authFile = typeof values['auth-file'] === 'string' ? values['auth-file'] : undefined;
  const credentials = authFile ? credentialsFor(await readFile(authFile, 'utf8'), ref.registry) : undefined;

  const ac = new AbortController();
  const stop = (): void => ac.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const client = new RegistryClient(ref, {
    insecure: values.insecure === true, sleep, signal: ac.signal,
    ...(credentials ? { credentials } : {}),
    onRetry: (what, attempt, err) => console.error(`lazarus agent build: ${what} failed (${err.message}); retry ${String(attempt)}`),
  });
  try {
    const scanned = await inspectArchive(archive, ac.signal);
    const local = await readLocalFacts(systemSources, String(values.criu), false);
    const host = await hostFacts(local, scanned.meta.runtime);
    const result = await buildAndPush({ archive, client, host, scanned, signal: ac.signal, ...(ref.tag ? { tag: ref.tag } : {}) });
    process.stdout.write(`${result.image}\n`);
    return 0;
  } finally {
    client.close();
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

export const command: Subcommand = {
  summary: 'node agent: node facts, checkpoint archives → OCI images + Checkpoints; `agent build` for one archive',
  async run(argv, env) {
    if (argv[0] === 'build') return runBuild(argv.slice(1), env);
    const { runDaemon } = await import('./daemon.js');
    return runDaemon(argv, env);
  },
};
