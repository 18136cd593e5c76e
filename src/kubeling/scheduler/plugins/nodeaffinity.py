"""NodeAffinity: `nodeSelector`, required node affinity (filter) and preferred node affinity (score).

The required part is the AND of nodeSelector and the ORed nodeSelectorTerms; both are
compiled once per pod in PreFilter. Preferred terms add their weight when they match;
scores are normalized by the maximum. `args.addedAffinity` (NodeAffinityArgs) applies to
every pod of the profile, as upstream.
"""

from __future__ import annotations

from typing import Any

from kubeling.scheduler.framework import (
    CycleState,
    Handle,
    NodeInfo,
    PodInfo,
    Snapshot,
    Status,
    default_normalize_score,
)
from kubeling.scheduler.helpers import (
    NodeMatcher,
    compile_node_selector_term,
    compile_node_selector_terms,
    required_node_matcher,
)

NAME = "NodeAffinity"
REASON = "node(s) didn't match Pod's node affinity/selector"


def _preferred(affinity: dict[str, Any]) -> list[tuple[int, NodeMatcher]]:
    out = []
    for p in affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or []:
        w = int(p.get("weight") or 0)
        if w:
            out.append((w, compile_node_selector_term(p.get("preference") or {})))
    return out


class NodeAffinity:
    """Filters on nodeSelector + required node affinity; scores preferred terms by weight."""

    name = NAME
    node_local_filter = True  # Filter reads only the pod and this node (see eqcache)

    def __init__(self, added_affinity: dict[str, Any] | None = None) -> None:
        added = added_affinity or {}
        req = added.get("requiredDuringSchedulingIgnoredDuringExecution")
        self._added_required = compile_node_selector_terms(req.get("nodeSelectorTerms") or []) if req else None
        self._added_preferred = _preferred(added)

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status | None:
        matcher = required_node_matcher(pod.pod)
        if matcher is None and self._added_required is None:
            return Status.skip()
        state[NAME] = matcher
        return None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        matcher = state.get(NAME)
        if self._added_required is not None and not self._added_required(node.node):
            return Status.unresolvable(REASON, plugin=NAME)
        if matcher is not None and not matcher(node.node):
            return Status.unresolvable(REASON, plugin=NAME)
        return None

    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot, nodes: list[NodeInfo]) -> Status | None:
        node_affinity = ((pod.pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}
        preferred = _preferred(node_affinity) + self._added_preferred
        if not preferred:
            return Status.skip()
        state[NAME + "/preferred"] = preferred
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        return sum(w for w, m in state[NAME + "/preferred"] if m(node.node))

    def normalize_score(self, state: CycleState, pod: PodInfo, scores: list[int], nodes: list[NodeInfo]) -> None:
        default_normalize_score(scores, reverse=False)


def new(args: dict[str, Any], handle: Handle) -> NodeAffinity:
    return NodeAffinity(args.get("addedAffinity"))
