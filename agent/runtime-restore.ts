/**
 * Can this node's container runtime restore a container from a checkpoint image *as it is
 * configured* (DESIGN §5)? Since mid-2026 restore is off by default everywhere it still exists:
 *
 * | runtime            | restore from a checkpoint image needs                                            |
 * |--------------------|----------------------------------------------------------------------------------|
 * | containerd < 2.1   | impossible (no restore via CreateContainer)                                      |
 * | containerd 2.1     | nothing: always on                                                               |
 * | containerd 2.2–2.3 | `enable_criu = true` and `enable_experimental_restore_via_create = true` in the  |
 * |                    | CRI runtime plugin (v3: `io.containerd.cri.v1.runtime`, v2: `io.containerd.grpc.v1.cri`) |
 * | containerd ≥ 2.4   | impossible: removed (KEP-5823 `RestorePod` replaces it)                          |
 * | CRI-O < 1.26       | impossible                                                                       |
 * | CRI-O 1.26–1.29    | `[crio.runtime] enable_criu_support = true`                                      |
 * | CRI-O ≥ 1.30       | `[crio.checkpoint_restore] container_level_enabled = "checkpoint_restore"`       |
 * |                    | (default `checkpoint_only`), and `enable_criu_support` not false                 |
 * | CRI-O, any         | no `[crio.image] signature_policy` path: restore refuses while one is set        |
 *
 * `restoreSupport` is pure (file contents in, verdict and an operator-actionable reason out);
 * `readRuntimeConfigs` at the bottom is the I/O edge, run in the host's mount namespace.
 */
import { parse, type TomlTable } from 'smol-toml';
import { compareVersions, parseRuntime, type RuntimeVersion } from '../api/versions.js';
import type { ExecResult } from './node-facts.js';

/** One configuration file as read from the host: its text, or why there is none. */
export type ConfigFile =
  | { path: string; text: string }
  | { path: string; missing: true }
  | { path: string; unreadable: string };

export interface RestoreSupport { capable: boolean; reason: string }

export const CONTAINERD_CONFIG = '/etc/containerd/config.toml';
export const CRIO_CONFIG = '/etc/crio/crio.conf';
export const CRIO_DROP_INS = '/etc/crio/crio.conf.d/*.conf';

/** Where each runtime reads its configuration; CRI-O reads its drop-ins after the main file, in lexical order. */
export function defaultRuntimeConfigPaths(runtimeName: string | undefined): string[] {
  switch (runtimeName) {
    case 'containerd': return [CONTAINERD_CONFIG];
    case 'cri-o': return [CRIO_CONFIG, CRIO_DROP_INS];
    default: return [];
  }
}

const SUPPORTED = 'Lazarus restores on CRI-O ≥ 1.26 and containerd 2.1–2.3';

export function restoreSupport(runtime: RuntimeVersion | undefined, files: readonly ConfigFile[]): RestoreSupport {
  if (!runtime?.name || !runtime.version) {
    return no('the Node reports no container runtime version (status.nodeInfo.containerRuntimeVersion), so whether it can restore is unknown');
  }
  switch (runtime.name) {
    case 'containerd': return containerd(runtime.version, files);
    case 'cri-o': return crio(runtime.version, files);
    default: return no(`runtime ${runtime.name} ${runtime.version} cannot restore from a checkpoint image; ${SUPPORTED}`);
  }
}

// ---- containerd ------------------------------------------------------------------------------

/** The CRI runtime plugin's table per config `version` (1 when absent). */
const CONTAINERD_CRI_TABLE: Record<1 | 2 | 3, { id: string; shown: string }> = {
  1: { id: 'cri', shown: '[plugins.cri]' },
  2: { id: 'io.containerd.grpc.v1.cri', shown: '[plugins."io.containerd.grpc.v1.cri"]' },
  3: { id: 'io.containerd.cri.v1.runtime', shown: "[plugins.'io.containerd.cri.v1.runtime']" },
};
const CONTAINERD_SWITCHES = ['enable_criu', 'enable_experimental_restore_via_create'] as const;

function containerd(version: string, files: readonly ConfigFile[]): RestoreSupport {
  const label = `containerd ${version}`;
  if (compareVersions(version, '2.4') >= 0) {
    return no(`${label} removed restore from a checkpoint image (KEP-5823 RestorePod replaces it); nodes that should restore need containerd 2.1–2.3 or CRI-O ≥ 1.26`);
  }
  if (compareVersions(version, '2.1') < 0) {
    return no(`${label} cannot restore from a checkpoint image (restore via CreateContainer arrived in containerd 2.1); upgrade to containerd 2.1–2.3 or use CRI-O ≥ 1.26`);
  }
  if (compareVersions(version, '2.2') < 0) {
    return yes(`restore enabled (${label}: restore via CreateContainer has no switch before 2.2)`);
  }
  const loaded = load(label, files);
  if ('failed' in loaded) return loaded.failed;
  const main = files[0]?.path ?? CONTAINERD_CONFIG;
  const criTable = (layout: 1 | 2 | 3): TomlTable | undefined => tableAt(loaded.merged, ['plugins', CONTAINERD_CRI_TABLE[layout].id]);
  if (loaded.present.length === 0) {
    return no(`${label}: restore via CreateContainer is off by default and ${main} does not exist; create it (version = 3) with ${setting(CONTAINERD_SWITCHES)} under ${CONTAINERD_CRI_TABLE[3].shown}`);
  }
  const declared = loaded.merged.version;
  const layout: 1 | 2 | 3 = declared === 3 ? 3 : declared === 2 ? 2 : 1;
  if (declared !== undefined && declared !== 1 && declared !== 2 && declared !== 3) {
    return no(`${label}: ${main} says version = ${show(declared)}, which containerd does not know (1, 2 or 3)`);
  }
  const cri = criTable(layout) ?? {};
  const off = CONTAINERD_SWITCHES.filter((k) => cri[k] !== true);
  if (off.length === 0) {
    return yes(`restore enabled (${label}, ${CONTAINERD_SWITCHES.map((k) => `${k} = true`).join(' and ')})`);
  }
  const states = off.map((k) => `${k} ${state(cri[k])}`).join(', ');
  // The switches set in the other layout's table are ignored: say so, it is an easy mistake.
  const elsewhere = ([3, 2, 1] as const).filter((l) => l !== layout && off.some((k) => criTable(l)?.[k] !== undefined));
  const hint = elsewhere.map((l) => `; ${CONTAINERD_CRI_TABLE[l].shown} is where a version ${String(l)} config has them, this one is version ${String(layout)}`).join('');
  return no(`${label}: restore via CreateContainer is off (${states}); set ${setting(off)} under ${CONTAINERD_CRI_TABLE[layout].shown} in ${main}${hint}`);
}

// ---- CRI-O -----------------------------------------------------------------------------------

function crio(version: string, files: readonly ConfigFile[]): RestoreSupport {
  const label = `CRI-O ${version}`;
  if (compareVersions(version, '1.26') < 0) {
    return no(`${label} cannot restore from a checkpoint image (needs CRI-O ≥ 1.26); upgrade CRI-O`);
  }
  const loaded = load(label, files);
  if ('failed' in loaded) return loaded.failed;
  const where = (keyPath: readonly string[]): string => {
    const from = loaded.present.filter((f) => value(f.doc, keyPath) !== undefined).at(-1);
    return from ? ` (in ${from.path})` : '';
  };
  const main = files[0]?.path ?? CRIO_CONFIG;
  const CRIU = ['crio', 'runtime', 'enable_criu_support'] as const;
  const LEVEL = ['crio', 'checkpoint_restore', 'container_level_enabled'] as const;
  const POLICY = ['crio', 'image', 'signature_policy'] as const;
  const criuSupport = value(loaded.merged, CRIU);
  const level = value(loaded.merged, LEVEL);
  const policy = value(loaded.merged, POLICY);

  const problems: string[] = [];
  let enabledBy: string;
  if (compareVersions(version, '1.30') >= 0) {
    enabledBy = 'container_level_enabled = "checkpoint_restore"';
    if (level !== 'checkpoint_restore') {
      const now = level === undefined ? 'is not set (default "checkpoint_only")' : `= ${show(level)}${where(LEVEL)}`;
      problems.push(`restore is off: container_level_enabled ${now}; set container_level_enabled = "checkpoint_restore" under [crio.checkpoint_restore] in ${main} or a drop-in in /etc/crio/crio.conf.d/`);
    }
    if (criuSupport === false) {
      problems.push(`enable_criu_support = false${where(CRIU)} turns checkpoint/restore off; set it to true under [crio.runtime]`);
    }
  } else {
    enabledBy = 'enable_criu_support = true';
    if (criuSupport !== true) {
      problems.push(`restore is off: enable_criu_support ${state(criuSupport)}${where(CRIU)}; set enable_criu_support = true under [crio.runtime] in ${main} or a drop-in in /etc/crio/crio.conf.d/`);
    }
  }
  if (typeof policy === 'string' && policy !== '') {
    problems.push(`[crio.image] signature_policy = ${show(policy)}${where(POLICY)} makes CRI-O refuse every restore ("signature validation is not supported for container restore"); remove it (the system default policy is used then)`);
  }
  return problems.length === 0 ? yes(`restore enabled (${label}, ${enabledBy})`) : no(`${label}: ${problems.join('; ')}`);
}

// ---- TOML ------------------------------------------------------------------------------------

interface Loaded { merged: TomlTable; present: Array<{ path: string; doc: TomlTable }> }

/** Parses every file that exists and merges them in order (later files win, key by key). */
function load(label: string, files: readonly ConfigFile[]): Loaded | { failed: RestoreSupport } {
  const present: Loaded['present'] = [];
  for (const f of files) {
    if ('missing' in f) continue;
    if ('unreadable' in f) return { failed: no(`${label}: cannot read ${f.path}: ${f.unreadable}`) };
    try {
      present.push({ path: f.path, doc: parse(f.text) });
    } catch (err) {
      const first = (err instanceof Error ? err.message : String(err)).split('\n')[0]?.trim() ?? '';
      const line = typeof (err as { line?: unknown }).line === 'number' ? ` at line ${String((err as { line: number }).line)}` : '';
      return { failed: no(`${label}: cannot parse ${f.path}${line}: ${first}; whether restore is switched on is unknown`) };
    }
  }
  return { merged: present.reduce<TomlTable>((acc, p) => merge(acc, p.doc), {}), present };
}

function isTable(v: unknown): v is TomlTable {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/** A new table: `over` on top of `base`, tables merged recursively, everything else replaced. */
export function merge(base: TomlTable, over: TomlTable): TomlTable {
  const out: TomlTable = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = isTable(b) && isTable(v) ? merge(b, v) : v;
  }
  return out;
}

function value(doc: TomlTable, path: readonly string[]): unknown {
  let cur: unknown = doc;
  for (const k of path) {
    if (!isTable(cur)) return undefined;
    cur = cur[k];
  }
  return cur;
}

function tableAt(doc: TomlTable, path: readonly string[]): TomlTable | undefined {
  const v = value(doc, path);
  return isTable(v) ? v : undefined;
}

// ---- words -----------------------------------------------------------------------------------

function yes(reason: string): RestoreSupport { return { capable: true, reason }; }
function no(reason: string): RestoreSupport { return { capable: false, reason }; }

function show(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : String(v);
}

/** How a boolean switch stands, in words. */
function state(v: unknown): string {
  if (v === undefined) return 'is not set';
  if (typeof v === 'boolean') return `= ${String(v)}`;
  return `= ${show(v)}, not a boolean`;
}

function setting(keys: readonly string[]): string {
  return keys.map((k) => `${k} = true`).join(' and ');
}

// ---- I/O edge --------------------------------------------------------------------------------

export interface ConfigSources { exec(cmd: string, args: string[]): Promise<ExecResult> }

/** `*` within the last path component only (`/etc/crio/crio.conf.d/*.conf`). */
export function splitGlob(pattern: string): { dir: string; match: RegExp } | undefined {
  const slash = pattern.lastIndexOf('/');
  const base = pattern.slice(slash + 1);
  if (!base.includes('*')) return undefined;
  const re = base.split('*').map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^/]*');
  return { dir: pattern.slice(0, Math.max(slash, 1)), match: new RegExp(`^${re}$`) };
}

const NOT_FOUND = /No such file or directory/i;

/**
 * Reads the host's files through `hostExec` (e.g. `nsenter --target 1 --mount --`), so the
 * agent needs no hostPath volume per file: `cat` for a file, `ls` for a glob's directory (its
 * matches read in lexical order, as CRI-O does). A file that does not exist is `missing`; a
 * glob over a missing directory adds nothing.
 */
export async function readRuntimeConfigs(src: ConfigSources, hostExec: readonly string[], patterns: readonly string[]): Promise<ConfigFile[]> {
  const run = (cmd: string, args: string[]): Promise<ExecResult> => {
    const [head = cmd, ...rest] = [...hostExec, cmd, ...args];
    return src.exec(head, rest).catch((err: unknown): ExecResult => ({ code: -1, stdout: '', stderr: err instanceof Error ? err.message : String(err) }));
  };
  const readOne = async (path: string): Promise<ConfigFile> => {
    const r = await run('cat', ['--', path]);
    if (r.code === 0) return { path, text: r.stdout };
    if (NOT_FOUND.test(r.stderr)) return { path, missing: true };
    return { path, unreadable: r.stderr.trim().split('\n').at(-1) || `exit code ${String(r.code)}` };
  };
  const out: ConfigFile[] = [];
  for (const pattern of patterns) {
    const glob = splitGlob(pattern);
    if (!glob) { out.push(await readOne(pattern)); continue; }
    const ls = await run('ls', ['-1A', '--', glob.dir]);
    if (ls.code !== 0) {
      if (!NOT_FOUND.test(ls.stderr)) out.push({ path: pattern, unreadable: ls.stderr.trim().split('\n').at(-1) || `exit code ${String(ls.code)}` });
      continue;
    }
    const names = ls.stdout.split('\n').filter((n) => glob.match.test(n)).sort();
    for (const n of names) out.push(await readOne(`${glob.dir.replace(/\/$/, '')}/${n}`));
  }
  return out;
}

/**
 * The whole judgement for the Node's `containerRuntimeVersion`: the configuration files named by
 * `--runtime-config`, or the runtime's own defaults, read on the host and judged.
 */
export async function readRestoreSupport(src: ConfigSources, hostExec: readonly string[], configPaths: readonly string[],
  containerRuntimeVersion: string | undefined): Promise<RestoreSupport> {
  const runtime = parseRuntime(containerRuntimeVersion);
  const paths = configPaths.length > 0 ? configPaths : defaultRuntimeConfigPaths(runtime?.name);
  return restoreSupport(runtime, await readRuntimeConfigs(src, hostExec, paths));
}
