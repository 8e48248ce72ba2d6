/**
 * bench/RESULTS.md holds one `## <title>` section per benchmark; each run replaces its own
 * section only, keeping a hand-written `### Notes` subsection of it if there is one.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

const RESULTS = new URL('../../bench/RESULTS.md', import.meta.url);

/** Replaces (or appends) `## <title>` with `body`; the old section's `### Notes` stay. */
export function recordSection(title: string, body: string): void {
  const before = existsSync(RESULTS) ? readFileSync(RESULTS, 'utf8') : '# Benchmark results\n';
  const heading = `## ${title}`;
  const start = before.indexOf(`${heading}\n`);
  let after: string;
  if (start === -1) after = `${before.trimEnd()}\n\n${heading}\n\n${body.trim()}\n`;
  else {
    const next = before.indexOf('\n## ', start + heading.length);
    const old = before.slice(start, next === -1 ? undefined : next + 1);
    const notes = old.indexOf('### Notes');
    const kept = notes === -1 ? '' : `\n${old.slice(notes).trimEnd()}\n`;
    after = `${before.slice(0, start)}${heading}\n\n${body.trim()}\n${kept}${next === -1 ? '' : `\n${before.slice(next + 1)}`}`;
  }
  writeFileSync(RESULTS, `${after.trimEnd()}\n`);
}
