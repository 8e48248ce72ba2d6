/**
 * The objects `npm run bench:memory` creates through the API: Deployments with realistic pod
 * templates (2–3 kB), their ReplicaSets (a revision history of 10 each; only the newest has
 * replicas), Pods as a kubelet leaves them (spec, status with conditions and container statuses)
 * and Checkpoints (two containers, three sets per workload: what retention keeps). Pure: the
 * same index gives the same object.
 */
import { specHash } from '../api/spec-hash.js';

export const NAMESPACES = 100;
export const REVISIONS_PER_DEPLOYMENT = 10;
export const CHECKPOINT_SETS = 3;

export const namespaceOf = (i: number): string => `team-${String(i % NAMESPACES).padStart(2, '0')}`;
export const deploymentName = (i: number): string => `svc-${String(i).padStart(5, '0')}`;
/** ReplicaSet `r` of Deployment `d`, named `<deployment>-<pod-template-hash>` as the Deployment controller does. */
export const templateHash = (d: number, r: number): string => (0x5d8f7c900 + d * 16 + r).toString(36).slice(-10);
export const replicaSetName = (d: number, r: number): string => `${deploymentName(d)}-${templateHash(d, r)}`;

interface Container { name: string; image: string; [k: string]: unknown }

function containers(d: number, r: number): Container[] {
  const env = (names: readonly string[]): { name: string; value: string }[] =>
    names.map((name, k) => ({ name, value: k % 2 ? `https://${deploymentName(d)}.${namespaceOf(d)}.svc:8443/v${r}` : `${name.toLowerCase()}-value-${d}` }));
  return [
    {
      name: 'app',
      image: `registry.example/team-${d % 7}/${deploymentName(d)}:v1.${r}.${d % 10}`,
      command: ['/usr/local/bin/server'],
      args: ['--config=/etc/app/config.yaml', '--port=8080', '--metrics-port=9090', `--shard=${d % 16}`],
      ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }, { name: 'metrics', containerPort: 9090, protocol: 'TCP' }],
      env: [
        ...env(['LOG_LEVEL', 'UPSTREAM_URL', 'CACHE_SIZE', 'FEATURE_FLAGS_URL', 'REGION', 'TRACING_ENDPOINT', 'DB_POOL_SIZE', 'SESSION_STORE']),
        { name: 'POD_NAME', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } },
        { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } } },
      ],
      envFrom: [{ configMapRef: { name: `${deploymentName(d)}-config` } }],
      resources: { requests: { cpu: '250m', memory: '256Mi' }, limits: { cpu: '1', memory: '512Mi' } },
      volumeMounts: [{ name: 'config', mountPath: '/etc/app', readOnly: true }, { name: 'cache', mountPath: '/var/cache/app' }],
      livenessProbe: { httpGet: { path: '/healthz', port: 8080, scheme: 'HTTP' }, initialDelaySeconds: 10, periodSeconds: 10, timeoutSeconds: 1, successThreshold: 1, failureThreshold: 3 },
      readinessProbe: { httpGet: { path: '/readyz', port: 8080, scheme: 'HTTP' }, periodSeconds: 5, timeoutSeconds: 1, successThreshold: 1, failureThreshold: 3 },
      securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: { drop: ['ALL'] } },
      terminationMessagePath: '/dev/termination-log', terminationMessagePolicy: 'File', imagePullPolicy: 'IfNotPresent',
    },
    {
      name: 'proxy',
      image: 'registry.example/platform/envoy:v1.31.2',
      args: ['--config-path=/etc/envoy/envoy.yaml', '--log-level=warn'],
      ports: [{ name: 'proxy', containerPort: 15001, protocol: 'TCP' }],
      resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { cpu: '500m', memory: '128Mi' } },
      volumeMounts: [{ name: 'envoy', mountPath: '/etc/envoy', readOnly: true }],
      terminationMessagePath: '/dev/termination-log', terminationMessagePolicy: 'File', imagePullPolicy: 'IfNotPresent',
    },
  ];
}

function podSpec(d: number, r: number): Record<string, unknown> {
  return {
    containers: containers(d, r),
    volumes: [
      { name: 'config', configMap: { name: `${deploymentName(d)}-config`, defaultMode: 420 } },
      { name: 'cache', emptyDir: { sizeLimit: '1Gi' } },
      { name: 'envoy', configMap: { name: 'envoy-sidecar', defaultMode: 420 } },
    ],
    restartPolicy: 'Always', terminationGracePeriodSeconds: 30, dnsPolicy: 'ClusterFirst', schedulerName: 'default-scheduler',
    securityContext: { fsGroup: 2000, seccompProfile: { type: 'RuntimeDefault' } },
    affinity: { podAntiAffinity: { preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 100, podAffinityTerm: { topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: { app: deploymentName(d) } } } }] } },
    tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'apps', effect: 'NoSchedule' }],
  };
}

const labelsOf = (d: number): Record<string, string> => ({ app: deploymentName(d), team: `team-${d % 7}`, tier: d % 3 ? 'backend' : 'frontend' });

export function deployment(d: number, replicas: number): Record<string, unknown> {
  return {
    apiVersion: 'apps/v1', kind: 'Deployment',
    metadata: { name: deploymentName(d), namespace: namespaceOf(d), labels: labelsOf(d), annotations: d % 4 === 0 ? { 'lazarus.dev/restore': 'enabled' } : {} },
    spec: {
      replicas, revisionHistoryLimit: REVISIONS_PER_DEPLOYMENT,
      selector: { matchLabels: { app: deploymentName(d) } },
      template: { metadata: { labels: labelsOf(d) }, spec: podSpec(d, REVISIONS_PER_DEPLOYMENT - 1) },
    },
  };
}

/** The newest (`r` = REVISIONS_PER_DEPLOYMENT − 1) has `replicas` pods; the older ones none. */
export function replicaSet(d: number, r: number, deploymentUid: string, replicas: number): Record<string, unknown> {
  const hash = templateHash(d, r);
  const labels = { ...labelsOf(d), 'pod-template-hash': hash };
  return {
    apiVersion: 'apps/v1', kind: 'ReplicaSet',
    metadata: {
      name: replicaSetName(d, r), namespace: namespaceOf(d), labels,
      annotations: { 'deployment.kubernetes.io/desired-replicas': '2', 'deployment.kubernetes.io/max-replicas': '3', 'deployment.kubernetes.io/revision': String(r + 1) },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: deploymentName(d), uid: deploymentUid, controller: true, blockOwnerDeletion: true }],
    },
    spec: {
      replicas: r === REVISIONS_PER_DEPLOYMENT - 1 ? replicas : 0,
      selector: { matchLabels: { app: deploymentName(d), 'pod-template-hash': hash } },
      template: { metadata: { labels }, spec: podSpec(d, r) },
    },
  };
}

/** Pod `p` of the newest ReplicaSet of Deployment `d`, bound to `node`; its status comes separately. */
export function pod(d: number, p: number, replicaSetUid: string, node: string): { pod: Record<string, unknown>; status: Record<string, unknown> } {
  const r = REVISIONS_PER_DEPLOYMENT - 1;
  const hash = templateHash(d, r);
  const name = `${replicaSetName(d, r)}-${p.toString(36).padStart(5, 'x')}`;
  const spec = { ...podSpec(d, r), nodeName: node };
  const t = '2026-11-27T11:00:00Z';
  const running = (c: Container, k: number): Record<string, unknown> => ({
    name: c.name, image: c.image, imageID: `${c.image.replace(/:[^:/]+$/, '')}@sha256:${(d * 7 + k).toString(16).padStart(64, '0')}`,
    containerID: `cri-o://${(d * 1_000_003 + p * 7 + k).toString(16).padStart(64, '0')}`,
    ready: true, started: true, restartCount: p % 5 === 0 ? 1 : 0,
    state: { running: { startedAt: t } },
    ...(p % 5 === 0 ? { lastState: { terminated: { exitCode: 137, reason: 'OOMKilled', startedAt: t, finishedAt: t, containerID: 'cri-o://0' } } } : {}),
  });
  const condition = (type: string): Record<string, unknown> => ({ type, status: 'True', lastProbeTime: null, lastTransitionTime: t });
  return {
    pod: {
      apiVersion: 'v1', kind: 'Pod',
      metadata: {
        name, generateName: `${replicaSetName(d, r)}-`, namespace: namespaceOf(d), labels: { ...labelsOf(d), 'pod-template-hash': hash },
        ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: replicaSetName(d, r), uid: replicaSetUid, controller: true, blockOwnerDeletion: true }],
      },
      spec,
    },
    status: {
      phase: 'Running', hostIP: '10.0.1.17', hostIPs: [{ ip: '10.0.1.17' }], podIP: `10.244.${p % 256}.${d % 256}`, podIPs: [{ ip: `10.244.${p % 256}.${d % 256}` }],
      startTime: t, qosClass: 'Burstable',
      conditions: ['PodReadyToStartContainers', 'Initialized', 'Ready', 'ContainersReady', 'PodScheduled'].map(condition),
      containerStatuses: containers(d, r).map(running),
    },
  };
}

const CPU_FLAGS = 'fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ht syscall nx pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology nonstop_tsc cpuid tsc_known_freq pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt aes xsave avx f16c rdrand hypervisor lahf_lm abm 3dnowprefetch invpcid_single ssbd ibrs ibpb stibp fsgsbase bmi1 avx2 smep bmi2 erms invpcid avx512f avx512dq rdseed adx smap clflushopt clwb avx512cd avx512bw avx512vl xsaveopt xsavec xgetbv1 xsaves arat pku ospke'.split(' ');

/** Checkpoint `k` of Deployment `d`: set `k / 2` (a source pod), container `k % 2`. */
export function checkpoint(d: number, k: number): Record<string, unknown> {
  const c = containers(d, REVISIONS_PER_DEPLOYMENT - 1)[k % 2] as Container;
  const set = Math.floor(k / 2);
  const takenAt = new Date(Date.UTC(2026, 10, 27, 12, 0, 0) - set * 1_800_000).toISOString().replace(/\.\d+Z$/, 'Z');
  const name = `${deploymentName(d)}-${c.name}-${takenAt.replace(/[-:]/g, '').toLowerCase()}`;
  return {
    apiVersion: 'lazarus.dev/v1alpha1', kind: 'Checkpoint',
    metadata: { name, namespace: namespaceOf(d), labels: { 'lazarus.dev/workload': deploymentName(d), 'lazarus.dev/workload-kind': 'Deployment', 'lazarus.dev/container': c.name } },
    spec: {
      workload: { kind: 'Deployment', name: deploymentName(d) }, container: c.name, sourcePod: `${replicaSetName(d, REVISIONS_PER_DEPLOYMENT - 1)}-s${set}`,
      image: `registry.example/lazarus/${namespaceOf(d)}/${deploymentName(d)}-${c.name}@sha256:${(d * 31 + k).toString(16).padStart(64, '0')}`,
      baseImage: c.image, baseImageID: `${c.image.replace(/:[^:/]+$/, '')}@sha256:${(d * 7 + k % 2).toString(16).padStart(64, '0')}`,
      specHash: specHash(c as never), takenAt,
      origin: { node: `node-${String((d + set) % 5000).padStart(5, '0')}`, architecture: 'amd64', kernelVersion: '6.8.0-45-generic', criuVersion: 40101, runtime: 'cri-o://1.33.2', cgroup: 'v2', cpuFlags: CPU_FLAGS },
    },
  };
}
