"""DaemonSet: one pod per eligible node (see `controller.py` and `placement.py`)."""

from kubeling.controllers.daemonset.controller import DaemonSetController

__all__ = ["DaemonSetController"]
