"""PodTopologySpread: keep matching pods evenly spread over topology domains (zones, hosts).

Hard constraints (`whenUnsatisfiable: DoNotSchedule`) filter: placing the pod in domain
d must keep `count(d) + selfMatch - min(count) <= maxSkew`, where the minimum is taken
over eligible domains and is 0 while fewer than `minDomains` domains exist. Eligible
nodes carry every constraint's topology key and, by default, pass the pod's node
affinity (`nodeAffinityPolicy: Honor`) while taints are ignored (`nodeTaintsPolicy:
Ignore`). Soft constraints (`ScheduleAnyway`) score: fewer matching pods in the node's
domain, higher score, weighted by log(#domains + 2) as upstream.

Not reproduced: the cluster-level default constraints that upstream derives from the
Services/ReplicaSets selecting a pod (they need listers the pure core doesn't have).
"""

from __future__ import annotations

import math
from typing import Any

from kubeling.scheduler.framework import (
    MAX_NODE_SCORE,
    CycleState,
    Handle,
    NodeInfo,
    PodInfo,
    Snapshot,
    Status,
    filter_each,
)
from kubeling.scheduler.helpers import LabelMatcher, compile_label_selector, required_node_matcher
from kubeling.scheduler.plugins.tainttoleration import untolerated_hard_taint

NAME = "PodTopologySpread"
REASON = "node(s) didn't match pod topology spread constraints"
REASON_MISSING_LABEL = REASON + " (missing required label)"
HOSTNAME = "kubernetes.io/hostname"
# Statuses are never mutated once returned, so one instance per reason serves every node.
_SKEWED = Status.unschedulable(REASON, plugin=NAME)
_MISSING_LABEL = Status.unresolvable(REASON_MISSING_LABEL, plugin=NAME)


class Constraint:
    """One parsed TopologySpreadConstraint."""

    __slots__ = ("max_skew", "topology_key", "selector", "min_domains", "honor_affinity", "honor_taints")

    def __init__(self, c: dict[str, Any], pod: PodInfo) -> None:
        self.max_skew = int(c.get("maxSkew") or 1)
        self.topology_key: str = c.get("topologyKey") or ""
        selector = c.get("labelSelector")
        keys = [k for k in c.get("matchLabelKeys") or [] if k in pod.labels]
        if keys and selector is not None:
            # matchLabelKeys: AND `key In (pod's value)` into the selector.
            exprs = list(selector.get("matchExpressions") or [])
            exprs += [{"key": k, "operator": "In", "values": [pod.labels[k]]} for k in keys]
            selector = {**selector, "matchExpressions": exprs}
        self.selector: LabelMatcher = compile_label_selector(selector)
        self.min_domains = int(c.get("minDomains") or 1)
        self.honor_affinity = (c.get("nodeAffinityPolicy") or "Honor") == "Honor"
        self.honor_taints = (c.get("nodeTaintsPolicy") or "Ignore") == "Honor"


def _constraints(pod: PodInfo, when: str) -> list[Constraint]:
    specs = (pod.pod.get("spec") or {}).get("topologySpreadConstraints") or []
    return [Constraint(c, pod) for c in specs if c.get("whenUnsatisfiable", "DoNotSchedule") == when]


def _count(node: NodeInfo, c: Constraint, namespace: str) -> int:
    n = 0
    for p in node.pods:
        if p.namespace == namespace and c.selector(p.labels) and not (p.pod.get("metadata") or {}).get("deletionTimestamp"):
            n += 1
    return n


def _included(c: Constraint, pod: PodInfo, node: NodeInfo, affinity: Any) -> bool:
    """`matchNodeInclusionPolicies`."""
    if c.honor_affinity and affinity is not None and not affinity(node.node):
        return False
    return not (c.honor_taints and untolerated_hard_taint(node.taints, pod.tolerations) is not None)


class PodTopologySpread:
    """Filters on DoNotSchedule constraints; scores ScheduleAnyway constraints."""

    name = NAME

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status | None:
        constraints = _constraints(pod, "DoNotSchedule")
        if not constraints:
            return Status.skip()
        affinity = required_node_matcher(pod.pod)
        counts: list[dict[str, int]] = [{} for _ in constraints]
        keys = [c.topology_key for c in constraints]
        ns = pod.namespace
        policies = any((c.honor_affinity and affinity is not None) or c.honor_taints for c in constraints)
        pairs = list(zip(constraints, counts, strict=True))
        for ni in snapshot.node_list:
            labels = ni.labels
            for k in keys:
                if k not in labels:
                    break
            else:
                for c, cnt in pairs:
                    if policies and not _included(c, pod, ni, affinity):
                        continue
                    v = labels[c.topology_key]
                    cnt[v] = cnt.get(v, 0) + (_count(ni, c, ns) if ni.pods else 0)
        mins = [
            0 if len(cnt) < c.min_domains else min(cnt.values(), default=0)
            for c, cnt in zip(constraints, counts, strict=True)
        ]
        self_match = [1 if c.selector(pod.labels) else 0 for c in constraints]
        # Per constraint: the skew check's outcome for each known domain, and for unknown ones.
        verdicts = [
            ({v: n + self_match[i] - mins[i] <= c.max_skew for v, n in cnt.items()},
             self_match[i] - mins[i] <= c.max_skew)
            for i, (c, cnt) in enumerate(zip(constraints, counts, strict=True))
        ]
        state[NAME] = (constraints, verdicts)
        return None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        constraints, verdicts = state[NAME]
        labels = node.labels
        for c, (by_value, unknown_ok) in zip(constraints, verdicts, strict=True):
            v = labels.get(c.topology_key)
            if v is None:
                return _MISSING_LABEL
            if not by_value.get(v, unknown_ok):
                return _SKEWED
        return None

    def filter_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]
                     ) -> tuple[list[NodeInfo], list[tuple[NodeInfo, Status]]]:
        ok: list[NodeInfo] = []
        bad: list[tuple[NodeInfo, Status]] = []
        constraints, verdicts = state[NAME]
        if len(constraints) == 1:  # the common case, inlined
            key = constraints[0].topology_key
            by_value, unknown_ok = verdicts[0]
            for n in nodes:
                v = n.labels.get(key)
                if v is None:
                    bad.append((n, _MISSING_LABEL))
                elif by_value.get(v, unknown_ok):
                    ok.append(n)
                else:
                    bad.append((n, _SKEWED))
            return ok, bad
        return filter_each(self.filter, state, pod, nodes)

    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot, nodes: list[NodeInfo]) -> Status | None:
        constraints = _constraints(pod, "ScheduleAnyway")
        if not constraints:
            return Status.skip()
        keys = [c.topology_key for c in constraints]
        ignored = {n.name for n in nodes if not all(k in n.labels for k in keys)}
        pair_counts: dict[tuple[str, str], int] = {}
        sizes = [0] * len(constraints)
        for n in nodes:
            if n.name in ignored:
                continue
            for i, c in enumerate(constraints):
                if c.topology_key != HOSTNAME:
                    pair = (c.topology_key, n.labels[c.topology_key])
                    if pair not in pair_counts:
                        pair_counts[pair] = 0
                        sizes[i] += 1
        affinity = required_node_matcher(pod.pod)
        for ni in snapshot.node_list:
            for c in constraints:
                v = ni.labels.get(c.topology_key)
                if v is None or (c.topology_key, v) not in pair_counts or not _included(c, pod, ni, affinity):
                    continue
                pair_counts[(c.topology_key, v)] += _count(ni, c, pod.namespace)
        weights = [
            math.log((len(nodes) - len(ignored) if c.topology_key == HOSTNAME else sizes[i]) + 2)
            for i, c in enumerate(constraints)
        ]
        state[NAME + "/score"] = (constraints, pair_counts, weights, ignored)
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        constraints, pair_counts, weights, ignored = state[NAME + "/score"]
        if node.name in ignored:
            return 0
        total = 0.0
        for c, w in zip(constraints, weights, strict=True):
            v = node.labels.get(c.topology_key)
            if v is None:
                continue
            cnt = _count(node, c, pod.namespace) if c.topology_key == HOSTNAME else pair_counts.get((c.topology_key, v), 0)
            total += cnt * w + (c.max_skew - 1)
        return int(total + 0.5)  # Go's math.Round; total is never negative

    def normalize_score(self, state: CycleState, pod: PodInfo, scores: list[int], nodes: list[NodeInfo]) -> None:
        _, _, _, ignored = state[NAME + "/score"]
        valid = [s for s, n in zip(scores, nodes, strict=True) if n.name not in ignored]
        if not valid:
            for i in range(len(scores)):
                scores[i] = 0
            return
        lo, hi = min(valid), max(valid)
        for i, s in enumerate(scores):
            if nodes[i].name in ignored:
                scores[i] = 0
            elif hi == 0:
                scores[i] = MAX_NODE_SCORE
            else:
                scores[i] = MAX_NODE_SCORE * (hi + lo - s) // hi


def new(args: dict[str, Any], handle: Handle) -> PodTopologySpread:
    return PodTopologySpread()
