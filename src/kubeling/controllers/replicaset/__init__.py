"""The ReplicaSet controller and the pod helpers it shares with other workload controllers."""

from kubeling.controllers.replicaset.controller import ReplicaSetController

__all__ = ["ReplicaSetController"]
