/**
 * node dist/bench/profile-summary.js <file.cpuprofile> [top=25]: where a V8 CPU profile (node
 * --cpu-prof) spent its time, by self time per function (samples whose top frame it was) and by
 * total time (samples with it anywhere on the stack), in % of all samples. How the webhook bench's
 * servers were profiled: BENCH_NODE_FLAGS='--cpu-prof --cpu-prof-dir=/tmp/x' npm run bench:webhook.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile { nodes: ProfileNode[]; samples: number[] }

/** `name file:line`, so two anonymous functions of one file stay apart. */
function label(node: ProfileNode): string {
  const { functionName, url, lineNumber } = node.callFrame;
  const file = url ? `${url.replace(/^file:\/\/.*?\/(dist|node_modules)\//, '$1/')}:${lineNumber + 1}` : '';
  return `${functionName || '(anonymous)'} ${file}`.trim();
}

export interface Row { name: string; selfPct: number; totalPct: number }

/** Self and total share per function (by label, so recursion and many call sites count once). */
export function summarize(profile: Profile): Row[] {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  for (const id of profile.samples) {
    const top = byId.get(id);
    if (!top) continue;
    self.set(label(top), (self.get(label(top)) ?? 0) + 1);
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const node = byId.get(at);
      if (!node) break;
      const name = label(node);
      if (seen.has(name)) continue;
      seen.add(name);
      total.set(name, (total.get(name) ?? 0) + 1);
    }
  }
  const n = profile.samples.length || 1;
  return [...total.keys()].map((name) => ({ name, selfPct: (100 * (self.get(name) ?? 0)) / n, totalPct: (100 * (total.get(name) ?? 0)) / n }));
}

function main(): void {
  const [file, topArg] = process.argv.slice(2);
  if (!file) { console.error('usage: node dist/bench/profile-summary.js <file.cpuprofile> [top]'); process.exit(2); }
  const top = Number(topArg ?? 25);
  let profile: Profile;
  try {
    profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
    if (!Array.isArray(profile.nodes) || !Array.isArray(profile.samples)) throw new Error('no nodes and samples: not a .cpuprofile');
  } catch (err) {
    console.error(`${file}: ${(err as Error).message}`);
    process.exit(1);
  }
  const rows = summarize(profile);
  const pct = (v: number): string => `${v.toFixed(1).padStart(5)}%`;
  console.log(`${file}: ${profile.samples.length} samples`);
  console.log('by self time:');
  for (const r of [...rows].sort((a, b) => b.selfPct - a.selfPct).slice(0, top)) console.log(`  ${pct(r.selfPct)} self ${pct(r.totalPct)} total  ${r.name}`);
  console.log('by total time (this project\'s code):');
  for (const r of [...rows].filter((r) => r.name.includes(' dist/')).sort((a, b) => b.totalPct - a.totalPct).slice(0, top)) {
    console.log(`  ${pct(r.totalPct)} total ${pct(r.selfPct)} self  ${r.name}`);
  }
}

main();
