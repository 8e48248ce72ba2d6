/**
 * Flags and environment are read here, once, into a validated, frozen object. Every problem is
 * collected so a user fixes them all in one go.
 */

export type FlagType = 'string' | 'int' | 'bool' | 'list' | 'duration';

export interface FlagSpec {
  type: FlagType;
  description: string;
  default?: string | number | boolean | string[];
  /** Environment variable consulted when the flag is absent. */
  env?: string;
  required?: boolean;
}

export type FlagValues = Record<string, string | number | boolean | string[] | undefined>;

export interface Parsed { values: FlagValues; positionals: string[]; problems: string[] }

import { parseDuration } from '../api/duration.js';

function convert(name: string, spec: FlagSpec, raw: string, problems: string[]): string | number | boolean | undefined {
  switch (spec.type) {
    case 'string':
    case 'list':
      return raw;
    case 'int': {
      if (!/^-?\d+$/.test(raw)) { problems.push(`--${name}: "${raw}" is not an integer`); return undefined; }
      return Number(raw);
    }
    case 'bool': {
      if (raw === 'true' || raw === '1' || raw === '') return true;
      if (raw === 'false' || raw === '0') return false;
      problems.push(`--${name}: "${raw}" is not true or false`);
      return undefined;
    }
    case 'duration': {
      const ms = parseDuration(raw);
      if (ms === undefined) { problems.push(`--${name}: "${raw}" is not a duration like 30s, 5m or 1h`); return undefined; }
      return ms;
    }
  }
}

export function parseFlags(argv: readonly string[], specs: Readonly<Record<string, FlagSpec>>, env: NodeJS.ProcessEnv): Parsed {
  const values: FlagValues = {};
  const positionals: string[] = [];
  const problems: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (!arg.startsWith('--') || arg === '--') {
      if (arg === '--') { positionals.push(...argv.slice(i + 1)); break; }
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    const spec = specs[name];
    if (!spec) { problems.push(`unknown flag --${name}`); continue; }
    let raw: string;
    if (eq !== -1) raw = arg.slice(eq + 1);
    else if (spec.type === 'bool') raw = '';
    else {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) { problems.push(`--${name} needs a value`); continue; }
      raw = next;
      i++;
    }
    const value = convert(name, spec, raw, problems);
    if (value === undefined) continue;
    if (spec.type === 'list') values[name] = [...((values[name] as string[] | undefined) ?? []), String(value)];
    else values[name] = value;
  }
  for (const [name, spec] of Object.entries(specs)) {
    if (values[name] !== undefined) continue;
    const fromEnv = spec.env ? env[spec.env] : undefined;
    if (fromEnv !== undefined && fromEnv !== '') {
      const value = convert(name, spec, fromEnv, problems);
      if (value !== undefined) values[name] = spec.type === 'list' ? fromEnv.split(',') : value;
    } else if (spec.default !== undefined) {
      values[name] = spec.default;
    } else if (spec.required) {
      problems.push(`--${name} is required (${spec.description})`);
    }
  }
  return { values, positionals, problems };
}

export function usage(command: string, specs: Readonly<Record<string, FlagSpec>>): string {
  const lines = Object.entries(specs).map(([name, s]) => {
    const def = s.default !== undefined && s.default !== '' ? ` (default ${JSON.stringify(s.default)})` : '';
    const env = s.env ? ` [$${s.env}]` : '';
    return `  --${name}${s.type === 'bool' ? '' : ` <${s.type}>`}  ${s.description}${def}${env}`;
  });
  return [`usage: lazarus ${command} [flags]`, ...lines].join('\n');
}

/** Thrown by a subcommand's config parser; main prints it on one line and exits 2. */
export class UsageError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(problems.join('; '));
  }
}

export function port(name: string, value: unknown, problems: string[]): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) problems.push(`--${name}: ${String(value)} is not a port (0-65535)`);
  return n;
}
