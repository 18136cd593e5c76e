"""apps/v1 and batch/v1 validation: selectors, templates, strategies, Job and CronJob rules."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubeling.api import errors
from kubeling.api.defaults import apply_defaults, apply_job_selector
from kubeling.api.validation import validate
from kubeling.api.validation.batch import parse_schedule
from tests.unit.api.validation_cases import causes, resource_info


def template(labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {"containers": [{"name": "c", "image": "nginx:1.25"}]}
    pod_spec.update(spec)
    return {"metadata": {"labels": labels if labels is not None else {"app": "x"}}, "spec": pod_spec}


def workload(kind: str, **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"selector": {"matchLabels": {"app": "x"}}, "template": template()}
    base.update(spec)
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "w", "namespace": "default"}, "spec": base}


APPS_CASES = [
    ("deployments.apps", "valid", workload("Deployment"), []),
    ("deployments.apps", "selector-required", workload("Deployment", selector=None),
     ["spec.selector: Required value",
      'spec.template.metadata.labels: Invalid value: map[string]string{"app":"x"}: '
      "`selector` does not match template `labels`"]),
    ("deployments.apps", "selector-mismatch", workload("Deployment", template=template({"app": "y"})),
     ['spec.template.metadata.labels: Invalid value: map[string]string{"app":"y"}: '
      "`selector` does not match template `labels`"]),
    ("deployments.apps", "selector-empty", workload("Deployment", selector={}),
     ["spec.selector: Invalid value: &v1.LabelSelector{MatchLabels:map[string]string(nil), "
      "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"]),
    ("deployments.apps", "selector-expression", workload("Deployment", selector={
        "matchExpressions": [{"key": "app", "operator": "In"}]}),
     ["spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' "
      "or 'NotIn'",
      "spec.selector: Invalid value: &v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:"
      '[]v1.LabelSelectorRequirement{v1.LabelSelectorRequirement{Key:"app", Operator:"In", Values:[]string(nil)}}}: '
      "invalid label selector"]),
    ("deployments.apps", "container-name", workload("Deployment", template={
        "metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"image": "nginx"}]}}),
     ["spec.template.spec.containers[0].name: Required value"]),
    ("deployments.apps", "replicas", workload("Deployment", replicas=-1),
     ["spec.replicas: Invalid value: -1: must be greater than or equal to 0"]),
    ("deployments.apps", "restart-policy", workload("Deployment", template=template(restartPolicy="Never")),
     ['spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"']),
    ("deployments.apps", "both-zero", workload("Deployment", strategy={
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}),
     ['spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:0, IntVal:0, StrVal:""}: '
      "may not be 0 when `maxSurge` is 0"]),
    ("deployments.apps", "bad-percent", workload("Deployment", strategy={
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": "x%"}}),
     ['spec.strategy.rollingUpdate.maxSurge: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:"x%"}: '
      "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', "
      "regex used for validation is '[0-9]+%')"]),
    ("deployments.apps", "over-100", workload("Deployment", strategy={
        "type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "150%"}}),
     ['spec.strategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, '
      'StrVal:"150%"}: must not be greater than 100%']),
    ("deployments.apps", "recreate-with-rolling", workload("Deployment", strategy={
        "type": "Recreate", "rollingUpdate": {"maxSurge": 1}}),
     ["spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"]),
    ("deployments.apps", "strategy-type", workload("Deployment", strategy={"type": "BlueGreen"}),
     ['spec.strategy: Unsupported value: apps.DeploymentStrategy{Type:"BlueGreen", '
      'RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}: supported values: "Recreate", "RollingUpdate"']),
    ("deployments.apps", "progress-deadline", workload("Deployment", minReadySeconds=600),
     ["spec.progressDeadlineSeconds: Invalid value: 600: must be greater than minReadySeconds"]),
    ("replicasets.apps", "rs-valid", workload("ReplicaSet"), []),
    ("replicasets.apps", "rs-deadline", workload("ReplicaSet", template=template(activeDeadlineSeconds=5)),
     ["spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in ReplicaSet is not Supported"]),
    ("statefulsets.apps", "sts-valid", workload("StatefulSet", serviceName="w"), []),
    ("statefulsets.apps", "sts-policy", workload("StatefulSet", podManagementPolicy="Random"),
     ['spec.podManagementPolicy: Invalid value: "Random": must be \'OrderedReady\' or \'Parallel\'']),
    ("statefulsets.apps", "sts-claims", workload("StatefulSet", volumeClaimTemplates=[{
        "metadata": {"name": "data"}, "spec": {"resources": {"requests": {"storage": "1Gi"}}}}]),
     ["spec.volumeClaimTemplates[0].spec.accessModes: Required value: at least 1 access mode is required"]),
    ("daemonsets.apps", "ds-valid", workload("DaemonSet"), []),
    ("daemonsets.apps", "ds-both-zero", workload("DaemonSet", updateStrategy={
        "type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}}),
     ["spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when maxSurge is 0"]),
    ("daemonsets.apps", "ds-both-set", workload("DaemonSet", updateStrategy={
        "type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 1}}),
     ['spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: intstr.IntOrString{Type:0, IntVal:1, StrVal:""}: '
      "may not be set when maxUnavailable is non-zero"]),
    ("daemonsets.apps", "ds-no-selector", workload("DaemonSet", selector=None),
     ['spec.template.metadata.labels: Invalid value: map[string]string{"app":"x"}: '
      "`selector` does not match template `labels`"]),
    ("statefulsets.apps", "sts-max-unavailable", workload("StatefulSet", updateStrategy={
        "type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}}),
     ['spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:0, IntVal:0, '
      'StrVal:""}: cannot be 0']),
    ("daemonsets.apps", "ds-type", workload("DaemonSet", updateStrategy={"type": "Surge"}),
     ['spec.updateStrategy: Unsupported value: apps.DaemonSetUpdateStrategy{Type:"Surge", '
      'RollingUpdate:(*apps.RollingUpdateDaemonSet)(nil)}: supported values: "RollingUpdate", "OnDelete"']),
]


@pytest.mark.parametrize(("key", "obj", "expected"), [(c[0], c[2], c[3]) for c in APPS_CASES],
                         ids=[c[1] for c in APPS_CASES])
def test_apps(key: str, obj: dict[str, Any], expected: list[str]) -> None:
    assert causes(key, obj) == expected


def test_message_as_kubectl_prints_it() -> None:
    info = resource_info("deployments.apps")
    obj = workload("Deployment", template={"metadata": {"labels": {"app": "x"}},
                                           "spec": {"containers": [{"image": "nginx"}]}})
    apply_defaults(info, obj)
    err = errors.Invalid(info.kind, "w", validate(info, obj), info.group)
    assert err.message == 'Deployment.apps "w" is invalid: spec.template.spec.containers[0].name: Required value'


@pytest.mark.parametrize("key", ["deployments.apps", "replicasets.apps", "daemonsets.apps"])
def test_selector_is_immutable(key: str) -> None:
    kind = {"deployments.apps": "Deployment", "replicasets.apps": "ReplicaSet", "daemonsets.apps": "DaemonSet"}[key]
    old = workload(kind)
    apply_defaults(resource_info(key), old)
    new = workload(kind, selector={"matchLabels": {"app": "x", "tier": "web"}},
                   template=template({"app": "x", "tier": "web"}))
    assert causes(key, new, old) == [
        'spec.selector: Invalid value: &v1.LabelSelector{MatchLabels:map[string]string{"app":"x", "tier":"web"}, '
        "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"]


def test_statefulset_update_forbids_other_fields() -> None:
    old = workload("StatefulSet", serviceName="a")
    apply_defaults(resource_info("statefulsets.apps"), old)
    assert causes("statefulsets.apps", workload("StatefulSet", serviceName="a", replicas=3), old) == []
    out = causes("statefulsets.apps", workload("StatefulSet", serviceName="b"), old)
    assert out == ["spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', "
                   "'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' "
                   "and 'minReadySeconds' are forbidden"]


def job(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"template": {"spec": {"restartPolicy": "Never",
                                                  "containers": [{"name": "c", "image": "busybox"}]}}}
    base.update(spec)
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j", "namespace": "default"}, "spec": base}


def cron(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"schedule": "*/5 * * * *", "jobTemplate": {"spec": job()["spec"]}}
    base.update(spec)
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c", "namespace": "default"},
            "spec": base}


BATCH_CASES = [
    ("jobs.batch", "job-valid", job(), []),
    ("jobs.batch", "job-restart-default", job(template={"spec": {"containers": [{"name": "c", "image": "b"}]}}),
     ['spec.template.spec.restartPolicy: Unsupported value: "Always": supported values: "OnFailure", "Never"']),
    ("jobs.batch", "job-negative", job(parallelism=-1, completions=-2),
     ["spec.parallelism: Invalid value: -1: must be greater than or equal to 0",
      "spec.completions: Invalid value: -2: must be greater than or equal to 0"]),
    ("jobs.batch", "job-manual-selector", job(manualSelector=True),
     ["spec.selector: Required value", "spec.template.metadata.labels: Invalid value: map[string]string(nil): "
      "`selector` does not match template `labels`"]),
    ("jobs.batch", "job-manual-selector-mismatch", job(manualSelector=True, selector={"matchLabels": {"a": "b"}}),
     ["spec.template.metadata.labels: Invalid value: map[string]string(nil): "
      "`selector` does not match template `labels`"]),
    ("jobs.batch", "job-completion-mode", job(completionMode="Sometimes"),
     ['spec.completionMode: Unsupported value: "Sometimes": supported values: "NonIndexed", "Indexed"']),
    ("jobs.batch", "job-indexed", job(completionMode="Indexed", parallelism=2),
     ["spec.completions: Required value: when completion mode is Indexed"]),
    ("cronjobs.batch", "cron-valid", cron(), []),
    ("cronjobs.batch", "cron-descriptor", cron(schedule="@hourly"), []),
    ("cronjobs.batch", "cron-required", cron(schedule=""), ["spec.schedule: Required value"]),
    ("cronjobs.batch", "cron-fields", cron(schedule="* * *"),
     ['spec.schedule: Invalid value: "* * *": expected exactly 5 fields, found 3: [* * *]']),
    ("cronjobs.batch", "cron-range", cron(schedule="60 * * * *"),
     ['spec.schedule: Invalid value: "60 * * * *": end of range (60) above maximum (59): 60']),
    ("cronjobs.batch", "cron-descriptor-bad", cron(schedule="@sometimes"),
     ['spec.schedule: Invalid value: "@sometimes": unrecognized descriptor: @sometimes']),
    ("cronjobs.batch", "cron-int", cron(schedule="x * * * *"),
     ['spec.schedule: Invalid value: "x * * * *": failed to parse int from x: strconv.Atoi: parsing "x": '
      "invalid syntax"]),
    ("cronjobs.batch", "cron-timezone", cron(timeZone="Mars/Olympus"),
     ['spec.timeZone: Invalid value: "Mars/Olympus": unknown time zone Mars/Olympus']),
    ("cronjobs.batch", "cron-timezone-ok", cron(timeZone="Europe/Paris"), []),
    ("cronjobs.batch", "cron-concurrency", cron(concurrencyPolicy="Sometimes"),
     ['spec.concurrencyPolicy: Unsupported value: "Sometimes": supported values: "Allow", "Forbid", "Replace"']),
    ("cronjobs.batch", "cron-job-template", cron(jobTemplate={"spec": {"template": {"spec": {
        "restartPolicy": "OnFailure", "containers": [{"name": "c"}]}}}}),
     ["spec.jobTemplate.spec.template.spec.containers[0].image: Required value"]),
]


@pytest.mark.parametrize(("key", "obj", "expected"), [(c[0], c[2], c[3]) for c in BATCH_CASES],
                         ids=[c[1] for c in BATCH_CASES])
def test_batch(key: str, obj: dict[str, Any], expected: list[str]) -> None:
    assert causes(key, obj) == expected


def test_cronjob_name_length() -> None:
    obj = cron()
    obj["metadata"]["name"] = "c" * 53
    assert causes("cronjobs.batch", obj) == [
        'metadata.name: Invalid value: "' + "c" * 53 + '": must be no more than 52 characters']


def test_job_update_after_generated_selector() -> None:
    info = resource_info("jobs.batch")
    old = job()
    apply_defaults(info, old)
    old["metadata"]["uid"] = "1234"
    apply_job_selector(old)
    same = copy.deepcopy(old)
    same["spec"]["parallelism"] = 3
    assert causes("jobs.batch", same, old) == []
    changed = copy.deepcopy(old)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "other"
    assert causes("jobs.batch", changed, old) == [
        "spec.template: Invalid value: core.PodTemplateSpec{...}: field is immutable"]


@pytest.mark.parametrize(("schedule", "minutes"), [
    ("*/15 * * * *", {0, 15, 30, 45}), ("5 * * * *", {5}), ("1-3,10 * * * *", {1, 2, 3, 10}),
    ("30/10 * * * *", {30, 40, 50}),
], ids=str)
def test_parse_schedule_minutes(schedule: str, minutes: set[int]) -> None:
    assert parse_schedule(schedule)[0] == minutes


def test_parse_schedule_names() -> None:
    fields = parse_schedule("0 9 * JAN-MAR mon-fri")
    assert fields[3] == {1, 2, 3} and fields[4] == {1, 2, 3, 4, 5}
