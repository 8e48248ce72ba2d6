/**
 * The shapes Lazarus reads and writes. Kubernetes objects are described structurally (only the
 * fields decisions use) rather than through @kubernetes/client-node's model classes: admission
 * JSON carries string timestamps where those models say Date.
 */

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid?: string;
  controller?: boolean;
}

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  creationTimestamp?: string;
  /** Spec changes so far (pods: 1 at creation, since Kubernetes 1.33; graceful deletion adds one). */
  generation?: number;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
}

export interface EnvVar { name: string; value?: string; valueFrom?: unknown }

export interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  workingDir?: string;
  env?: EnvVar[];
  envFrom?: unknown[];
  volumeMounts?: unknown[];
  [key: string]: unknown;
}

export interface NodeSelectorRequirement { key: string; operator: string; values?: string[] }
export interface NodeSelectorTerm { matchExpressions?: NodeSelectorRequirement[]; matchFields?: NodeSelectorRequirement[] }

export interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  nodeName?: string;
  schedulerName?: string;
  imagePullSecrets?: { name: string }[];
  affinity?: {
    nodeAffinity?: {
      requiredDuringSchedulingIgnoredDuringExecution?: { nodeSelectorTerms: NodeSelectorTerm[] };
      [key: string]: unknown;
    };
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

export interface Pod {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  spec: PodSpec;
  status?: unknown;
}

export interface NodeCondition { type: string; status: string; reason?: string; message?: string }

export interface Node {
  metadata: ObjectMeta;
  spec?: { unschedulable?: boolean; taints?: unknown[] };
  status?: {
    nodeInfo?: {
      architecture?: string;
      kernelVersion?: string;
      containerRuntimeVersion?: string;
      [key: string]: unknown;
    };
    conditions?: NodeCondition[];
    images?: { names?: string[]; sizeBytes?: number }[];
    [key: string]: unknown;
  };
}

export interface LabelSelectorRequirement { key: string; operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'; values?: string[] }
export interface LabelSelector { matchLabels?: Record<string, string>; matchExpressions?: LabelSelectorRequirement[] }

// ---- Checkpoint ----------------------------------------------------------------------------

export type WorkloadKind = 'Deployment' | 'StatefulSet' | 'ReplicaSet' | 'Pod';

export interface WorkloadRef { kind: WorkloadKind; name: string }

/** Facts about the node a checkpoint was taken on. */
export interface OriginFacts {
  node: string;
  architecture: string;
  kernelVersion: string;
  /** major×10000+minor×100+patch */
  criuVersion: number;
  /** containerRuntimeVersion, e.g. `cri-o://1.33.2` */
  runtime: string;
  cgroup?: string;
  /** Empty when unknown. */
  cpuFlags: string[];
}

/**
 * Unavailable: a good checkpoint set aside after a restore that could not start for reasons not
 * its own (the pod stayed Unschedulable, a transient image pull error); Ready again later.
 */
export type CheckpointPhase = 'Pending' | 'Ready' | 'Failed' | 'Expired' | 'Unavailable';

export interface CheckpointSpec {
  workload: WorkloadRef;
  container: string;
  sourcePod: string;
  image: string;
  baseImage: string;
  baseImageID?: string;
  specHash: string;
  takenAt: string;
  origin: OriginFacts;
}

export interface RestoreRecord {
  pod: string;
  node: string;
  at: string;
  outcome: 'Succeeded' | 'Failed';
  message?: string;
}

/** Which path took a checkpoint (the controller records it once the agent's Checkpoint appears). */
export type CheckpointTrigger = 'interval' | 'drain' | 'demand' | 'eviction';

export interface CheckpointStatus {
  phase?: CheckpointPhase;
  trigger?: CheckpointTrigger;
  reason?: string;
  restores?: number;
  lastRestore?: RestoreRecord;
}

export interface Checkpoint {
  apiVersion?: string;
  kind?: 'Checkpoint';
  metadata: ObjectMeta;
  spec: CheckpointSpec;
  status?: CheckpointStatus;
}

// ---- RestorePolicy -------------------------------------------------------------------------

export type PolicyMode = 'OptIn' | 'All';
export type CriuRule = 'AtLeastOrigin' | 'Exact';
export type CpuRule = 'Superset' | 'Ignore';
export type RuntimeRule = 'SameName' | 'Ignore';
export type KernelRule = 'Prefer' | 'SameMajorMinor' | 'Exact';
export type Placement = 'Prefer' | 'Require';
export type FailureAction = 'ColdStart';

export interface CompatibilityRules {
  criu: CriuRule;
  cpu: CpuRule;
  runtime: RuntimeRule;
  kernel: KernelRule;
}

/** A RestorePolicy's spec with every default filled in. */
export interface PolicySpec {
  priority: number;
  namespaceSelector: LabelSelector;
  workloadSelector: LabelSelector;
  mode: PolicyMode;
  maxCheckpointAge: string;
  compatibility: CompatibilityRules;
  placement: Placement;
  schedulerName: string;
  imagePullSecret: string;
  checkpoint: {
    interval: string;
    onDrain: boolean;
    timeoutSeconds: number;
    /** Checkpoints taken at once on one node (≥ 1); where policies mix on a node, the smallest in flight applies. */
    maxParallelPerNode: number;
    retain: number;
    registry: string;
    pushSecret: string;
    /** Duration: the longest an eviction is held for a fresh checkpoint (webhook/eviction.ts); then it is admitted. */
    evictionTimeout: string;
  };
  restore: {
    failureAction: FailureAction;
    /** Duration: a restored pod Unschedulable this long is recreated cold. */
    unschedulableTimeout: string;
    /** Duration: a restored pod whose image pull keeps failing (not "not found") this long is recreated cold. */
    imagePullTimeout: string;
  };
}

/** What a user stores: every field optional, nested objects partial. */
export interface RestorePolicy {
  apiVersion?: string;
  kind?: 'RestorePolicy';
  metadata: ObjectMeta;
  spec?: {
    [K in keyof PolicySpec]?: PolicySpec[K] extends object ? Partial<PolicySpec[K]> : PolicySpec[K];
  };
}

/** A policy resolved for use: name plus a complete spec. `name` is empty for built-in defaults. */
export interface EffectivePolicy {
  name: string;
  spec: PolicySpec;
  /** maxCheckpointAge parsed, in milliseconds. */
  maxCheckpointAgeMs: number;
}
