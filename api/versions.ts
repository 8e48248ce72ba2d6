/** Version strings Lazarus compares: CRIU (`4.1.1` ↔ 40101), kernels, runtimes. */

/** `4.1.1` → 40101; `4.1` → 40100. Undefined when not a version. */
export function criuCode(version: string): number | undefined {
  const m = /^v?(\d+)\.(\d+)(?:\.(\d+))?/.exec(version.trim());
  if (!m) return undefined;
  const [major, minor, patch] = [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)];
  if (minor > 99 || patch > 99) return undefined;
  return major * 10_000 + minor * 100 + patch;
}

/** 40101 → `4.1.1`. */
export function criuString(code: number): string {
  return `${Math.floor(code / 10_000)}.${Math.floor(code / 100) % 100}.${code % 100}`;
}

/** Parses the label value `40101`; undefined when absent or garbage. */
export function parseCriuLabel(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d{1,9}$/.test(value)) return undefined;
  return Number(value);
}

export interface KernelVersion { major: number; minor: number; full: string }

/** `6.8.0-45-generic` → {6, 8}. */
export function parseKernel(version: string | undefined): KernelVersion | undefined {
  if (!version) return undefined;
  const m = /^(\d+)\.(\d+)/.exec(version.trim());
  return m ? { major: Number(m[1]), minor: Number(m[2]), full: version.trim() } : undefined;
}

export interface RuntimeVersion { name: string; version: string }

/** `cri-o://1.33.2` → {cri-o, 1.33.2}. */
export function parseRuntime(value: string | undefined): RuntimeVersion | undefined {
  if (!value) return undefined;
  const i = value.indexOf('://');
  if (i <= 0) return { name: value, version: '' };
  return { name: value.slice(0, i), version: value.slice(i + 3) };
}

/** A valid label value (≤ 63 characters, alphanumerics with `-`, `_`, `.` inside). */
const LABEL_VALUE = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/;

/**
 * The runtime's name as the value of the node label `lazarus.dev/runtime`: `containerd://2.3.7`
 * → `containerd`. Undefined when there is no name or it cannot be a label value; then the agent
 * publishes no label and the webhook requires none.
 */
export function runtimeLabelValue(containerRuntimeVersion: string | undefined): string | undefined {
  const name = parseRuntime(containerRuntimeVersion)?.name;
  return name !== undefined && LABEL_VALUE.test(name) ? name : undefined;
}

/** Compares dotted numeric versions (`1.33.2` vs `1.26`); non-numeric parts compare as 0. */
export function compareVersions(a: string, b: string): number {
  const pa = a.replace(/^v/, '').split(/[.+-]/).map((x) => Number.parseInt(x, 10) || 0);
  const pb = b.replace(/^v/, '').split(/[.+-]/).map((x) => Number.parseInt(x, 10) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  return 0;
}
