"""Garbage collection through owner references (kube-controller-manager's "garbage-collector").

`graph` holds the owner → dependents index; `controller` acts on it.
"""

from kubeling.controllers.garbagecollector.controller import FOREGROUND, ORPHAN, GarbageCollector
from kubeling.controllers.garbagecollector.graph import Graph, Node

__all__ = ["FOREGROUND", "ORPHAN", "GarbageCollector", "Graph", "Node"]
