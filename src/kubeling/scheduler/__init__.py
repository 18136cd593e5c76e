"""The scheduler's pure core: kube-scheduler's framework and default plugins over a snapshot.

Nothing here does I/O. `Snapshot.build(nodes, pods)` indexes wire dicts, `schedule_one`
decides for one pod and explains why, `Snapshot.assume` accounts the decision, and the
API wiring (informers, queue, binding) lives in `scheduler.component`.
"""

from kubeling.scheduler.core import ScheduleResult, schedule_one
from kubeling.scheduler.explain import format_explanation
from kubeling.scheduler.framework import Code, CycleState, Status
from kubeling.scheduler.profile import DEFAULT_SCHEDULER_NAME, Profile, load_profiles, parse_config
from kubeling.scheduler.snapshot import NodeInfo, PodInfo, Snapshot

__all__ = [
    "DEFAULT_SCHEDULER_NAME", "Code", "CycleState", "NodeInfo", "PodInfo", "Profile", "ScheduleResult", "Snapshot",
    "Status", "format_explanation", "load_profiles", "parse_config", "schedule_one",
]
