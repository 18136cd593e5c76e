"""Every controller, by the name kube-controller-manager uses for it."""

from __future__ import annotations

from kubeling.controllers.base import Controller
from kubeling.controllers.cronjob import CronJobController
from kubeling.controllers.daemonset import DaemonSetController
from kubeling.controllers.deployment import DeploymentController
from kubeling.controllers.endpoints import EndpointsController
from kubeling.controllers.endpointslice import EndpointSliceController
from kubeling.controllers.garbagecollector import GarbageCollector
from kubeling.controllers.job import JobController
from kubeling.controllers.namespace import NamespaceController
from kubeling.controllers.nodeipam import NodeIpamController
from kubeling.controllers.nodelifecycle import NodeLifecycleController
from kubeling.controllers.podgc import PodGCController
from kubeling.controllers.replicaset import ReplicaSetController
from kubeling.controllers.serviceaccount import ServiceAccountController
from kubeling.controllers.statefulset import StatefulSetController
from kubeling.controllers.taintmanager import TaintEvictionController

CONTROLLERS: dict[str, type[Controller]] = {}
CONTROLLERS["deployment"] = DeploymentController
CONTROLLERS["replicaset"] = ReplicaSetController
CONTROLLERS["garbage-collector"] = GarbageCollector
CONTROLLERS["namespace"] = NamespaceController
CONTROLLERS["node-ipam"] = NodeIpamController
CONTROLLERS["node-lifecycle"] = NodeLifecycleController
CONTROLLERS["pod-garbage-collector"] = PodGCController
CONTROLLERS["serviceaccount"] = ServiceAccountController
CONTROLLERS["taint-eviction-controller"] = TaintEvictionController
CONTROLLERS["statefulset"] = StatefulSetController
CONTROLLERS["daemonset"] = DaemonSetController
CONTROLLERS["job"] = JobController
CONTROLLERS["cronjob"] = CronJobController
CONTROLLERS["endpoint"] = EndpointsController
CONTROLLERS["endpointslice"] = EndpointSliceController
