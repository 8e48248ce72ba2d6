/**
 * What `lazarus <name>` runs. It lives apart from cli/main.ts so that command modules import
 * only this type, and main.ts alone imports the commands.
 */
export interface Subcommand {
  summary: string;
  run(argv: string[], env: NodeJS.ProcessEnv): Promise<number>;
}
