"""Pure helpers of the Deployment controller (`pkg/controller/deployment/util/deployment_util.go`).

Everything here is a function of objects, no I/O: the pod-template-hash,
revision and replica annotations, surge/unavailability fenceposts, the
counting helpers over ReplicaSets, and the condition bookkeeping whose exact
reasons and timestamps `kubectl rollout status` and `kubectl describe` read.
"""

from __future__ import annotations

import copy
import math
from datetime import datetime, timedelta
from typing import Any

import orjson

from kubeling.controllers.history import fnv32a, safe_encode
from kubeling.controllers.podstate import format_time, parse_time

Obj = dict[str, Any]

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
CHANGE_CAUSE = "kubernetes.io/change-cause"
# Deployment annotations never copied to its ReplicaSets (`skipCopyAnnotation`).
_SKIP_COPY = {"kubectl.kubernetes.io/last-applied-configuration", REVISION, REVISION_HISTORY, DESIRED_REPLICAS,
              MAX_REPLICAS, "deprecated.deployment.rollback.to"}
MAX_REV_HISTORY_CHARS = 2000

# Condition reasons (deployment_util.go).
NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"
PAUSED = "DeploymentPaused"
RESUMED = "DeploymentResumed"
FAILED_RS_CREATE = "ReplicaSetCreateError"
MIN_AVAILABLE = "MinimumReplicasAvailable"
MIN_UNAVAILABLE = "MinimumReplicasUnavailable"

MAX_INT32 = 2**31 - 1


# ---- hashing ---------------------------------------------------------------------------------

def compute_hash(template: Obj, collision_count: int | None) -> str:
    """`ComputeHash`: FNV-32a of the template (canonical JSON here, Go's spew there) + collisionCount.

    The value differs from Go's for the same template (the serialisation
    differs) but has the same properties: stable, and changed by any template
    change or a bumped collisionCount.
    """
    data = orjson.dumps(template, option=orjson.OPT_SORT_KEYS)
    if collision_count is not None:
        data += (collision_count & 0xFFFFFFFF).to_bytes(4, "little") + b"\0\0\0\0"
    return safe_encode(str(fnv32a(data)))


def template_without_hash(template: Obj) -> Obj:
    out = copy.deepcopy(template or {})
    labels = (out.get("metadata") or {}).get("labels")
    if labels is not None:
        labels.pop(HASH_LABEL, None)
        if not labels:
            out["metadata"].pop("labels")
    if "metadata" in out and not out["metadata"]:
        out.pop("metadata")
    return out


def equal_ignore_hash(a: Obj, b: Obj) -> bool:
    """`EqualIgnoreHash`: templates equal apart from the pod-template-hash label."""
    return template_without_hash(a) == template_without_hash(b)


# ---- accessors -------------------------------------------------------------------------------

def replicas(obj: Obj) -> int:
    return int((obj.get("spec") or {}).get("replicas", 1))


def status_of(obj: Obj, field: str) -> int:
    return int((obj.get("status") or {}).get(field) or 0)


def annotations(obj: Obj) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("annotations") or {}


def revision(rs: Obj) -> int:
    try:
        return int(annotations(rs).get(REVISION, "0"))
    except ValueError:
        return 0


def int_annotation(rs: Obj, key: str) -> int | None:
    try:
        return int(annotations(rs)[key])
    except (KeyError, ValueError):
        return None


def created(obj: Obj) -> datetime | None:
    return parse_time((obj.get("metadata") or {}).get("creationTimestamp"))


def by_creation(rs_list: list[Obj], *, newest_first: bool = False) -> list[Obj]:
    """`ReplicaSetsByCreationTimestamp`: oldest first, ties broken by name."""
    def key(rs: Obj) -> tuple[str, str]:
        return ((rs.get("metadata") or {}).get("creationTimestamp") or "", rs["metadata"]["name"])
    return sorted(rs_list, key=key, reverse=newest_first)


def active(rs_list: list[Obj | None]) -> list[Obj]:
    """`FilterActiveReplicaSets`: those with spec.replicas > 0."""
    return [rs for rs in rs_list if rs is not None and replicas(rs) > 0]


def total_spec(rs_list: list[Obj | None]) -> int:
    return sum(replicas(rs) for rs in rs_list if rs is not None)


def total_status(rs_list: list[Obj | None], field: str) -> int:
    return sum(status_of(rs, field) for rs in rs_list if rs is not None)


# ---- strategy arithmetic ---------------------------------------------------------------------

def scaled_value(value: int | str | None, total: int, *, round_up: bool) -> int:
    """`GetScaledValueFromIntOrPercent`."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    text = str(value)
    if not text.endswith("%"):
        return int(text)
    pct = int(text[:-1])
    raw = pct * total / 100
    return math.ceil(raw) if round_up else math.floor(raw)


def is_rolling(d: Obj) -> bool:
    return ((d.get("spec") or {}).get("strategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"


def fenceposts(d: Obj) -> tuple[int, int]:
    """`ResolveFenceposts`: (maxSurge rounded up, maxUnavailable rounded down); never both zero."""
    rolling = ((d.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}
    desired = replicas(d)
    surge = scaled_value(rolling.get("maxSurge", "25%"), desired, round_up=True)
    unavailable = scaled_value(rolling.get("maxUnavailable", "25%"), desired, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_surge(d: Obj) -> int:
    return fenceposts(d)[0] if is_rolling(d) else 0


def max_unavailable(d: Obj) -> int:
    if not is_rolling(d) or replicas(d) == 0:
        return 0
    return min(fenceposts(d)[1], replicas(d))


def has_progress_deadline(d: Obj) -> bool:
    value = (d.get("spec") or {}).get("progressDeadlineSeconds")
    return value is not None and int(value) != MAX_INT32


def new_rs_new_replicas(d: Obj, all_rs: list[Obj | None], new_rs: Obj) -> int:
    """`NewRSNewReplicas`: how big the new RS may be now.

    Kubernetes counts only spec.replicas; we count the larger of spec and
    status per RS, so pods an old RS has been told to delete but has not yet
    deleted still count against maxSurge (the surge bound then holds for pods
    that exist, not just for desired counts).
    """
    if not is_rolling(d):
        return replicas(d)
    current = sum(max(replicas(rs), status_of(rs, "replicas")) for rs in all_rs if rs is not None)
    max_total = replicas(d) + max_surge(d)
    if current >= max_total:
        return replicas(new_rs)
    return replicas(new_rs) + min(max_total - current, replicas(d) - replicas(new_rs))


def is_saturated(d: Obj, rs: Obj | None) -> bool:
    if rs is None:
        return False
    return (int_annotation(rs, DESIRED_REPLICAS) == replicas(d) and replicas(rs) == replicas(d)
            and status_of(rs, "availableReplicas") == replicas(d))


# ---- annotations -----------------------------------------------------------------------------

def set_replicas_annotations(rs: Obj, desired: int, max_replicas: int) -> bool:
    ann = rs["metadata"].setdefault("annotations", {})
    changed = False
    for key, value in ((DESIRED_REPLICAS, str(desired)), (MAX_REPLICAS, str(max_replicas))):
        if ann.get(key) != value:
            ann[key] = value
            changed = True
    return changed


def replicas_annotations_need_update(rs: Obj, desired: int, max_replicas: int) -> bool:
    ann = annotations(rs)
    return ann.get(DESIRED_REPLICAS) != str(desired) or ann.get(MAX_REPLICAS) != str(max_replicas)


def set_new_rs_annotations(d: Obj, rs: Obj, new_revision: int, *, exists: bool) -> bool:
    """`SetNewReplicaSetAnnotations`: copy the deployment's annotations, bump the revision (keeping history)."""
    ann = rs["metadata"].setdefault("annotations", {})
    changed = False
    for key, value in annotations(d).items():
        if key in _SKIP_COPY or ann.get(key) == value:
            continue
        ann[key] = value
        changed = True
    old_text = ann.get(REVISION, "")
    try:
        old = int(old_text) if old_text else 0
    except ValueError:
        old = 0
    if old < new_revision:
        ann[REVISION] = str(new_revision)
        changed = True
        if old_text:
            # A rollback moves an old revision to the new one; remember the ones it had.
            history = ann.get(REVISION_HISTORY, "")
            history = f"{history},{old_text}" if history else old_text
            while len(history) > MAX_REV_HISTORY_CHARS and "," in history:
                history = history.split(",", 1)[1]
            ann[REVISION_HISTORY] = history
    if not exists and set_replicas_annotations(rs, replicas(d), replicas(d) + max_surge(d)):
        changed = True
    return changed


# ---- conditions ------------------------------------------------------------------------------

def condition(status: Obj, type_: str) -> Obj | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == type_:
            return cond  # type: ignore[no-any-return]
    return None


def new_condition(type_: str, status: str, reason: str, message: str, now: datetime) -> Obj:
    stamp = format_time(now)
    return {"type": type_, "status": status, "lastUpdateTime": stamp, "lastTransitionTime": stamp,
            "reason": reason, "message": message}


def set_condition(status: Obj, cond: Obj) -> None:
    """`SetDeploymentCondition`: same status+reason is a no-op; same status keeps lastTransitionTime."""
    current = condition(status, cond["type"])
    if current is not None and current.get("status") == cond["status"] and current.get("reason") == cond["reason"]:
        return
    if current is not None and current.get("status") == cond["status"]:
        cond = {**cond, "lastTransitionTime": current.get("lastTransitionTime")}
    status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != cond["type"]] + [cond]


def remove_condition(status: Obj, type_: str) -> None:
    conds = [c for c in status.get("conditions") or [] if c.get("type") != type_]
    if conds:
        status["conditions"] = conds
    else:
        status.pop("conditions", None)


def deployment_complete(d: Obj, status: Obj) -> bool:
    want = replicas(d)
    return (int(status.get("updatedReplicas") or 0) == want and int(status.get("replicas") or 0) == want
            and int(status.get("availableReplicas") or 0) == want
            and int(status.get("observedGeneration") or 0) >= int(d["metadata"].get("generation") or 0))


def deployment_progressing(d: Obj, new: Obj) -> bool:
    old = d.get("status") or {}

    def get(s: Obj, f: str) -> int:
        return int(s.get(f) or 0)

    old_old = get(old, "replicas") - get(old, "updatedReplicas")
    new_old = get(new, "replicas") - get(new, "updatedReplicas")
    return (get(new, "updatedReplicas") > get(old, "updatedReplicas") or new_old < old_old
            or get(new, "readyReplicas") > get(old, "readyReplicas")
            or get(new, "availableReplicas") > get(old, "availableReplicas"))


def progress_deadline_at(d: Obj, status: Obj) -> datetime | None:
    """When the Progressing condition runs out of time (its lastUpdateTime + progressDeadlineSeconds)."""
    cond = condition(status, "Progressing")
    if not has_progress_deadline(d) or cond is None:
        return None
    since = parse_time(cond.get("lastUpdateTime"))
    if since is None:
        return None
    return since + timedelta(seconds=int(d["spec"]["progressDeadlineSeconds"]))


def deployment_timed_out(d: Obj, status: Obj, now: datetime) -> bool:
    """`DeploymentTimedOut`."""
    cond = condition(status, "Progressing")
    if not has_progress_deadline(d) or cond is None or cond.get("reason") == NEW_RS_AVAILABLE:
        return False
    if cond.get("reason") == TIMED_OUT:
        return True
    deadline = progress_deadline_at(d, status)
    return deadline is not None and deadline < now
