/**
 * `lazarus demo [--kubeconfig K]` (`npm run demo`): Lazarus' main job on one command, narrated.
 * Without --kubeconfig it starts its own local control plane (KUBECONFIG is deliberately not
 * read: the demo never touches a cluster unless told to); that needs a source checkout
 * (demo/checkout/, loaded lazily), so the image runs only `lazarus demo --kubeconfig K`.
 * Everything it started or created is torn down on success, failure, Ctrl-C or SIGTERM.
 */
import type { Subcommand } from '../cli/subcommand.js';
import { parseFlags, usage, UsageError, type FlagSpec } from '../cli/flags.js';
import { runScenario } from './demo.js';
import { useExisting, type Checkout, type Environment, type RegisterStop } from './environment.js';
import { Narrator, OK, formatDuration } from './narrate.js';
import { sleep } from '../runtime/sleep.js';

/**
 * A terminal's Ctrl-C signals the whole process group: the control plane and the real nodes'
 * processes die of it too, and the failure of a request to them can be handled before this
 * process's own SIGINT is (both wait in the same turn of the event loop). A failure waits this
 * long for a signal before it counts as a failure (a clean-clone CI run once exited 1 there).
 */
const SIGNAL_GRACE_MS = 250;

const FLAGS: Record<string, FlagSpec> = {
  kubeconfig: { type: 'string', description: 'run against this existing cluster, where Lazarus is installed, instead of a local control plane' },
  help: { type: 'bool', default: false, description: 'print this help' },
};

export interface DemoConfig { kubeconfig: string | undefined }

export function parseConfig(argv: readonly string[], env: NodeJS.ProcessEnv): DemoConfig | 'help' {
  const { values, positionals, problems } = parseFlags(argv, FLAGS, env);
  if (values.help) return 'help';
  if (positionals.length) problems.push(`unexpected argument "${positionals.join(' ')}"`);
  if (problems.length) throw new UsageError(problems);
  return Object.freeze({ kubeconfig: values.kubeconfig as string | undefined });
}

export interface DemoIo {
  out: (line: string) => void;
  err: (line: string) => void;
  clock: () => number;
  signal: AbortSignal;
  /** What ended the run early, for the message (e.g. "SIGINT"). */
  interruptedBy?: () => string | undefined;
  /** The parts that need a source checkout (demo/checkout/), or undefined where there is none (the image). */
  checkout: Checkout | undefined;
}

/** What the image says to `lazarus demo` without --kubeconfig. */
export const NEEDS_CHECKOUT = 'lazarus demo: this build has no local control plane (the image carries none): run `lazarus demo --kubeconfig K` against a cluster where Lazarus is installed, or `npm run demo` from a source checkout';

/** The whole demo; returns the exit code: 0 done, 1 Lazarus or the cluster failed, 2 nothing to run on, 130 interrupted. */
export async function runDemo(cfg: DemoConfig, io: DemoIo): Promise<number> {
  // Where the fake-node acts run: the checkout's own control plane, or the cluster given.
  const local = cfg.kubeconfig ? undefined : io.checkout;
  if (!cfg.kubeconfig && !local) {
    io.err(NEEDS_CHECKOUT);
    return 2;
  }
  // Once interrupted, the abandoned step must not keep talking.
  const say = new Narrator((line) => { if (!io.signal.aborted) io.out(line); }, io.clock);
  const t0 = io.clock();
  say.line('Lazarus demo: an annotated Deployment\'s pod comes back from its latest usable checkpoint,');
  say.line('on the node best able to restore it.');
  // What is running, newest last; a part that stops itself (the real nodes) takes its own back.
  const stops: Array<() => Promise<string>> = [];
  const register: RegisterStop = (s) => {
    stops.push(s);
    return () => { stops.splice(stops.indexOf(s), 1); };
  };
  const work = (async () => {
    const why = local ? await local.realNodePreflight() : '--kubeconfig: only that cluster is used';
    if (why) say.line(`real nodes skipped (${why}); the placement acts on fake nodes follow`);
    else await local?.realNodesAct(say, io.signal, register);
    io.signal.throwIfAborted();
    if (!why) say.section('On fake nodes: which checkpoint, and which node');
    const env: Environment = local ? await local.startLocal(say, io.signal, register) : await useExisting(cfg.kubeconfig ?? '', say, io.signal, register, io.clock);
    io.signal.throwIfAborted();
    await runScenario(env, { narrator: say, clock: io.clock, signal: io.signal });
  })();
  // On Ctrl-C the step in flight is abandoned, not awaited: with the control plane going down
  // (a terminal signals the whole process group) its requests could hang for a long time.
  const interrupted = new Promise<never>((_, reject) => {
    if (io.signal.aborted) reject(new Error('interrupted'));
    io.signal.addEventListener('abort', () => reject(new Error('interrupted')), { once: true });
  });
  work.catch(() => undefined);
  interrupted.catch(() => undefined);

  let code = 0;
  try {
    await Promise.race([work, interrupted]);
    say.line();
    say.line(`${OK} done in ${formatDuration(io.clock() - t0)}: each pod came back from the newest usable checkpoint, on the best node that could restore it`);
  } catch (err) {
    await sleep(SIGNAL_GRACE_MS, io.signal);
    code = io.signal.aborted ? 130 : 1;
    io.err(io.signal.aborted ? `lazarus demo: interrupted by ${io.interruptedBy?.() ?? 'a signal'}; stopping everything it started` : `lazarus demo: failed: ${firstLine(err)}`);
  }
  for (const stop of stops.reverse()) {
    const t = io.clock();
    try {
      const summary = await stop();
      io.out(`${summary} (${formatDuration(io.clock() - t)})`);
    } catch (err) {
      io.err(`lazarus demo: cleaning up failed: ${firstLine(err)}`);
      code = code || 1;
    }
  }
  return code;
}

/**
 * demo/checkout/, where this is a source checkout; undefined in the image. The module path is in
 * a variable so that the image's build, which has neither demo/checkout/ nor test/, compiles
 * without it; checkout/index.ts declares that it is a Checkout.
 */
export async function loadCheckout(): Promise<Checkout | undefined> {
  const module = './checkout/index.js';
  try {
    return ((await import(module)) as { checkout: Checkout }).checkout;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    // Only the module itself missing means "no checkout"; a checkout with a broken import says so.
    if (e.code === 'ERR_MODULE_NOT_FOUND' && /demo\/checkout\/index\.js/.test(e.message)) return undefined;
    throw err;
  }
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';
}

export const command: Subcommand = {
  summary: 'show Lazarus restoring a pod on a local control plane (or --kubeconfig), narrated',
  async run(argv, env) {
    const cfg = parseConfig(argv, env);
    if (cfg === 'help') { console.log(usage('demo', FLAGS)); return 0; }
    // With --kubeconfig nothing of the checkout is needed: it is not even loaded.
    const checkout = cfg.kubeconfig ? undefined : await loadCheckout();
    const abort = new AbortController();
    let by: string | undefined;
    const onSignal = (sig: NodeJS.Signals): void => { by = sig; abort.abort(); };
    // A second Ctrl-C kills the process as usual; the control plane's reaper then kills its children.
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    try {
      const code = await runDemo(cfg, { out: (l) => console.log(l), err: (l) => console.error(l), clock: Date.now, signal: abort.signal, interruptedBy: () => by, checkout });
      // Everything started is stopped by now; an abandoned step's sockets must not keep the process up.
      if (abort.signal.aborted) setTimeout(() => process.exit(code), 500).unref();
      return code;
    } finally {
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
    }
  },
};
