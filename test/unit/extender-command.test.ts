/**
 * `lazarus extender` as a process: flags, JSON logs, serving, and a clean exit on SIGTERM.
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '../../extender/command.js';
import { UsageError } from '../../cli/flags.js';
import { fullArgs, goodNode, wirePod } from './extender-fixtures.js';
import { postJson } from './extender-http.js';

const MAIN = fileURLToPath(new URL('../../cli/main.js', import.meta.url));

describe('lazarus extender flags', () => {
  it('defaults: port 8888, metrics 8080, no TLS, no cluster', () => {
    expect(parseConfig([], {})).toMatchObject({ port: 8888, metricsPort: 8080, tls: undefined, kubeconfig: undefined, inCluster: false, shutdownDrainMs: 10_000 });
  });

  it.each<[string[], string]>([
    [['--port', 'x'], '--port: "x" is not an integer'],
    [['--tls-cert-file', 'a'], '--tls-cert-file and --tls-key-file go together'],
    [['--port', '9000', '--metrics-port', '9000'], '--metrics-port must differ from --port (or be 0)'],
    [['--kubeconfig', 'k', '--in-cluster'], '--kubeconfig and --in-cluster exclude each other'],
    [['--max-request-bytes', '0'], '--max-request-bytes must be positive'],
    [['--bogus'], 'unknown flag --bogus'],
    [['--shutdown-drain', '1m'], '--shutdown-drain must be at most 25s (the pods\' terminationGracePeriodSeconds is 30)'],
    [['--shutdown-drain', 'soon'], '--shutdown-drain: "soon" is not a duration like 30s, 5m or 1h'],
  ])('%j is refused: %s', (argv, problem) => {
    let error: unknown;
    try { parseConfig(argv, {}); } catch (err) { error = err; }
    expect(error).toBeInstanceOf(UsageError);
    expect((error as UsageError).problems).toContain(problem);
  });

  it('exits 2 with a one-line reason on bad flags', async () => {
    const child = spawn(process.execPath, [MAIN, 'extender', '--port', 'x'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(code).toBe(2);
    expect(stderr.trim().split('\n')).toEqual(['lazarus extender: --port: "x" is not an integer']);
  });
});

describe('lazarus extender process', () => {
  it('serves the verbs and the ops routes, logs JSON lines, and exits 0 on SIGTERM', async () => {
    const child = spawn(process.execPath, [MAIN, 'extender', '--port', '0', '--metrics-port', '0', '--bind-address', '127.0.0.1', '--shutdown-drain', '0s'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      let stdout = '';
      const port = await new Promise<number>((resolve, reject) => {
        child.stdout.on('data', (c: Buffer) => {
          stdout += c.toString();
          for (const line of stdout.split('\n')) {
            if (!line.includes('extender listening')) continue;
            resolve((JSON.parse(line) as { port: number }).port);
          }
        });
        child.once('exit', (code) => reject(new Error(`exited ${code}: ${stdout}`)));
      });
      const agent = new http.Agent({ keepAlive: false });
      const filter = await postJson(agent, port, '/filter', fullArgs(wirePod(true), [goodNode('good'), goodNode('arm', { arch: 'arm64' })]));
      expect(Object.keys((JSON.parse(filter.text) as { FailedAndUnresolvableNodes: object }).FailedAndUnresolvableNodes)).toEqual(['arm']);
      const metrics = await new Promise<string>((resolve) => http.get({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => { text += c.toString(); });
        res.on('end', () => resolve(text));
      }));
      expect(metrics).toMatch(/lazarus_extender_requests_total\{verb="filter",outcome="restored"[^}]*\} 1/);
      for (const line of stdout.trim().split('\n')) expect(JSON.parse(line)).toHaveProperty('level');

      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });
});

/** One plain GET or POST on a fresh connection: status, body and the Connection header. */
function request(port: number, method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; text: string; connection: string | undefined }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request({ host: '127.0.0.1', port, method, path, agent: false, headers: payload ? { 'content-type': 'application/json' } : {} }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => { text += c.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text, connection: res.headers.connection }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

// Issue 13 housekeeping: a rollout of Lazarus itself must skip nothing. The kubelet's SIGTERM
// comes before the scheduler stops calling this replica.
describe('lazarus extender shutdown', () => {
  it('after SIGTERM: /readyz fails at once, /filter is still answered (Connection: close) for the drain period, then exit 0', async () => {
    const child = spawn(process.execPath, [MAIN, 'extender', '--port', '0', '--metrics-port', '0', '--bind-address', '127.0.0.1', '--shutdown-drain', '2s'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      let stdout = '';
      const port = await new Promise<number>((resolve, reject) => {
        child.stdout.on('data', (c: Buffer) => {
          stdout += c.toString();
          const line = stdout.split('\n').find((l) => l.includes('extender listening'));
          if (line) resolve((JSON.parse(line) as { port: number }).port);
        });
        child.once('exit', (code) => reject(new Error(`exited ${code}: ${stdout}`)));
      });
      const args = fullArgs(wirePod(true), [goodNode('good'), goodNode('arm', { arch: 'arm64' })]);
      expect((await request(port, 'GET', '/readyz')).status).toBe(200);
      const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
      const termAt = Date.now();
      child.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 100));
      const ready = await request(port, 'GET', '/readyz');
      expect({ status: ready.status, text: ready.text }).toEqual({ status: 503, text: expect.stringMatching(/^not ready: shutting down/) });
      const answers: Array<{ status: number; failed: string[]; connection: string | undefined }> = [];
      while (Date.now() - termAt < 1_700) {
        const r = await request(port, 'POST', '/filter', args);
        answers.push({ status: r.status, failed: Object.keys((JSON.parse(r.text) as { FailedAndUnresolvableNodes: object }).FailedAndUnresolvableNodes), connection: r.connection });
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(answers.length).toBeGreaterThan(5);
      expect(answers.filter((a) => a.status !== 200 || a.failed.join() !== 'arm' || a.connection !== 'close')).toEqual([]);
      expect(await exited).toBe(0);
      expect(Date.now() - termAt).toBeGreaterThanOrEqual(2_000);
      await expect(request(port, 'GET', '/readyz')).rejects.toThrow(/ECONNREFUSED/);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });
});
