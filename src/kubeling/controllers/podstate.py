"""Pod state predicates shared by the workload controllers (`pkg/api/v1/pod` helpers).

StatefulSet, DaemonSet and Job all ask the same questions of a pod — is it
running and Ready, has it been Ready for minReadySeconds, has it finished,
is it going away — and must answer them exactly as Kubernetes does, or
`kubectl rollout status` and the controllers would disagree about progress.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

Obj = dict[str, Any]


def parse_time(value: str | None) -> dt.datetime | None:
    """An RFC 3339 timestamp (as the API server writes it) as an aware datetime."""
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def format_time(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod_condition(pod: Obj, type_: str) -> Obj | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return cond
    return None


def phase(pod: Obj) -> str:
    return (pod.get("status") or {}).get("phase") or "Pending"


def is_terminating(pod: Obj) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def is_finished(pod: Obj) -> bool:
    """Succeeded or Failed: the pod will never run again."""
    return phase(pod) in ("Succeeded", "Failed")


def is_ready(pod: Obj) -> bool:
    cond = pod_condition(pod, "Ready")
    return cond is not None and cond.get("status") == "True"


def is_running_and_ready(pod: Obj) -> bool:
    return phase(pod) == "Running" and is_ready(pod)


def is_available(pod: Obj, min_ready_seconds: int, now: dt.datetime) -> bool:
    """Ready for at least minReadySeconds (`podutil.IsPodAvailable`)."""
    if not is_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = parse_time((pod_condition(pod, "Ready") or {}).get("lastTransitionTime"))
    return since is not None and since + dt.timedelta(seconds=min_ready_seconds) <= now


def seconds_until_available(pod: Obj, min_ready_seconds: int, now: dt.datetime) -> float | None:
    """For a Ready pod not yet available: how long until it is (to requeue then)."""
    if not is_ready(pod) or min_ready_seconds <= 0:
        return None
    since = parse_time((pod_condition(pod, "Ready") or {}).get("lastTransitionTime"))
    if since is None:
        return None
    left = (since + dt.timedelta(seconds=min_ready_seconds) - now).total_seconds()
    return left if left > 0 else None
