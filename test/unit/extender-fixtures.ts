/**
 * Request bodies shaped like kube-scheduler's: encoding/json of extenderv1.ExtenderArgs, so
 * PascalCase envelope fields, `null` for the absent one, `"metadata":{}` on the NodeList,
 * `"creationTimestamp":null` where a Go metav1.Time is zero, full v1 Node objects (conditions,
 * addresses, capacity, nodeInfo, 20 images).
 */
import { generateKeyPairSync } from 'node:crypto';
import forge from 'node-forge';
import * as K from '../../api/keys.js';

export interface NodeSpec {
  name: string;
  arch?: string;
  kernel?: string;
  /** Label value, e.g. '40101'; undefined: no label. */
  criu?: string | undefined;
  runtime?: string;
  restoreCapable?: boolean;
  cpuFlags?: string | undefined;
  /** Extra image names present on the node. */
  images?: string[];
}

const DEFAULT_FLAGS = 'fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2 ss ht syscall nx rdtscp lm constant_tsc nopl xtopology cpuid pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt aes xsave avx f16c rdrand hypervisor lahf_lm abm 3dnowprefetch bmi1 avx2 smep bmi2 erms invpcid rdseed adx smap clflushopt xsaveopt xsavec xgetbv1 xsaves arat';

/** A full v1 Node as the API server (and the scheduler) would serialise it. */
export function wireNode(spec: NodeSpec, index = 0): Record<string, unknown> {
  const labels: Record<string, string> = {
    'beta.kubernetes.io/arch': spec.arch ?? 'amd64',
    'beta.kubernetes.io/os': 'linux',
    'kubernetes.io/arch': spec.arch ?? 'amd64',
    'kubernetes.io/hostname': spec.name,
    'kubernetes.io/os': 'linux',
    'node.kubernetes.io/instance-type': 'm6i.2xlarge',
    'topology.kubernetes.io/region': 'eu-west-1',
    'topology.kubernetes.io/zone': `eu-west-1${'abc'[index % 3] ?? 'a'}`,
  };
  if (spec.criu !== undefined) labels[K.NODE_CRIU_VERSION] = spec.criu;
  if (spec.restoreCapable !== undefined) labels[K.NODE_RESTORE_CAPABLE] = String(spec.restoreCapable);
  const annotations: Record<string, string> = {
    'node.alpha.kubernetes.io/ttl': '0',
    'volumes.kubernetes.io/controller-managed-attach-detach': 'true',
    [K.NODE_CRIU]: '4.1.1',
    [K.NODE_CGROUP]: 'v2',
  };
  if (spec.cpuFlags !== undefined) annotations[K.NODE_CPU_FLAGS] = spec.cpuFlags;
  const images = Array.from({ length: 20 }, (_, i) => ({
    names: [
      `registry.example/team-${i % 7}/service-${i}@sha256:${(index * 31 + i).toString(16).padStart(64, '0')}`,
      `registry.example/team-${i % 7}/service-${i}:v1.${i}.${index % 10}`,
    ],
    sizeBytes: 10_000_000 + i * 1_234_567,
  }));
  for (const name of spec.images ?? []) images.push({ names: [name], sizeBytes: 42_000_000 });
  const t = '2026-11-27T11:00:00Z';
  return {
    metadata: {
      name: spec.name,
      uid: `8c3f${index.toString(16).padStart(4, '0')}-1b2c-4d5e-8f90-a1b2c3d4e5f6`,
      resourceVersion: String(100_000 + index),
      creationTimestamp: '2026-11-01T08:00:00Z',
      labels,
      annotations,
    },
    spec: { podCIDR: `10.244.${index % 256}.0/24`, podCIDRs: [`10.244.${index % 256}.0/24`], providerID: `aws:///eu-west-1a/i-0${index.toString(16).padStart(16, '0')}` },
    status: {
      capacity: { cpu: '8', 'ephemeral-storage': '101430960Ki', 'hugepages-2Mi': '0', memory: '32617196Ki', pods: '110' },
      allocatable: { cpu: '7910m', 'ephemeral-storage': '93478772582', 'hugepages-2Mi': '0', memory: '31600364Ki', pods: '110' },
      conditions: [
        { type: 'MemoryPressure', status: 'False', lastHeartbeatTime: t, lastTransitionTime: t, reason: 'KubeletHasSufficientMemory', message: 'kubelet has sufficient memory available' },
        { type: 'DiskPressure', status: 'False', lastHeartbeatTime: t, lastTransitionTime: t, reason: 'KubeletHasNoDiskPressure', message: 'kubelet has no disk pressure' },
        { type: 'PIDPressure', status: 'False', lastHeartbeatTime: t, lastTransitionTime: t, reason: 'KubeletHasSufficientPID', message: 'kubelet has sufficient PID available' },
        { type: 'Ready', status: 'True', lastHeartbeatTime: t, lastTransitionTime: t, reason: 'KubeletReady', message: 'kubelet is posting ready status' },
      ],
      addresses: [
        { type: 'InternalIP', address: `10.0.${Math.floor(index / 256) % 256}.${index % 256}` },
        { type: 'Hostname', address: spec.name },
      ],
      daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
      nodeInfo: {
        machineID: 'ec2a7c1f0e2b4c8d9e0f1a2b3c4d5e6f',
        systemUUID: 'ec2a7c1f-0e2b-4c8d-9e0f-1a2b3c4d5e6f',
        bootID: '5b0c1d2e-3f40-4152-8364-75869708a9b0',
        kernelVersion: spec.kernel ?? '6.8.0-45-generic',
        osImage: 'Ubuntu 24.04.1 LTS',
        containerRuntimeVersion: spec.runtime ?? 'cri-o://1.33.2',
        kubeletVersion: 'v1.35.4',
        kubeProxyVersion: 'v1.35.4',
        operatingSystem: 'linux',
        architecture: spec.arch ?? 'amd64',
      },
      images,
    },
  };
}

/** A node that can restore the standard origin below, and matches it exactly. */
export function goodNode(name: string, extra: Partial<NodeSpec> = {}, index = 0): Record<string, unknown> {
  return wireNode({ name, criu: '40101', restoreCapable: true, cpuFlags: DEFAULT_FLAGS, images: [BASE_IMAGE], ...extra }, index);
}

export const BASE_IMAGE = 'registry.example/web:1.4';

export const ORIGIN_ANNOTATIONS: Readonly<Record<string, string>> = Object.freeze({
  [K.RESTORED_FROM]: 'app=web-app-20261127t120000z',
  [K.ORIGINAL_IMAGES]: `app=${BASE_IMAGE}`,
  [K.ORIGIN_NODE]: 'node-7',
  [K.ORIGIN_ARCH]: 'amd64',
  [K.ORIGIN_KERNEL]: '6.8.0-45-generic',
  [K.ORIGIN_CRIU]: '4.1.1',
  [K.ORIGIN_RUNTIME]: 'cri-o://1.33.2',
  [K.ORIGIN_CPU_FLAGS]: 'fpu sse4_2 avx2',
});

/** A v1 Pod as the scheduler marshals it (Go zero values: `creationTimestamp: null`, `status: {}`…). */
export function wirePod(restored: boolean, extraAnnotations: Record<string, string> = {}): Record<string, unknown> {
  return {
    metadata: {
      name: 'web-7d9c-abcde',
      generateName: 'web-7d9c-',
      namespace: 'shop',
      uid: '0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b',
      resourceVersion: '123456',
      creationTimestamp: '2026-11-27T12:05:00Z',
      labels: { app: 'web', 'pod-template-hash': '7d9c' },
      annotations: { ...(restored ? ORIGIN_ANNOTATIONS : {}), ...extraAnnotations },
      ownerReferences: [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'web-7d9c', uid: '1a2b', controller: true, blockOwnerDeletion: true }],
    },
    spec: {
      containers: [{
        name: 'app', image: restored ? 'registry.example/lazarus/shop/web-app@sha256:abc' : BASE_IMAGE,
        resources: {}, terminationMessagePath: '/dev/termination-log', terminationMessagePolicy: 'File', imagePullPolicy: 'IfNotPresent',
      }],
      restartPolicy: 'Always', terminationGracePeriodSeconds: 30, dnsPolicy: 'ClusterFirst', serviceAccountName: 'default',
      securityContext: {}, schedulerName: 'default-scheduler', priority: 0, enableServiceLinks: true, preemptionPolicy: 'PreemptLowerPriority',
    },
    status: { phase: 'Pending', qosClass: 'BestEffort' },
  };
}

export function fullArgs(pod: unknown, nodes: unknown[]): Record<string, unknown> {
  return { Pod: pod, Nodes: { metadata: {}, items: nodes }, NodeNames: null };
}

export function namesArgs(pod: unknown, names: string[]): Record<string, unknown> {
  return { Pod: pod, Nodes: null, NodeNames: names };
}

/** A self-signed serving certificate for 127.0.0.1 (PEM), valid for an hour. */
export function selfSignedCert(commonName: string): { cert: string; key: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const key = privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }).toString());
  cert.serialNumber = `0${forge.util.bytesToHex(forge.random.getBytesSync(15))}`;
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 3_600_000);
  const attrs = [{ name: 'commonName', value: commonName }];
  cert.setSubject(attrs);
  cert.setIssuer(attrs);
  cert.setExtensions([{ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] }]);
  cert.sign(forge.pki.privateKeyFromPem(key), forge.md.sha256.create());
  return { cert: forge.pki.certificateToPem(cert), key };
}
