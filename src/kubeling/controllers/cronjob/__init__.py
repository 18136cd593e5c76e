"""CronJob: Jobs on a cron schedule (see `controller.py` and `schedule.py`)."""

from kubeling.controllers.cronjob.controller import CronJobController

__all__ = ["CronJobController"]
