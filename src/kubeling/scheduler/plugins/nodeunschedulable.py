"""NodeUnschedulable: keep pods off cordoned nodes (`spec.unschedulable`).

A pod that tolerates the `node.kubernetes.io/unschedulable:NoSchedule` taint may still
land there (DaemonSet pods do), exactly as upstream. PreFilter returns Skip when no node
in the snapshot is cordoned, so the common case costs nothing per node.
"""

from __future__ import annotations

from typing import Any

from kubeling.scheduler.framework import CycleState, Handle, NodeInfo, PodInfo, Snapshot, Status
from kubeling.scheduler.helpers import tolerated

NAME = "NodeUnschedulable"
REASON = "node(s) were unschedulable"
_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}


class NodeUnschedulable:
    """Rejects cordoned nodes unless the pod tolerates the unschedulable taint."""

    name = NAME
    node_local_filter = True  # Filter reads only the pod and this node (see eqcache)

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status | None:
        if not snapshot.has_unschedulable_nodes or tolerated(pod.tolerations, _TAINT):
            return Status.skip()
        return None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        if node.unschedulable and not tolerated(pod.tolerations, _TAINT):
            return Status.unresolvable(REASON, plugin=NAME)
        return None


def new(args: dict[str, Any], handle: Handle) -> NodeUnschedulable:
    return NodeUnschedulable()
