"""Every controller, by the name kube-controller-manager uses for it."""

from __future__ import annotations

from kubeling.controllers.base import Controller
from kubeling.controllers.garbagecollector import GarbageCollector
from kubeling.controllers.namespace import NamespaceController
from kubeling.controllers.nodeipam import NodeIpamController
from kubeling.controllers.nodelifecycle import NodeLifecycleController
from kubeling.controllers.podgc import PodGCController
from kubeling.controllers.serviceaccount import ServiceAccountController
from kubeling.controllers.taintmanager import TaintEvictionController

CONTROLLERS: dict[str, type[Controller]] = {}

CONTROLLERS.update({
    "garbage-collector": GarbageCollector,
    "namespace": NamespaceController,
    "node-ipam": NodeIpamController,
    "node-lifecycle": NodeLifecycleController,
    "pod-garbage-collector": PodGCController,
    "serviceaccount": ServiceAccountController,
    "taint-eviction-controller": TaintEvictionController,
})
