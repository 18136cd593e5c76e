"""InterPodAffinity: place pods relative to other pods (co-locate, or keep apart) per topology domain.

Filter enforces three rules, in upstream's order and with upstream's messages:
the pod's required affinity (some matching pod in the node's domain for every term —
or, for the first pod of a self-affine group, none anywhere), the pod's required
anti-affinity (no matching pod in the domain), and existing pods' required
anti-affinity against the incoming pod. PreFilter counts matches per (topologyKey,
value) once, so Filter is a few dict lookups per node; it returns Skip when the pod has
no required terms and no existing pod has required anti-affinity.

Score sums preferred terms in both directions (the pod's preferences about existing
pods, and existing pods' preferences and required affinity — weighted by
`hardPodAffinityWeight` — about the pod), then min-max normalizes.
"""

from __future__ import annotations

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
from kubeling.scheduler.snapshot import AffinityTerm

NAME = "InterPodAffinity"
REASON_AFFINITY = "node(s) didn't match pod affinity rules"
REASON_ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
REASON_EXISTING_ANTI_AFFINITY = "node(s) didn't satisfy existing pods anti-affinity rules"

Pair = tuple[str, str]
# Statuses are never mutated once returned, so one instance per reason serves every node.
_AFFINITY = Status.unresolvable(REASON_AFFINITY, plugin=NAME)
_ANTI_AFFINITY = Status.unschedulable(REASON_ANTI_AFFINITY, plugin=NAME)
_EXISTING_ANTI_AFFINITY = Status.unschedulable(REASON_EXISTING_ANTI_AFFINITY, plugin=NAME)


def _bump(counts: dict[Pair, int], labels: dict[str, str], key: str, by: int) -> None:
    v = labels.get(key)
    if v is not None:
        counts[(key, v)] = counts.get((key, v), 0) + by


def _matches_all(terms: list[AffinityTerm], pod: PodInfo, ns_labels: dict[str, dict[str, str]]) -> bool:
    return bool(terms) and all(t.matches(pod, ns_labels) for t in terms)


class InterPodAffinity:
    """Filters on required pod (anti-)affinity; scores preferred terms."""

    name = NAME

    def __init__(self, hard_pod_affinity_weight: int = 1, ignore_preferred_of_existing: bool = False) -> None:
        self.hard_weight = hard_pod_affinity_weight
        self.ignore_existing = ignore_preferred_of_existing

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status | None:
        if not pod.required_affinity and not pod.required_anti_affinity and not snapshot.required_anti_affinity_pods:
            return Status.skip()
        ns = snapshot.namespace_labels
        existing_anti: dict[Pair, int] = {}
        for ni in snapshot.nodes_with_required_anti_affinity_pods():
            for ep in ni.pods_with_required_anti_affinity:
                for t in ep.required_anti_affinity:
                    if t.matches(pod, ns):
                        _bump(existing_anti, ni.labels, t.topology_key, 1)
        affinity: dict[Pair, int] = {}
        anti: dict[Pair, int] = {}
        if pod.required_affinity or pod.required_anti_affinity:
            for ni in snapshot.node_list:
                if not ni.pods:
                    continue
                for ep in ni.pods:
                    if pod.required_affinity and _matches_all(pod.required_affinity, ep, ns):
                        for t in pod.required_affinity:
                            _bump(affinity, ni.labels, t.topology_key, 1)
                    for t in pod.required_anti_affinity:
                        if t.matches(ep, ns):
                            _bump(anti, ni.labels, t.topology_key, 1)
        # A pod whose affinity selects itself may be the first of its group: allowed anywhere
        # the topology keys exist, but only while no matching pod exists at all.
        self_match = _matches_all(pod.required_affinity, pod, ns)
        state[NAME] = (existing_anti, affinity, anti, self_match)
        return None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        existing_anti, affinity, anti, self_match = state[NAME]
        labels = node.labels
        if pod.required_affinity:
            pods_exist = True
            for t in pod.required_affinity:
                v = labels.get(t.topology_key)
                if v is None:
                    return _AFFINITY
                if affinity.get((t.topology_key, v), 0) <= 0:
                    pods_exist = False
            if not pods_exist and not (not affinity and self_match):
                return _AFFINITY
        if anti:
            for t in pod.required_anti_affinity:
                v = labels.get(t.topology_key)
                if v is not None and anti.get((t.topology_key, v), 0) > 0:
                    return _ANTI_AFFINITY
        if existing_anti:
            for kv in labels.items():
                if existing_anti.get(kv, 0) > 0:
                    return _EXISTING_ANTI_AFFINITY
        return None

    def filter_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]
                     ) -> tuple[list[NodeInfo], list[tuple[NodeInfo, Status]]]:
        return filter_each(self.filter, state, pod, nodes)

    # --- score ----------------------------------------------------------------------------

    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot, nodes: list[NodeInfo]) -> Status | None:
        has_constraints = bool(pod.preferred_affinity or pod.preferred_anti_affinity)
        if not nodes or (self.ignore_existing and not has_constraints):
            return Status.skip()
        ns = snapshot.namespace_labels
        scores: dict[Pair, int] = {}
        candidates = snapshot.node_list if has_constraints else snapshot.nodes_with_affinity_pods()
        for ni in candidates:
            labels = ni.labels
            if not labels:
                continue
            for ep in ni.pods if has_constraints else ni.pods_with_affinity:
                for t in pod.preferred_affinity:
                    if t.matches(ep, ns):
                        _bump(scores, labels, t.topology_key, t.weight)
                for t in pod.preferred_anti_affinity:
                    if t.matches(ep, ns):
                        _bump(scores, labels, t.topology_key, -t.weight)
                if self.ignore_existing:
                    continue
                if self.hard_weight > 0:
                    for t in ep.required_affinity:
                        if t.matches(pod, ns):
                            _bump(scores, labels, t.topology_key, self.hard_weight)
                for t in ep.preferred_affinity:
                    if t.matches(pod, ns):
                        _bump(scores, labels, t.topology_key, t.weight)
                for t in ep.preferred_anti_affinity:
                    if t.matches(pod, ns):
                        _bump(scores, labels, t.topology_key, -t.weight)
        if not scores:
            return Status.skip()
        state[NAME + "/score"] = scores
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        scores: dict[Pair, int] = state[NAME + "/score"]
        return sum(scores.get((k, v), 0) for k, v in node.labels.items())

    def normalize_score(self, state: CycleState, pod: PodInfo, scores: list[int], nodes: list[NodeInfo]) -> None:
        if not scores:
            return
        lo, hi = min(scores), max(scores)
        diff = hi - lo
        for i, s in enumerate(scores):
            scores[i] = int(MAX_NODE_SCORE * ((s - lo) / diff)) if diff > 0 else 0


def new(args: dict[str, Any], handle: Handle) -> InterPodAffinity:
    weight = (args or {}).get("hardPodAffinityWeight", 1)
    if not isinstance(weight, int) or not 0 <= weight <= 100:
        raise ValueError(f"InterPodAffinity: hardPodAffinityWeight: Invalid value: {weight!r}: not in valid range [0-100]")
    return InterPodAffinity(weight, bool((args or {}).get("ignorePreferredTermsOfExistingPods")))
