/**
 * The OCI checkpoint image, as pure data: annotations, config and manifest bytes. Deterministic
 * (no clock): the same archive on the same node always yields the same manifest digest, which is
 * what makes a re-push after a crash idempotent.
 */
import { createHash } from 'node:crypto';
import type { ArchiveMeta } from './archive-meta.js';

export const MEDIA_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const MEDIA_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const MEDIA_LAYER_TAR = 'application/vnd.oci.image.layer.v1.tar';

export interface Descriptor { mediaType: string; digest: string; size: number }

/** Facts about the node that took the checkpoint, as image annotations want them. */
export interface HostFacts {
  /** `4.1.1` */
  criuVersion?: string;
  kernel: string;
  /** GOARCH style: amd64, arm64. */
  arch: string;
  runtimeVersion?: string;
  cgroup?: 'v1' | 'v2';
}

/** Node's `process.arch` → OCI/GOARCH names. */
export function ociArch(nodeArch: string): string {
  const map: Record<string, string> = { x64: 'amd64', ia32: '386', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
  return map[nodeArch] ?? nodeArch;
}

export const ANNOTATION = {
  crioName: 'io.kubernetes.cri-o.annotations.checkpoint.name',
  containerName: 'org.criu.checkpoint.container.name',
  podmanName: 'io.podman.annotations.checkpoint.name',
  podmanRuntime: 'io.podman.annotations.checkpoint.runtime.name',
  podmanRootfsImageName: 'io.podman.annotations.checkpoint.rootfsImageName',
  podmanRootfsImageId: 'io.podman.annotations.checkpoint.rootfsImageID',
  engine: 'org.criu.checkpoint.engine',
  criuVersion: 'org.criu.checkpoint.criu.version',
  hostKernel: 'org.criu.checkpoint.host.kernel',
  hostArch: 'org.criu.checkpoint.host.arch',
  runtimeName: 'org.criu.checkpoint.runtime.name',
  runtimeVersion: 'org.criu.checkpoint.runtime.version',
  cgroupVersion: 'org.criu.checkpoint.cgroup.version',
  podName: 'org.criu.checkpoint.pod.name',
  podNamespace: 'org.criu.checkpoint.pod.namespace',
  rootfsImage: 'org.criu.checkpoint.rootfsImage',
  rootfsImageName: 'org.criu.checkpoint.rootfsImageName',
  rootfsImageId: 'org.criu.checkpoint.rootfsImageID',
  created: 'org.opencontainers.image.created',
} as const;

/** DESIGN §2's manifest annotations; keys with no known value are left out rather than empty. */
export function checkpointAnnotations(meta: ArchiveMeta, host: HostFacts): Record<string, string> {
  const a: Record<string, string | undefined> = {
    [ANNOTATION.crioName]: meta.container,
    [ANNOTATION.containerName]: meta.container,
    [ANNOTATION.podmanName]: meta.container,
    [ANNOTATION.podmanRuntime]: meta.runtime,
    [ANNOTATION.podmanRootfsImageName]: meta.rootfsImageName,
    [ANNOTATION.podmanRootfsImageId]: meta.rootfsImageId,
    [ANNOTATION.engine]: meta.engine,
    [ANNOTATION.criuVersion]: host.criuVersion,
    [ANNOTATION.hostKernel]: host.kernel,
    [ANNOTATION.hostArch]: host.arch,
    [ANNOTATION.runtimeName]: meta.runtime,
    [ANNOTATION.runtimeVersion]: host.runtimeVersion,
    [ANNOTATION.cgroupVersion]: host.cgroup,
    [ANNOTATION.podName]: meta.pod,
    [ANNOTATION.podNamespace]: meta.namespace,
    [ANNOTATION.rootfsImage]: meta.rootfsImage,
    [ANNOTATION.rootfsImageName]: meta.rootfsImageName,
    [ANNOTATION.rootfsImageId]: meta.rootfsImageId,
    [ANNOTATION.created]: meta.checkpointedTime,
  };
  return Object.fromEntries(Object.entries(a).filter((e): e is [string, string] => e[1] !== undefined && e[1] !== ''));
}

export function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

export interface ImageParts {
  config: Buffer;
  configDescriptor: Descriptor;
  manifest: Buffer;
  manifestDigest: string;
}

/** One layer (the archive's tar, uncompressed, extracted at `/`), its config, its manifest. */
export function buildImage(layer: { digest: string; size: number }, arch: string, annotations: Record<string, string>, created?: string): ImageParts {
  const configObject = {
    architecture: arch,
    os: 'linux',
    ...(created ? { created } : {}),
    config: {},
    rootfs: { type: 'layers', diff_ids: [layer.digest] },
    history: [{ ...(created ? { created } : {}), created_by: 'lazarus agent build', comment: 'checkpoint archive at /' }],
  };
  const config = Buffer.from(JSON.stringify(configObject));
  const configDescriptor: Descriptor = { mediaType: MEDIA_CONFIG, digest: sha256(config), size: config.length };
  const manifestObject = {
    schemaVersion: 2,
    mediaType: MEDIA_MANIFEST,
    config: configDescriptor,
    layers: [{ mediaType: MEDIA_LAYER_TAR, digest: layer.digest, size: layer.size }],
    annotations,
  };
  const manifest = Buffer.from(JSON.stringify(manifestObject));
  return { config, configDescriptor, manifest, manifestDigest: sha256(manifest) };
}
