"""NodeResourcesBalancedAllocation: prefer nodes whose CPU and memory fill up evenly.

Score is `(1 - std-dev of requested/allocatable fractions) * 100`, computed with the
real (not non-zero-defaulted) requests. Best-effort pods return Skip at PreScore, as in
Kubernetes 1.32+, because counting nothing would send them all to the same node.
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
)
from kubeling.scheduler.plugins.noderesourcesfit import (
    DEFAULT_RESOURCES,
    allocatable_and_requested,
    pod_score_requests,
)
from kubeling.scheduler.resources import CPU, MEMORY

NAME = "NodeResourcesBalancedAllocation"


def balanced_score(fractions: list[float]) -> int:
    """`balancedResourceScorer` on already-capped fractions."""
    if len(fractions) == 2:
        std = abs(fractions[0] - fractions[1]) / 2
    elif len(fractions) > 2:
        mean = sum(fractions) / len(fractions)
        std = math.sqrt(sum((f - mean) ** 2 for f in fractions) / len(fractions))
    else:
        std = 0.0
    return int((1 - std) * MAX_NODE_SCORE)


class BalancedAllocation:
    """Scores how evenly the pod would leave the node's resources used."""

    name = NAME
    node_local_score = True  # Score reads only the pod and this node, no normalization

    def __init__(self, resources: list[tuple[str, int]]) -> None:
        self.resources = resources
        self._fast = [n for n, _ in resources] == [CPU, MEMORY]

    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot, nodes: list[NodeInfo]) -> Status | None:
        reqs = pod_score_requests(pod, self.resources, use_requested=True)
        if not any(reqs):
            return Status.skip()
        state[NAME] = reqs
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        fractions = []
        for (name, _), pr in zip(self.resources, state[NAME], strict=True):
            alloc, req = allocatable_and_requested(node, name, pr, use_requested=True)
            if alloc:
                fractions.append(min(req / alloc, 1.0))
        return balanced_score(fractions)

    def score_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        if not self._fast:
            return [self.score(state, pod, n) for n in nodes]
        pc, pm = state[NAME]
        out = []
        append = out.append
        for n in nodes:
            ac = n.alloc_cpu
            am = n.alloc_mem
            if not (ac and am):
                append(self.score(state, pod, n))
                continue
            # Two resources: std-dev is |f_cpu - f_mem| / 2, fractions capped at 1.
            fc = (n.req_cpu + pc) / ac
            fm = (n.req_mem + pm) / am
            if fc > 1.0:
                fc = 1.0
            if fm > 1.0:
                fm = 1.0
            std = (fc - fm if fc > fm else fm - fc) / 2
            append(int((1 - std) * MAX_NODE_SCORE))
        return out


def new(args: dict[str, Any], handle: Handle) -> BalancedAllocation:
    resources = [(r["name"], int(r.get("weight", 1))) for r in (args or {}).get("resources") or DEFAULT_RESOURCES]
    return BalancedAllocation(resources)
