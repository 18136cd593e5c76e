"""Job: run pods to completion (see `controller.py` and `tracking.py`)."""

from kubeling.controllers.job.controller import JobController

__all__ = ["JobController"]
