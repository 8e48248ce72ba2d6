/**
 * What the extender answers, as pure functions of the decoded request and injected lookups.
 * No I/O, no clock: the HTTP layer (server.ts) decodes, calls these, and encodes.
 */
import { compileCompatibility, compileExplain, compileScore, nodeFacts, podRestoreFacts, type CompatRule, type NodeFacts, type PodRestoreFacts, type Rules } from '../api/compat.js';
import type { EffectivePolicy, Node } from '../api/types.js';
import type { NameIndex } from './name-index.js';
import type { ExtenderArgs, ExtenderFilterResult, HostPriorityList, WireNodeList, WirePod } from './protocol.js';

export interface Lookups {
  /** The policy that applies to a restored pod (only called for restored pods). */
  policyFor(pod: WirePod): EffectivePolicy;
  /** Node facts from a cache; undefined when the extender runs without one (no --kubeconfig). */
  nodeByName: ((name: string) => NodeFacts | undefined) | undefined;
  /** Why the node cache cannot answer yet (e.g. not synced); undefined when it can. */
  nodeCacheProblem?: (() => string | undefined) | undefined;
  /**
   * Remembers verdicts and scores per cached node across requests (NodeNames mode); without
   * it every request judges every node afresh.
   */
  judges?: JudgeCache | undefined;
  /** The node cache by name-in-a-body (names-wire.ts); absent, NodeNames requests are decoded. */
  nameIndex?: (() => NameIndex) | undefined;
}

/** A request that passed validation: exactly one mode. */
export type Request =
  | { mode: 'nodes'; pod: WirePod; list: WireNodeList; items: unknown[] }
  | { mode: 'names'; pod: WirePod; names: string[] };

export type Validation = { ok: true; request: Request } | { ok: false; error: string };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Undefined when `pod` can be an ExtenderArgs.Pod; otherwise what is wrong with it. */
export function podProblem(pod: unknown): string | undefined {
  if (!isRecord(pod)) return 'ExtenderArgs.Pod is missing or not an object';
  if (pod.metadata !== undefined && pod.metadata !== null && !isRecord(pod.metadata)) return 'ExtenderArgs.Pod.metadata is not an object';
  return undefined;
}

/** Checks the envelope only; node objects are read defensively by nodeFacts. */
export function validateArgs(body: unknown): Validation {
  if (!isRecord(body)) return { ok: false, error: 'request body is not a JSON object (want ExtenderArgs{Pod, Nodes, NodeNames})' };
  const args = body as Partial<ExtenderArgs>;
  const pod = args.Pod;
  const problem = podProblem(pod);
  if (problem !== undefined || !isRecord(pod)) return { ok: false, error: problem ?? 'ExtenderArgs.Pod is not an object' };
  const nodes = args.Nodes;
  if (nodes !== undefined && nodes !== null) {
    if (!isRecord(nodes)) return { ok: false, error: 'ExtenderArgs.Nodes is not a NodeList object' };
    const items = nodes.items ?? [];
    if (!Array.isArray(items)) return { ok: false, error: 'ExtenderArgs.Nodes.items is not an array' };
    // Full-Nodes mode wins when both are present: a full answer works for either scheduler setting.
    return { ok: true, request: { mode: 'nodes', pod, list: nodes as WireNodeList, items } };
  }
  const names = args.NodeNames;
  if (names !== undefined && names !== null) {
    if (!Array.isArray(names) || !names.every((n) => typeof n === 'string')) {
      return { ok: false, error: 'ExtenderArgs.NodeNames is not an array of strings' };
    }
    return { ok: true, request: { mode: 'names', pod, names } };
  }
  return { ok: false, error: 'ExtenderArgs has neither Nodes nor NodeNames' };
}

export const NO_CACHE_ERROR = 'lazarus extender has no node cache (started without --kubeconfig): '
  + 'configure this extender with nodeCacheCapable: false, or start it with --kubeconfig';

/** Per-request tallies the server turns into metrics and one log line. */
export interface Tally {
  restored: boolean;
  nodes: number;
  passed: number;
  /** Named nodes the cache did not know (NodeNames mode): passed with score 0. */
  unknown: number;
  byRule: Partial<Record<CompatRule, number>>;
}

function newTally(restored: boolean, nodes: number): Tally {
  return { restored, nodes, passed: nodes, unknown: 0, byRule: {} };
}

function nodeName(item: unknown): string | undefined {
  if (!isRecord(item) || !isRecord(item.metadata)) return undefined;
  const name = item.metadata.name;
  return typeof name === 'string' && name !== '' ? name : undefined;
}

function rulesOf(policy: EffectivePolicy): Rules {
  return { compatibility: policy.spec.compatibility, placement: policy.spec.placement };
}

/** One line a person can act on; the scheduler groups identical messages in the pod's events. */
function message(reasons: readonly string[]): string {
  return `lazarus: ${reasons.join('; ')}`;
}

export interface FilterOutcome {
  result: ExtenderFilterResult;
  tally: Tally;
  /** Set when a NodeNames request could not be judged for want of a node cache. */
  noCache?: true;
  /** Full-Nodes mode: indexes into the request's items of the nodes in `result.Nodes.items`. */
  kept?: number[];
}

/** A node may be called `__proto__`: keys of a plain object literal would swallow it. */
function failedMap(): Record<string, string> {
  return Object.create(null) as Record<string, string>;
}

function allIndexes(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

function filterResult(partial: Partial<ExtenderFilterResult>): ExtenderFilterResult {
  return { Nodes: null, NodeNames: null, FailedNodes: {}, FailedAndUnresolvableNodes: {}, Error: '', ...partial };
}

export function errorFilterResult(error: string): ExtenderFilterResult {
  return filterResult({ Error: error });
}

/**
 * DESIGN §4 hard filters. Failed nodes go to FailedAndUnresolvableNodes: no preemption makes
 * a node able to restore a checkpoint. Only input nodes are ever named.
 */
export function filter(request: Request, lookups: Lookups): FilterOutcome {
  const restore = podRestoreFacts({ metadata: request.pod.metadata ?? {} } as Node);
  if (request.mode === 'nodes') {
    const { list, items } = request;
    // Fast path: the input list object itself goes back, no per-node work.
    if (!restore) return { result: filterResult({ Nodes: list }), tally: newTally(false, items.length), kept: allIndexes(items.length) };
    // Wire nodes are new objects in every request: nothing to remember them by.
    const judge = judgeOf(restore, rulesOf(lookups.policyFor(request.pod)), undefined);
    const tally = newTally(true, items.length);
    const kept: unknown[] = [];
    const keptIndexes: number[] = [];
    const failed = failedMap();
    for (let i = 0; i < items.length; i++) {
      const item = items[i];
      const name = nodeName(item);
      // A nameless item cannot be reported as failed, and is not ours to drop.
      const verdict = name === undefined ? undefined : judge.verdict(nodeFacts(item as Node));
      if (verdict === undefined || name === undefined) { kept.push(item); keptIndexes.push(i); }
      else {
        failed[name] = verdict.message;
        count(tally, verdict);
      }
    }
    const nodes = kept.length === items.length ? list : { ...list, items: kept };
    return { result: filterResult({ Nodes: nodes, FailedAndUnresolvableNodes: failed }), tally, kept: keptIndexes };
  }

  const { names } = request;
  if (!restore) return { result: filterResult({ NodeNames: names }), tally: newTally(false, names.length) };
  // Without a usable cache every node would pass unjudged; an Error makes that visible, and an
  // `ignorable` extender is then skipped by the scheduler, which is the same outcome.
  const cacheProblem = lookups.nodeByName ? lookups.nodeCacheProblem?.() : NO_CACHE_ERROR;
  if (cacheProblem !== undefined || !lookups.nodeByName) {
    return { result: errorFilterResult(cacheProblem ?? NO_CACHE_ERROR), tally: newTally(true, names.length), noCache: true };
  }
  const judge = judgeOf(restore, rulesOf(lookups.policyFor(request.pod)), lookups.judges);
  const tally = newTally(true, names.length);
  const kept: string[] = [];
  const failed = failedMap();
  for (const name of names) {
    const facts = lookups.nodeByName(name);
    if (!facts) {
      tally.unknown++;
      kept.push(name);
      continue;
    }
    const verdict = judge.verdict(facts);
    if (verdict === undefined) kept.push(name);
    else {
      failed[name] = verdict.message;
      count(tally, verdict);
    }
  }
  return { result: filterResult({ NodeNames: kept, FailedAndUnresolvableNodes: failed }), tally };
}

/**
 * NodeNames requests whose names stay in the request body (names-wire.ts): `spans` holds each
 * name's [start, end) in `bytes`, two entries per name. The same verdicts and scores as filter()
 * and prioritize(), reported per name index to the encoder rather than collected in objects.
 */
export interface NameSpans { bytes: Uint8Array; spans: Int32Array; count: number }

export interface FilterSink { pass(i: number): void; fail(i: number, verdict: Verdict): void }

/**
 * filter() over name spans. Undefined when this path cannot answer (no name index, or no
 * usable node cache: filter() explains that); `restored: false` means every node passes and
 * the sink was not called.
 */
export function filterSpans(pod: WirePod, names: NameSpans, lookups: Lookups, sink: FilterSink): Tally | undefined {
  const restore = podRestoreFacts({ metadata: pod.metadata ?? {} } as Node);
  if (!restore) return newTally(false, names.count);
  const index = usableIndex(lookups);
  if (!index) return undefined;
  const judge = judgeOf(restore, rulesOf(lookups.policyFor(pod)), lookups.judges);
  const memo = index.memo(judge, spanMemo);
  const tally = newTally(true, names.count);
  const { bytes, spans } = names;
  for (let i = 0; i < names.count; i++) {
    const p = index.position(bytes, spans[2 * i] ?? 0, spans[2 * i + 1] ?? 0);
    if (p === -1) { tally.unknown++; sink.pass(i); continue; }
    let verdict = memo.verdicts[p];
    if (verdict === undefined) {
      const facts = index.factsAt(p);
      verdict = (facts && judge.verdict(facts)) ?? PASS;
      memo.verdicts[p] = verdict;
    }
    if (verdict === PASS) sink.pass(i);
    else {
      sink.fail(i, verdict);
      count(tally, verdict);
    }
  }
  return tally;
}

/** prioritize() over name spans: `score(i, s)` for every name, in order. Undefined as for filterSpans. */
export function prioritizeSpans(pod: WirePod, names: NameSpans, lookups: Lookups, score: (i: number, s: number) => void): Tally | undefined {
  const restore = podRestoreFacts({ metadata: pod.metadata ?? {} } as Node);
  const tally = newTally(restore !== undefined, names.count);
  if (!restore) {
    for (let i = 0; i < names.count; i++) score(i, 0);
    return tally;
  }
  const index = usableIndex(lookups);
  if (!index) return undefined;
  const judge = judgeOf(restore, rulesOf(lookups.policyFor(pod)), lookups.judges);
  const memo = index.memo(judge, spanMemo);
  const { bytes, spans } = names;
  for (let i = 0; i < names.count; i++) {
    const p = index.position(bytes, spans[2 * i] ?? 0, spans[2 * i + 1] ?? 0);
    if (p === -1) { tally.unknown++; score(i, 0); continue; }
    let s = memo.scores[p] ?? UNSCORED;
    if (s === UNSCORED) {
      const facts = index.factsAt(p);
      s = facts && judge.passes(facts) ? judge.score(facts) : 0;
      memo.scores[p] = s;
    }
    score(i, s);
  }
  return tally;
}

const UNSCORED = -1;

/** What one judge remembers about the nodes of one NameIndex, by position. */
interface SpanMemo { verdicts: (Verdict | typeof PASS | undefined)[]; scores: Float64Array }
function spanMemo(size: number): SpanMemo {
  return { verdicts: new Array<Verdict | typeof PASS | undefined>(size), scores: new Float64Array(size).fill(UNSCORED) };
}

function usableIndex(lookups: Lookups): NameIndex | undefined {
  if (!lookups.nameIndex || !lookups.nodeByName || lookups.nodeCacheProblem?.() !== undefined) return undefined;
  return lookups.nameIndex();
}

/** A remembered verdict that a node passes. */
const PASS = Symbol('pass');

/** Why a node cannot restore the pod: one message for the scheduler, the rules for metrics. */
export interface Verdict { message: string; rules: readonly CompatRule[] }

/** One origin and policy, compiled: a node's verdict (undefined: it passes) and score. */
export interface Judge {
  verdict(facts: NodeFacts): Verdict | undefined;
  /** verdict(facts) === undefined, without explaining a failure when nothing remembers it. */
  passes(facts: NodeFacts): boolean;
  /** DESIGN §4 score of a node that passes. */
  score(facts: NodeFacts): number;
}

/** The compiled check decides; the explaining compatibility() runs only for nodes that fail. */
function compileJudge(restore: PodRestoreFacts, rules: Rules): Judge {
  const check = compileCompatibility(restore.origin, rules);
  const explain = compileExplain(restore.origin, rules);
  return {
    verdict(facts) {
      if (check(facts)) return undefined;
      const c = explain(facts);
      return { message: message(c.reasons), rules: c.rules };
    },
    passes: check,
    score: compileScore(restore.origin, restore.baseImages),
  };
}

function count(tally: Tally, verdict: Verdict): void {
  tally.passed--;
  for (const rule of verdict.rules) tally.byRule[rule] = (tally.byRule[rule] ?? 0) + 1;
}

function judgeOf(restore: PodRestoreFacts, rules: Rules, cache: JudgeCache | undefined): Judge {
  return cache ? cache.judge(restore, rules) : compileJudge(restore, rules);
}

export interface JudgeCache {
  judge(restore: PodRestoreFacts, rules: Rules): Judge;
}

/**
 * Judges by (origin, base images, policy rules), each remembering its verdicts and scores per
 * NodeFacts object. The node cache replaces a node's facts object when the Node changes, so a
 * remembered answer is never stale; a new origin or policy is a new key. The replicas of one
 * workload restore from the same origin, and the scheduler asks filter and then prioritize
 * about the same nodes: after the first request, a node costs two WeakMap lookups.
 * At most `limit` judges are kept (least recently used goes first).
 */
export function createJudgeCache(limit = 256): JudgeCache {
  const judges = new Map<string, Judge>();
  return {
    judge(restore, rules) {
      const key = JSON.stringify([restore.origin, restore.baseImages, rules]);
      let judge = judges.get(key);
      if (judge) {
        judges.delete(key);
      } else {
        const fresh = compileJudge(restore, rules);
        const verdicts = new WeakMap<NodeFacts, Verdict | typeof PASS>();
        const scores = new WeakMap<NodeFacts, number>();
        const verdict = (facts: NodeFacts): Verdict | undefined => {
          let v = verdicts.get(facts);
          if (v === undefined) {
            v = fresh.verdict(facts) ?? PASS;
            verdicts.set(facts, v);
          }
          return v === PASS ? undefined : v;
        };
        judge = {
          verdict,
          passes: (facts) => verdict(facts) === undefined,
          score(facts) {
            let s = scores.get(facts);
            if (s === undefined) {
              s = fresh.score(facts);
              scores.set(facts, s);
            }
            return s;
          },
        };
        if (judges.size >= limit) {
          const oldest = judges.keys().next();
          if (!oldest.done) judges.delete(oldest.value);
        }
      }
      judges.set(key, judge);
      return judge;
    },
  };
}

export interface PrioritizeOutcome { result: HostPriorityList; tally: Tally }

/**
 * DESIGN §4 score, 0..10, for every candidate in input order. Nodes that fail the hard filters
 * (the filter verb was skipped or not configured) and unknown nodes score 0.
 */
export function prioritize(request: Request, lookups: Lookups): PrioritizeOutcome {
  const restore = podRestoreFacts({ metadata: request.pod.metadata ?? {} } as Node);
  const result: HostPriorityList = [];
  const count = request.mode === 'nodes' ? request.items.length : request.names.length;
  const tally = newTally(restore !== undefined, count);
  const judge = restore ? judgeOf(restore, rulesOf(lookups.policyFor(request.pod)), request.mode === 'names' ? lookups.judges : undefined) : undefined;
  const rate = (facts: NodeFacts | undefined): number => (facts && judge && judge.passes(facts) ? judge.score(facts) : 0);
  if (request.mode === 'nodes') {
    for (const item of request.items) {
      const name = nodeName(item);
      if (name !== undefined) result.push({ Host: name, Score: rate(restore ? nodeFacts(item as Node) : undefined) });
    }
  } else {
    for (const name of request.names) {
      const facts = restore ? lookups.nodeByName?.(name) : undefined;
      if (restore && !facts) tally.unknown++;
      result.push({ Host: name, Score: rate(facts) });
    }
  }
  return { result, tally };
}
