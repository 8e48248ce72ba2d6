import { pino, type Logger } from 'pino';

export type { Logger };

/** JSON lines on stdout. One logger per process, passed down explicitly (no module singleton). */
export function createLogger(component: string, level = 'info'): Logger {
  return pino({ level, base: { component }, timestamp: pino.stdTimeFunctions.isoTime });
}

/** For tests and benchmarks. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
