"""apps/v1 and batch/v1 defaulting (`pkg/apis/apps/v1/defaults.go`, `pkg/apis/batch/v1/defaults.go`).

`kubectl rollout status` reads `spec.replicas`, the strategy and
`progressDeadlineSeconds`; the controllers read revisionHistoryLimit,
podManagementPolicy, backoffLimit and the history limits; all must be present
the way a real API server leaves them. apps/v1 never derives a selector or
labels from the template (the selector is required); Jobs get a generated
selector, but only once the uid exists (`apply_job_selector`, called by the
server after it assigns one), as the Job registry strategy does.
"""

from __future__ import annotations

from typing import Any

from kubeling.api.defaults.core import default_pvc_spec
from kubeling.api.defaults.pod import _dict, default_pod_template

Obj = dict[str, Any]

CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID_LABEL = "controller-uid"
LEGACY_JOB_NAME_LABEL = "job-name"


def default_deployment(obj: Obj) -> None:
    spec = _dict(obj, "spec")
    spec.setdefault("replicas", 1)
    strategy = _dict(spec, "strategy")
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = _dict(strategy, "rollingUpdate")
        rolling.setdefault("maxUnavailable", "25%")
        rolling.setdefault("maxSurge", "25%")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    default_pod_template(_dict(spec, "template"))


def default_replica_set(obj: Obj) -> None:
    spec = _dict(obj, "spec")
    spec.setdefault("replicas", 1)
    default_pod_template(_dict(spec, "template"))


def default_stateful_set(obj: Obj) -> None:
    spec = _dict(obj, "spec")
    spec.setdefault("replicas", 1)
    spec.setdefault("podManagementPolicy", "OrderedReady")
    strategy = _dict(spec, "updateStrategy")
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        _dict(strategy, "rollingUpdate").setdefault("partition", 0)
    spec.setdefault("revisionHistoryLimit", 10)
    retention = _dict(spec, "persistentVolumeClaimRetentionPolicy")
    retention.setdefault("whenDeleted", "Retain")
    retention.setdefault("whenScaled", "Retain")
    for claim in spec.get("volumeClaimTemplates") or []:
        if isinstance(claim, dict):
            claim.setdefault("apiVersion", "v1")
            claim.setdefault("kind", "PersistentVolumeClaim")
            default_pvc_spec(_dict(claim, "spec"))
    default_pod_template(_dict(spec, "template"))


def default_daemon_set(obj: Obj) -> None:
    spec = _dict(obj, "spec")
    strategy = _dict(spec, "updateStrategy")
    strategy.setdefault("type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = _dict(strategy, "rollingUpdate")
        rolling.setdefault("maxUnavailable", 1)
        rolling.setdefault("maxSurge", 0)
    spec.setdefault("revisionHistoryLimit", 10)
    default_pod_template(_dict(spec, "template"))


def default_job(obj: Obj) -> None:
    spec = _dict(obj, "spec")
    # A non-parallel job may leave both unset; both then default to 1.
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    if spec.get("parallelism") is None:
        spec["parallelism"] = 1
    if spec.get("backoffLimit") is None:
        spec["backoffLimit"] = 2147483647 if spec.get("backoffLimitPerIndex") is not None else 6
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    if spec.get("podReplacementPolicy") is None:
        spec["podReplacementPolicy"] = "Failed" if spec.get("podFailurePolicy") else "TerminatingOrFailed"
    template = _dict(spec, "template")
    labels = (template.get("metadata") or {}).get("labels")
    meta = _dict(obj, "metadata")
    if labels and not meta.get("labels"):
        meta["labels"] = dict(labels)
    default_pod_template(template)


def default_cron_job(obj: Obj) -> None:
    spec = _dict(obj, "spec")
    spec.setdefault("concurrencyPolicy", "Allow")
    spec.setdefault("suspend", False)
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("failedJobsHistoryLimit", 1)
    default_pod_template(_dict(_dict(_dict(spec, "jobTemplate"), "spec"), "template"))


def apply_job_selector(obj: Obj) -> None:
    """Generate a Job's selector and pod labels from its uid (unless `manualSelector` is true).

    Called by the server after it assigns `metadata.uid` on create, mirroring the
    Job registry strategy's generateSelector: the template gets the controller-uid
    and job-name labels (current and legacy keys), the selector matches the uid.
    """
    spec = _dict(obj, "spec")
    if spec.get("manualSelector") is True:
        return
    meta = obj.get("metadata") or {}
    uid, name = meta.get("uid"), meta.get("name")
    if not uid:
        return
    template = _dict(spec, "template")
    labels = _dict(_dict(template, "metadata"), "labels")
    labels.setdefault(CONTROLLER_UID_LABEL, uid)
    labels.setdefault(JOB_NAME_LABEL, name)
    labels.setdefault(LEGACY_CONTROLLER_UID_LABEL, uid)
    labels.setdefault(LEGACY_JOB_NAME_LABEL, name)
    selector = _dict(spec, "selector")
    _dict(selector, "matchLabels").setdefault(CONTROLLER_UID_LABEL, uid)
