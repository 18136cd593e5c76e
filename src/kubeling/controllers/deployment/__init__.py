"""The Deployment controller: `controller.py` (handlers, syncDeployment), `rollout.py` (strategies),
`sync.py` (ReplicaSets, scaling, history, status) and `util.py` (pure helpers)."""

from kubeling.controllers.deployment.controller import DeploymentController

__all__ = ["DeploymentController"]
