/** Preloaded with `node --import` by the agent bench: reports the process' peak RSS when it exits. */
process.on('exit', () => {
  process.stderr.write(`LAZARUS_MAXRSS_KB=${String(process.resourceUsage().maxRSS)}\n`);
});
