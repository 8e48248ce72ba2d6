/**
 * `lazarus <subcommand> [flags]`. Each subcommand parses its own flags into a frozen config
 * (throwing UsageError with every problem) and returns an exit code.
 */
import { UsageError } from './flags.js';
import type { Subcommand } from './subcommand.js';

const commands: Record<string, () => Promise<Subcommand>> = {
  webhook: async () => (await import('../webhook/command.js')).command,
  explain: async () => (await import('../explain/command.js')).command,
  controller: async () => (await import('../controller/command.js')).command,
  checkpoint: async () => (await import('../controller/checkpoint-command.js')).command,
  agent: async () => (await import('../agent/command.js')).command,
  extender: async () => (await import('../extender/command.js')).command,
  certs: async () => (await import('../certs/command.js')).command,
  // In the image only `demo --kubeconfig K` runs: its local control plane needs a checkout (demo/checkout/).
  demo: async () => (await import('../demo/command.js')).command,
};

function help(): string {
  const names = Object.keys(commands).sort();
  return `usage: lazarus <${names.join('|')}> [flags]   (lazarus <subcommand> --help for its flags)`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(help());
    return name ? 0 : 2;
  }
  const load = commands[name];
  if (!load) {
    console.error(`lazarus: unknown subcommand "${name}"; ${help()}`);
    return 2;
  }
  try {
    return await (await load()).run(rest, process.env);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`lazarus ${name}: ${err.message}`);
      return 2;
    }
    console.error(`lazarus ${name}: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
