/** Every name Lazarus writes or reads on Kubernetes objects (DESIGN §2). */

export const GROUP = 'lazarus.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

export const RESTORE = 'lazarus.dev/restore';

export const RESTORED_FROM = 'lazarus.dev/restored-from';
export const ORIGINAL_IMAGES = 'lazarus.dev/original-images';
export const ORIGIN_NODE = 'lazarus.dev/origin-node';
export const ORIGIN_ARCH = 'lazarus.dev/origin-arch';
export const ORIGIN_KERNEL = 'lazarus.dev/origin-kernel';
export const ORIGIN_CRIU = 'lazarus.dev/origin-criu';
export const ORIGIN_RUNTIME = 'lazarus.dev/origin-runtime';
export const ORIGIN_CPU_FLAGS = 'lazarus.dev/origin-cpu-flags';

/**
 * Set by the webhook on every opted-in pod it admits: `container=specHash` pairs computed on the
 * pod as the webhook saw it (before any image swap, before webhooks ordered after Lazarus add
 * env or mounts). The agent stamps Checkpoints with these, so both sides hash the same view.
 */
export const SPEC_HASHES = 'lazarus.dev/spec-hashes';

/**
 * Pod annotation: why the webhook started an opted-in pod cold (no usable checkpoint, none
 * trusted, no node that may run it can restore). The controller says it once as an Event.
 */
export const COLD_START = 'lazarus.dev/cold-start';

/** Node label: CRIU version as major×10000+minor×100+patch, so node affinity can use `Gt`. */
export const NODE_CRIU_VERSION = 'lazarus.dev/criu-version';
export const NODE_RESTORE_CAPABLE = 'lazarus.dev/restore-capable';
/**
 * Node label: the container runtime's name from status.nodeInfo.containerRuntimeVersion
 * (`containerd://2.3.7` → `containerd`), so a restored pod's required affinity can name it.
 */
export const NODE_RUNTIME = 'lazarus.dev/runtime';
/** Node annotation: why the node is (not) restore-capable, in words an operator can act on. */
export const NODE_RESTORE_CAPABLE_REASON = 'lazarus.dev/restore-capable-reason';
export const NODE_CRIU = 'lazarus.dev/criu';
export const NODE_CPU_FLAGS = 'lazarus.dev/cpu-flags';
export const NODE_CGROUP = 'lazarus.dev/cgroup';

export const LABEL_ARCH = 'kubernetes.io/arch';

export const CHECKPOINT_WORKLOAD = 'lazarus.dev/workload';
export const CHECKPOINT_WORKLOAD_KIND = 'lazarus.dev/workload-kind';
export const CHECKPOINT_CONTAINER = 'lazarus.dev/container';
/** Checkpoint label: the UID of the pod it was taken from (a recreated pod keeps its name, not its UID). */
export const CHECKPOINT_SOURCE_POD_UID = 'lazarus.dev/source-pod-uid';

/** Namespaces the webhook never touches, besides Lazarus' own (configurable). */
export const ALWAYS_EXCLUDED_NAMESPACES: readonly string[] = ['kube-system'];

/** Checkpoint on demand: `now` asks, the controller answers in the same annotation (api/checkpoint-request.ts). */
export const CHECKPOINT_REQUEST = 'lazarus.dev/checkpoint';

/**
 * Pod annotation, written by the eviction webhook (webhook/eviction.ts): when it first held an
 * eviction of this pod (RFC 3339 UTC). Kept on the pod, so every retry and every webhook replica
 * measures the hold from the same moment.
 */
export const EVICTION_HELD_SINCE = 'lazarus.dev/eviction-held-since';
