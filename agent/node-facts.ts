/**
 * Node facts (DESIGN §2): pure parsing of what `criu`, /proc/cpuinfo and the cgroup mount say,
 * the labels/annotations they become, and the merge patch that changes only what differs. The
 * I/O edge (`readLocalFacts`) runs the commands through injected functions.
 */
import * as K from '../api/keys.js';
import type { Node, OriginFacts } from '../api/types.js';
import { criuCode, runtimeLabelValue } from '../api/versions.js';
import type { RestoreSupport } from './runtime-restore.js';

export interface LocalFacts {
  /** `4.1.1`; undefined when criu is missing or unparseable. */
  criuVersion?: string;
  criuCheckPassed: boolean;
  /** The end of `criu check`'s output when it failed. */
  criuCheckError?: string;
  cpuFlags: string[];
  cgroup?: 'v1' | 'v2';
}

/** `criu --version` → `4.1.1` (it prints `Version: 4.1.1`, sometimes a `GitID:` line too). */
export function parseCriuVersion(output: string): string | undefined {
  const m = /^Version:\s*(\d+\.\d+(?:\.\d+)?)/m.exec(output);
  return m?.[1];
}

/** The `flags` line of the first processor in /proc/cpuinfo (`Features` on arm64), sorted, unique. */
export function parseCpuFlags(cpuinfo: string): string[] {
  const m = /^(?:flags|Features)\s*:\s*(.*)$/m.exec(cpuinfo);
  if (!m?.[1]) return [];
  return [...new Set(m[1].trim().split(/\s+/).filter(Boolean))].sort();
}

/**
 * The label `restore-capable` and its reason (DESIGN §2): `criu check` passed and the runtime
 * can restore from an image with its restore switch on (`restoreSupport`). Every problem is
 * named, so an operator fixes them all in one go.
 */
export function restoreCapability(facts: LocalFacts, runtime: RestoreSupport): RestoreSupport {
  const problems: string[] = [];
  if (!facts.criuVersion) problems.push('criu not found on the node (`criu --version` failed); install CRIU on the host');
  else if (!facts.criuCheckPassed) problems.push(`criu check failed: ${facts.criuCheckError ?? 'no output'}`);
  if (!runtime.capable) problems.push(runtime.reason);
  if (problems.length === 0) return runtime;
  const reason = problems.join('; ');
  return { capable: false, reason: reason.length > MAX_REASON ? `${reason.slice(0, MAX_REASON - 1)}…` : reason };
}

/** Annotation values have no size limit of their own, but a reason is read by people. */
const MAX_REASON = 1024;

export interface NodeMetadata { labels: Record<string, string | null>; annotations: Record<string, string | null> }

/**
 * What the agent publishes; `null` removes a key that no longer holds (criu uninstalled).
 * `containerRuntimeVersion` (the Node's status.nodeInfo) becomes the label `lazarus.dev/runtime`
 * (its name), which a restored pod's required affinity names under `runtime: SameName`.
 */
export function desiredNodeMetadata(facts: LocalFacts, runtime: RestoreSupport, containerRuntimeVersion?: string): NodeMetadata {
  const code = facts.criuVersion ? criuCode(facts.criuVersion) : undefined;
  const verdict = restoreCapability(facts, runtime);
  const capable = verdict.capable && code !== undefined;
  const reason = capable || !verdict.capable ? verdict.reason : `criu ${facts.criuVersion ?? ''} is not a version Lazarus can compare`;
  return {
    labels: {
      [K.NODE_CRIU_VERSION]: code !== undefined ? String(code) : null,
      [K.NODE_RESTORE_CAPABLE]: capable ? 'true' : 'false',
      [K.NODE_RUNTIME]: runtimeLabelValue(containerRuntimeVersion) ?? null,
    },
    annotations: {
      [K.NODE_RESTORE_CAPABLE_REASON]: reason,
      [K.NODE_CRIU]: facts.criuVersion ?? null,
      [K.NODE_CPU_FLAGS]: facts.cpuFlags.length > 0 ? facts.cpuFlags.join(' ') : null,
      [K.NODE_CGROUP]: facts.cgroup ?? null,
    },
  };
}

/** A JSON merge patch with only the keys whose value differs; undefined when nothing does. */
export function nodeMetadataPatch(node: Node, desired: NodeMetadata): { metadata: Partial<NodeMetadata> } | undefined {
  const diff = (current: Record<string, string> | undefined, want: Record<string, string | null>): Record<string, string | null> | undefined => {
    const out: Record<string, string | null> = {};
    for (const [k, v] of Object.entries(want)) {
      const have = current?.[k];
      if (v === null ? have !== undefined : have !== v) out[k] = v;
    }
    return Object.keys(out).length > 0 ? out : undefined;
  };
  const labels = diff(node.metadata.labels, desired.labels);
  const annotations = diff(node.metadata.annotations, desired.annotations);
  if (!labels && !annotations) return undefined;
  return { metadata: { ...(labels ? { labels } : {}), ...(annotations ? { annotations } : {}) } };
}

/** The Checkpoint's `origin`: this node's local facts plus what the Node object says about itself. */
export function originFacts(nodeName: string, node: Node | undefined, facts: LocalFacts, fallback: { architecture: string; kernelVersion: string }): OriginFacts {
  const info = node?.status?.nodeInfo;
  return {
    node: nodeName,
    architecture: info?.architecture ?? fallback.architecture,
    kernelVersion: info?.kernelVersion ?? fallback.kernelVersion,
    criuVersion: (facts.criuVersion ? criuCode(facts.criuVersion) : undefined) ?? 0,
    runtime: info?.containerRuntimeVersion ?? '',
    ...(facts.cgroup ? { cgroup: facts.cgroup } : {}),
    cpuFlags: facts.cpuFlags,
  };
}

// ---- I/O edge ---------------------------------------------------------------------------------

export interface ExecResult { code: number | null; stdout: string; stderr: string }

export interface FactSources {
  exec(cmd: string, args: string[]): Promise<ExecResult>;
  readFile(path: string): Promise<string>;
  exists(path: string): Promise<boolean>;
}

/**
 * `criu` is a command line, not only a binary: in a DaemonSet the host's CRIU is run in the
 * host's mount namespace (`nsenter --target 1 --mount -- criu`), since `criu check` must judge
 * the node, not the agent's container.
 */
/** The last two non-empty lines, on one line: where criu says what went wrong. */
export function lastLines(output: string, max = 300): string {
  const text = output.split('\n').map((l) => l.trim()).filter(Boolean).slice(-2).join(' / ');
  return text.length > max ? `…${text.slice(-(max - 1))}` : text;
}

export async function readLocalFacts(src: FactSources, criu = 'criu', runCheck = true): Promise<LocalFacts> {
  const [cmd = 'criu', ...prefix] = criu.trim().split(/\s+/);
  const run = (arg: string): Promise<ExecResult> => src.exec(cmd, [...prefix, arg]).catch((): ExecResult => ({ code: -1, stdout: '', stderr: '' }));
  const version = await run('--version');
  const criuVersion = version.code === 0 ? parseCriuVersion(version.stdout + version.stderr) : undefined;
  const check = criuVersion && runCheck ? await run('check') : undefined;
  const cpuinfo = await src.readFile('/proc/cpuinfo').catch(() => '');
  const cgroup = await src.exists('/sys/fs/cgroup/cgroup.controllers') ? 'v2' : await src.exists('/sys/fs/cgroup') ? 'v1' : undefined;
  const checkError = check && check.code !== 0 ? lastLines(check.stdout + check.stderr) || `exit code ${String(check.code)}` : undefined;
  return {
    ...(criuVersion ? { criuVersion } : {}),
    criuCheckPassed: check?.code === 0,
    ...(checkError ? { criuCheckError: checkError } : {}),
    cpuFlags: parseCpuFlags(cpuinfo),
    ...(cgroup ? { cgroup } : {}),
  };
}
