"""NodeName: a pod that names its node (`spec.nodeName` set before scheduling) fits only there.

Such pods normally bypass the scheduler; the plugin matters for `explain` and for
preemption dry-runs, and it is cheap: PreFilter skips it when no name is requested.
"""

from __future__ import annotations

from typing import Any

from kubeling.scheduler.framework import CycleState, Handle, NodeInfo, PodInfo, Snapshot, Status

NAME = "NodeName"
REASON = "node(s) didn't match the requested node name"


class NodeName:
    """Rejects every node but the one named in the pod spec."""

    name = NAME
    node_local_filter = True  # Filter reads only the pod and this node (see eqcache)

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status | None:
        return None if pod.node_name else Status.skip()

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        if pod.node_name and pod.node_name != node.name:
            return Status.unresolvable(REASON, plugin=NAME)
        return None


def new(args: dict[str, Any], handle: Handle) -> NodeName:
    return NodeName()
