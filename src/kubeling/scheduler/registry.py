"""The in-tree plugin registry: plugin name → factory `new(args, handle)`.

Profiles refer to plugins only by these names, as KubeSchedulerConfiguration does, so
adding a plugin is one module plus one line here.
"""

from __future__ import annotations

from kubeling.scheduler.framework import PluginFactory
from kubeling.scheduler.plugins import (
    balancedallocation,
    defaultpreemption,
    interpodaffinity,
    nodeaffinity,
    nodename,
    nodeports,
    noderesourcesfit,
    nodeunschedulable,
    podtopologyspread,
    tainttoleration,
)

REGISTRY: dict[str, PluginFactory] = {
    m.NAME: m.new
    for m in (
        nodeunschedulable, nodename, tainttoleration, nodeaffinity, nodeports, noderesourcesfit,
        podtopologyspread, interpodaffinity, defaultpreemption, balancedallocation,
    )
}

# Kubernetes' default profile (multiPoint), in its order, with default score weights.
# ImageLocality, volume plugins, SchedulingGates and the binder have no counterpart here.
DEFAULT_PLUGINS: list[tuple[str, int]] = [
    ("NodeUnschedulable", 0),
    ("NodeName", 0),
    ("TaintToleration", 3),
    ("NodeAffinity", 2),
    ("NodePorts", 0),
    ("NodeResourcesFit", 1),
    ("PodTopologySpread", 2),
    ("InterPodAffinity", 2),
    ("DefaultPreemption", 0),
    ("NodeResourcesBalancedAllocation", 1),
]
