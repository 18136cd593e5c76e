"""Counting a Job's finished pods exactly once, even when pods are deleted.

Kubernetes tracks Job pods with a finalizer (`batch.kubernetes.io/job-tracking`):
a finished pod cannot disappear before the controller has counted it. Counting
is a two-step journal: the pod's uid is first written to
`status.uncountedTerminatedPods`, then its finalizer is removed, then the uid
moves into the `succeeded`/`failed` counters. A crash between steps loses
nothing and counts nothing twice. Indexed Jobs also record which completion
indexes succeeded, as the compressed `status.completedIndexes` ("0-2,5").
"""

from __future__ import annotations

from typing import Any

from kubeling.controllers import podstate

Obj = dict[str, Any]

TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"


def has_finalizer(pod: Obj) -> bool:
    return TRACKING_FINALIZER in ((pod.get("metadata") or {}).get("finalizers") or [])


def finished_as(pod: Obj) -> str | None:
    """"succeeded", "failed" or None: a pod deleted before it succeeded counts as failed (as in Kubernetes)."""
    phase = podstate.phase(pod)
    if phase == "Succeeded":
        return "succeeded"
    if phase == "Failed" or podstate.is_terminating(pod):
        return "failed"
    return None


def completion_index(pod: Obj) -> int | None:
    meta = pod.get("metadata") or {}
    value = (meta.get("annotations") or {}).get(COMPLETION_INDEX) or (meta.get("labels") or {}).get(COMPLETION_INDEX)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def parse_indexes(text: str | None) -> set[int]:
    """"0-2,5" → {0, 1, 2, 5}."""
    out: set[int] = set()
    for part in (text or "").split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        out.update(range(int(low), int(high or low) + 1))
    return out


def format_indexes(indexes: set[int]) -> str:
    """{0, 1, 2, 5} → "0-2,5"."""
    parts: list[str] = []
    ordered = sorted(indexes)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


def condition(job: Obj, type_: str) -> Obj | None:
    return podstate.pod_condition(job, type_)  # any object's status.conditions, not only a pod's


def is_finished(job: Obj) -> bool:
    return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
               for c in (job.get("status") or {}).get("conditions") or [])


def set_condition(status: Obj, type_: str, cond_status: str, reason: str, message: str, now: str) -> None:
    """Set a condition in `status` (a private copy), keeping lastTransitionTime when the status is unchanged."""
    conditions = status.setdefault("conditions", [])
    for cond in conditions:
        if cond.get("type") == type_:
            if cond.get("status") != cond_status:
                cond["lastTransitionTime"] = now
            cond.update(status=cond_status, reason=reason, message=message, lastProbeTime=now)
            return
    conditions.append({"type": type_, "status": cond_status, "reason": reason, "message": message,
                       "lastProbeTime": now, "lastTransitionTime": now})
