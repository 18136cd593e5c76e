"""StatefulSet: ordered, stably named pods with their own storage (see `controller.py`)."""

from kubeling.controllers.statefulset.controller import StatefulSetController

__all__ = ["StatefulSetController"]
