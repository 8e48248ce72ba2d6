/** A component that cannot start: a clear error with its log, and nothing left running. */
import { startControlPlane, isAlive } from '../harness/control-plane.js';
import { kubeBinDir } from '../harness/kube-bin.js';

let binDir: string;
beforeAll(async () => { binDir = await kubeBinDir(); }, 15 * 60_000);

it('reports a kube-apiserver that exits, with the tail of its log, and leaks no process', async () => {
  const started: Array<{ name: string; pid: number }> = [];
  const failure = startControlPlane({
    binDir, log: () => undefined, removeDirOnStop: true,
    extraApiServerArgs: ['--no-such-flag=1'],
    onProcess: (name, pid) => started.push({ name, pid }),
  });
  await expect(failure).rejects.toThrow(/kube-apiserver exited with code \d+ before it became healthy[\s\S]*log [^\n]*kube-apiserver\.log:\n[\s\S]*unknown flag: --no-such-flag/);
  expect(started.map((s) => s.name)).toEqual(['reaper', 'etcd', 'kube-apiserver']);
  expect(started.filter((s) => isAlive(s.pid))).toEqual([]);
}, 60_000);
