/**
 * The informer's watch retry: a watch the server refuses at once, again and again, backs off
 * (200 ms doubling to 10 s); one that delivered events before it broke starts again from 200 ms.
 */
import { silentLogger } from '../../runtime/log.js';
import type { KubeClient } from '../../kube/client.js';
import { Informer } from '../../kube/informer.js';

/** A list that works, then watches that fail as `plan` says: deliver N events first, or none. */
function flakyClient(plan: number[], onDone: () => void): KubeClient {
  let watches = 0;
  return {
    server: 'https://127.0.0.1:1',
    request: <T>() => Promise.resolve({ items: [], metadata: { resourceVersion: '1' } } as T),
    watch: (_path, _query, onEvent) => {
      const events = plan[watches++];
      if (events === undefined) { onDone(); return new Promise<void>(() => undefined); }
      for (let i = 0; i < events; i++) onEvent('ADDED', { metadata: { name: `o${String(watches)}-${String(i)}`, resourceVersion: String(10 + i) } });
      return Promise.reject(new Error('connection reset'));
    },
  };
}

describe('Informer watch backoff', () => {
  it('doubles while watches fail at once, and starts over after a watch that delivered events', async () => {
    const delays: number[] = [];
    const abort = new AbortController();
    const done = new Promise<void>((resolve) => {
      const client = flakyClient([0, 0, 0, 0, 0, 2, 0, 0], resolve);
      const informer = new Informer(client, {
        path: '/api/v1/things', transform: (o) => o,
        sleep: (ms) => { delays.push(ms); return Promise.resolve(); },
      }, silentLogger());
      void informer.run(abort.signal);
    });
    await done;
    abort.abort();
    expect(delays).toEqual([200, 400, 800, 1600, 3200, 200, 400, 800]);
  });
});
