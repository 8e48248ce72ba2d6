/**
 * Renders charts/lazarus with `helm template` into plain objects, and the value sets the tests
 * use: each names its kustomize counterpart (the overlay that installs the same thing), if any.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { helmPathSync } from '../harness/helm-bin.js';
import type { K8sObject } from './kustomize.js';

export const CHART = 'charts/lazarus';

export interface ValueSet {
  name: string;
  values: Record<string, unknown>;
  /** The kustomize directory that installs the same objects, up to the differences listed in test/unit/helm-chart.test.ts. */
  overlay?: string;
}

/** Every value a person is likely to change, at once, with values that differ from the defaults. */
export const EVERYTHING: Record<string, unknown> = {
  image: { repository: 'registry.example/lazarus', digest: `sha256:${'a'.repeat(64)}`, pullPolicy: 'IfNotPresent' },
  imagePullSecrets: ['pull-one', 'pull-two'],
  registry: { url: 'registry.example:5000/checkpoints', insecure: true, pushSecret: { dockerConfigJson: '{"auths":{}}' } },
  webhook: { replicas: 3, resources: { requests: { cpu: '200m', memory: '300Mi' } } },
  extender: { replicas: 1 },
  controller: { replicas: 1, resources: { limits: { memory: '1Gi' } }, maxHeapMiB: 600 },
  agent: { nodeSelector: { 'lazarus.dev/restore-capable': 'true' }, tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'stateful', effect: 'NoSchedule' }], checkpointDir: '/srv/kubelet/checkpoints' },
  defaultPolicy: { mode: 'All', priority: 5, maxCheckpointAge: '12h', placement: 'Require', imagePullSecret: 'pull-one', checkpoint: { interval: '10m', onDrain: true, timeoutSeconds: 90, maxParallelPerNode: 2, retain: 5, evictionTimeout: '30s' } },
  metrics: { serviceMonitor: { enabled: true, interval: '15s', labels: { release: 'prometheus' } } },
  uninstall: { deleteCheckpoints: true },
};

export const CHART_VALUE_SETS: readonly ValueSet[] = [
  { name: 'defaults', values: {}, overlay: 'manifests/base' },
  { name: 'cert-manager', values: { certificates: { mode: 'cert-manager' } }, overlay: 'manifests/overlays/cert-manager' },
  { name: 'self-signed', values: { certificates: { mode: 'self-signed' } }, overlay: 'manifests/base' },
  { name: 'default-scheduler', values: { scheduler: { mode: 'default-scheduler' } }, overlay: 'manifests/overlays/default-scheduler' },
  { name: 'second-scheduler', values: { scheduler: { mode: 'second-scheduler' } }, overlay: 'manifests/overlays/second-scheduler' },
  { name: 'everything', values: EVERYTHING },
];

/** Writes `values` to a temporary file for `helm -f`, runs `fn`, removes the file (once a promise `fn` returns settles). */
export function withValuesFile<T>(values: Record<string, unknown>, fn: (file: string) => T): T {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lazarus-values-'));
  const cleanUp = (): void => { rmSync(dir, { recursive: true, force: true }); };
  let result: T;
  try {
    const file = path.join(dir, 'values.json');
    writeFileSync(file, JSON.stringify(values));
    result = fn(file);
  } catch (err) {
    cleanUp();
    throw err;
  }
  if (result instanceof Promise) return result.finally(cleanUp) as T;
  cleanUp();
  return result;
}

/** `helm template lazarus charts/lazarus --include-crds` with `values`, as objects. Throws helm's message on failure. */
export function renderChart(values: Record<string, unknown>, namespace = 'lazarus-system'): K8sObject[] {
  const out = withValuesFile(values, (file) => runHelm(['template', 'lazarus', CHART, '--namespace', namespace, '--include-crds', '-f', file]));
  return parseAllDocuments(out).map((d) => d.toJS() as K8sObject).filter(Boolean);
}

/** Runs helm synchronously; its stderr becomes the error's message. */
export function runHelm(args: readonly string[]): string {
  try {
    return execFileSync(helmPathSync(), args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`helm ${args.join(' ')}: ${(e.stderr ?? e.message).trim()}`);
  }
}
