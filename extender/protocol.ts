/**
 * The kube-scheduler extender wire format. Verified against the Go source of Kubernetes
 * v1.35.4 (k8s.io/kubernetes@v1.35.4, the version scripts/kube-build.sh builds):
 *
 * - staging/src/k8s.io/kube-scheduler/extender/v1/types.go (module k8s.io/kube-scheduler@v0.35.4):
 *   the structs have no json tags, so field names go over the wire as written, PascalCase:
 *   ExtenderArgs{Pod *v1.Pod, Nodes *v1.NodeList, NodeNames *[]string};
 *   ExtenderFilterResult{Nodes *v1.NodeList, NodeNames *[]string, FailedNodes map[string]string,
 *   FailedAndUnresolvableNodes map[string]string, Error string};
 *   HostPriorityList = []HostPriority{Host string, Score int64}; MinExtenderPriority 0,
 *   MaxExtenderPriority 10. Pod and Node inside are ordinary v1 objects (camelCase json tags).
 *   Absent pointers and maps are `null` (encoding/json).
 * - pkg/scheduler/extender.go, HTTPExtender: POSTs `strings.TrimRight(urlPrefix, "/") + "/" + verb`
 *   with Content-Type application/json; any status other than 200 is an error; otherwise the
 *   body is decoded. Filter: a non-empty `Error` is an error. With nodeCacheCapable and a
 *   non-nil `NodeNames`, every returned name must be in the input list ("claims a filtered node
 *   … which is not found in the input node list" fails the whole call); otherwise, when `Nodes`
 *   is non-nil, its items become the feasible nodes as sent back (framework.NewNodeInfo +
 *   SetNode(&result.Nodes.Items[i])): full objects must come back. When both are nil the
 *   feasible list is nil, i.e. every node is dropped.
 * - pkg/scheduler/schedule_one.go, findNodesThatPassExtenders: an error from an `ignorable`
 *   extender skips it (all nodes pass); FailedAndUnresolvableNodes become
 *   UnschedulableAndUnresolvable (preemption will not try those nodes) and take precedence over
 *   FailedNodes. prioritizeNodes: a Prioritize error is always ignored (no score from this
 *   extender); score × weight × (MaxNodeScore / MaxExtenderPriority) is added per Host, and a
 *   Host that is not a candidate is never looked up.
 */

/** Only the pod fields the extender reads; the rest passes through untouched. */
export interface WirePod {
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    labels?: Record<string, string> | null;
    annotations?: Record<string, string> | null;
  } | null;
  [key: string]: unknown;
}

/** v1.NodeList as the scheduler sends it: `{"metadata":{},"items":[…]}`. */
export interface WireNodeList {
  items: unknown[] | null;
  [key: string]: unknown;
}

export interface ExtenderArgs {
  Pod: WirePod | null;
  Nodes: WireNodeList | null;
  NodeNames: string[] | null;
}

export type FailedNodesMap = Record<string, string>;

export interface ExtenderFilterResult {
  Nodes: WireNodeList | null;
  NodeNames: string[] | null;
  FailedNodes: FailedNodesMap;
  FailedAndUnresolvableNodes: FailedNodesMap;
  Error: string;
}

export interface HostPriority { Host: string; Score: number }
export type HostPriorityList = HostPriority[];

/** The verbs this extender serves, as the paths kube-scheduler calls (`filterVerb: filter`, …). */
export type Verb = 'filter' | 'prioritize';
