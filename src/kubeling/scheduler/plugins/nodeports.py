"""NodePorts: two pods cannot bind the same hostPort/protocol on one node.

A conflict exists when protocol and port are equal and either side listens on all
addresses (0.0.0.0) or both name the same IP — `HostPortInfo.CheckConflict` upstream.
"""

from __future__ import annotations

from typing import Any

from kubeling.scheduler.framework import CycleState, Handle, NodeInfo, PodInfo, Snapshot, Status

NAME = "NodePorts"
REASON = "node(s) didn't have free ports for the requested pod ports"
_ANY = ("0.0.0.0", "", "::")


def conflicts(wanted: list[tuple[str, str, int]], used: list[tuple[str, str, int]]) -> bool:
    """True if any wanted (ip, protocol, port) collides with a used one."""
    for ip, proto, port in wanted:
        for uip, uproto, uport in used:
            if port == uport and proto == uproto and (ip in _ANY or uip in _ANY or ip == uip):
                return True
    return False


class NodePorts:
    """Rejects nodes where a requested host port is taken."""

    name = NAME
    node_local_filter = True  # Filter reads only the pod and this node (see eqcache)

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status | None:
        return None if pod.host_ports else Status.skip()

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        if node.used_ports and conflicts(pod.host_ports, node.used_ports):
            return Status.unschedulable(REASON, plugin=NAME)
        return None


def new(args: dict[str, Any], handle: Handle) -> NodePorts:
    return NodePorts()
