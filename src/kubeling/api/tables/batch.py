"""Tables for batch/v1 jobs and cronjobs, as printers.go prints them in Kubernetes 1.33.

Jobs gained a STATUS column (Complete, Failed, Terminating, Suspended, FailureTarget,
Running, decided in that order); COMPLETIONS reads "2/3", or "0/1 of 4" for a
work-queue job with parallelism; DURATION runs until completion.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kubeling.api.labels import format_label_selector_or_none
from kubeling.api.tables.descriptions import doc
from kubeling.api.tables.format import (
    NONE,
    Printer,
    age,
    age_column,
    aware,
    column,
    condition_true,
    containers_columns,
    get,
    human_duration,
    layout_containers,
    meta,
    name,
    name_column,
    parse_time,
    print_bool_ptr,
    since,
    template_containers,
)


def job_completions(job: dict[str, Any]) -> str:
    succeeded = int(get(job, "status", "succeeded", default=0) or 0)
    completions = get(job, "spec", "completions")
    if completions is not None:
        return f"{succeeded}/{completions}"
    parallelism = int(get(job, "spec", "parallelism", default=0) or 0)
    if parallelism > 1:
        return f"{succeeded}/1 of {parallelism}"
    return f"{succeeded}/1"


def job_duration(job: dict[str, Any], now: datetime) -> str:
    start = parse_time(get(job, "status", "startTime"))
    if start is None:
        return ""
    end = parse_time(get(job, "status", "completionTime")) or aware(now)
    return human_duration(end - start)


def job_status(job: dict[str, Any]) -> str:
    conditions = get(job, "status", "conditions", default=[]) or []
    if condition_true(conditions, "Complete"):
        return "Complete"
    if condition_true(conditions, "Failed"):
        return "Failed"
    if meta(job).get("deletionTimestamp") is not None:
        return "Terminating"
    if condition_true(conditions, "Suspended"):
        return "Suspended"
    if condition_true(conditions, "FailureTarget"):
        return "FailureTarget"
    return "Running"


def _job_row(obj: dict[str, Any], now: datetime) -> list[Any]:
    names, images = layout_containers(template_containers(obj, "spec"))
    return [
        name(obj), job_status(obj), job_completions(obj), job_duration(obj, now), age(obj, now),
        names, images, format_label_selector_or_none(get(obj, "spec", "selector")),
    ]


def _cronjob_row(obj: dict[str, Any], now: datetime) -> list[Any]:
    spec = obj.get("spec") or {}
    last = get(obj, "status", "lastScheduleTime")
    job_spec = get(spec, "jobTemplate", "spec", default={}) or {}
    names, images = layout_containers(template_containers(job_spec))
    return [
        name(obj), spec.get("schedule") or "", spec.get("timeZone") or NONE, print_bool_ptr(spec.get("suspend")),
        len(get(obj, "status", "active", default=[]) or []), since(last, now) if last else NONE, age(obj, now),
        names, images, format_label_selector_or_none(job_spec.get("selector")),
    ]


N, A, C = name_column, age_column, column
PRINTERS = {
    "jobs.batch": Printer((
        N(), C("Status", "string", "Status of the job."), C("Completions", "string", doc("JobStatus.succeeded")),
        C("Duration", "string", "Time required to complete the job."), A(), *containers_columns(),
        C("Selector", "string", doc("JobSpec.selector"), priority=1),
    ), _job_row),
    "cronjobs.batch": Printer((
        N(), C("Schedule", "string", doc("CronJobSpec.schedule")), C("Timezone", "string", doc("CronJobSpec.timeZone")),
        C("Suspend", "boolean", doc("CronJobSpec.suspend")), C("Active", "integer", doc("CronJobStatus.active")),
        C("Last Schedule", "string", doc("CronJobStatus.lastScheduleTime")), A(), *containers_columns(),
        C("Selector", "string", doc("JobSpec.selector"), priority=1),
    ), _cronjob_row),
}
