"""TaintToleration: NoSchedule/NoExecute taints repel pods that don't tolerate them.

Filter reports the *first* untolerated hard taint in the node's order, formatted as
Kubernetes prints it (`node(s) had untolerated taint {key: value}`), so FitError
messages match what users search for. Scoring counts intolerable PreferNoSchedule taints
and normalizes in reverse: fewer such taints, higher score.

PreFilter is our addition (upstream has none for this plugin): when no node in the
snapshot carries a hard taint, the Filter is skipped altogether.
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
from kubeling.scheduler.helpers import NO_EXECUTE, NO_SCHEDULE, PREFER_NO_SCHEDULE, tolerated

NAME = "TaintToleration"


def untolerated_hard_taint(taints: list[dict[str, Any]], tolerations: list[dict[str, Any]]) -> dict[str, Any] | None:
    """`FindMatchingUntoleratedTaint` with the DoNotSchedule filter (NoSchedule and NoExecute)."""
    for t in taints:
        if t.get("effect") in (NO_SCHEDULE, NO_EXECUTE) and not tolerated(tolerations, t):
            return t
    return None


class TaintToleration:
    """Filters on hard taints; scores on PreferNoSchedule taints."""

    name = NAME
    node_local_filter = True  # Filter reads only the pod and this node (see eqcache)

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status | None:
        return None if snapshot.has_hard_taints else Status.skip()

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        if not node.taints:
            return None
        t = untolerated_hard_taint(node.taints, pod.tolerations)
        if t is None:
            return None
        return Status.unresolvable(f"node(s) had untolerated taint {{{t.get('key', '')}: {t.get('value', '')}}}", plugin=NAME)

    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot, nodes: list[NodeInfo]) -> Status | None:
        if not snapshot.has_prefer_taints:
            # Every node would score 0 raw and 100 normalized: a constant adds nothing to the
            # ranking, so skip the per-node work (explain lists the plugin as skipped).
            return Status.skip()
        # Only tolerations that can apply to PreferNoSchedule taints matter (getAllTolerationPreferNoSchedule).
        state[NAME] = [t for t in pod.tolerations if (t.get("effect") or "") in ("", PREFER_NO_SCHEDULE)]
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        tolerations = state.get(NAME)
        if tolerations is None or not node.taints:
            return 0
        return sum(1 for t in node.taints if t.get("effect") == PREFER_NO_SCHEDULE and not tolerated(tolerations, t))

    def score_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        if state.get(NAME) is None:
            return [0] * len(nodes)
        return [self.score(state, pod, n) if n.taints else 0 for n in nodes]

    def normalize_score(self, state: CycleState, pod: PodInfo, scores: list[int], nodes: list[NodeInfo]) -> None:
        default_normalize_score(scores, reverse=True)


def new(args: dict[str, Any], handle: Handle) -> TaintToleration:
    return TaintToleration()
