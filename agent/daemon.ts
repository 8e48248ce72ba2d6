/** `lazarus agent --node-name N …`: filled in by the watcher step. */
export async function runDaemon(_argv: string[], _env: NodeJS.ProcessEnv): Promise<number> {
  await Promise.resolve();
  console.error('lazarus agent: daemon mode not built yet');
  return 1;
}
