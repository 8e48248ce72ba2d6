/** Memory figures of a running process from /proc (Linux), for the benches. */
import { readFileSync } from 'node:fs';

/** A size field of /proc/PID/status in bytes: VmHWM is the peak RSS, VmRSS the current one. */
export function procStatus(pid: number, field: 'VmHWM' | 'VmRSS'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${String(pid)}/status`, 'utf8'));
  if (!m) throw new Error(`no ${field} in /proc/${String(pid)}/status`);
  return Number(m[1]) * 1024;
}
