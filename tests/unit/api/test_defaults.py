"""Defaulting per kind: the fields a real API server fills in before storage."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubeling.api.defaults import apply_defaults, apply_job_selector, image_pull_policy
from kubeling.api.registry import Registry

REG = Registry()


def _info(key: str, version: str | None = None) -> Any:
    return next(i for i in REG.all() if i.key == key and (version is None or i.version == version))


def defaulted(key: str, obj: dict[str, Any], version: str | None = None) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    apply_defaults(_info(key, version), obj)
    return obj


CONTAINER = {"name": "c", "image": "nginx:1.25"}
DEFAULTED_CONTAINER = {
    "name": "c", "image": "nginx:1.25", "terminationMessagePath": "/dev/termination-log",
    "terminationMessagePolicy": "File", "imagePullPolicy": "IfNotPresent", "resources": {},
}
TEMPLATE_SPEC_DEFAULTS = {
    "restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler",
    "terminationGracePeriodSeconds": 30, "securityContext": {},
}


@pytest.mark.parametrize(("image", "policy"), [
    ("nginx", "Always"), ("nginx:latest", "Always"), ("nginx:1.25", "IfNotPresent"),
    ("localhost:5000/app", "Always"), ("localhost:5000/app:v1", "IfNotPresent"),
    ("nginx@sha256:abc", "IfNotPresent"), ("", "IfNotPresent"),
], ids=repr)
def test_image_pull_policy(image: str, policy: str) -> None:
    assert image_pull_policy(image) == policy


def test_pod() -> None:
    obj = defaulted("pods", {"metadata": {"name": "p"}, "spec": {"containers": [dict(
        CONTAINER, ports=[{"containerPort": 80}],
        env=[{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        readinessProbe={"httpGet": {"port": 80}},
        resources={"limits": {"cpu": "1"}})], "volumes": [{"name": "v"}, {"name": "s", "secret": {"secretName": "x"}}]}})
    spec = obj["spec"]
    for key, value in TEMPLATE_SPEC_DEFAULTS.items():
        assert spec[key] == value
    assert spec["enableServiceLinks"] is True
    assert spec["serviceAccountName"] == spec["serviceAccount"] == "default"
    assert spec["priority"] == 0
    assert [t["key"] for t in spec["tolerations"]] == ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"]
    ctr = spec["containers"][0]
    assert ctr["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert ctr["env"][0]["valueFrom"]["fieldRef"] == {"fieldPath": "metadata.name", "apiVersion": "v1"}
    assert ctr["readinessProbe"] == {"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
                                     "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}
    assert ctr["resources"] == {"limits": {"cpu": "1"}, "requests": {"cpu": "1"}}
    assert spec["volumes"] == [{"name": "v", "emptyDir": {}},
                               {"name": "s", "secret": {"secretName": "x", "defaultMode": 420}}]


def test_pod_defaults_are_idempotent_and_keep_user_values() -> None:
    obj = {"spec": {"restartPolicy": "Never", "serviceAccountName": "robot",
                    "containers": [dict(CONTAINER, imagePullPolicy="Never")]}}
    once = defaulted("pods", obj)
    assert defaulted("pods", once) == once
    assert once["spec"]["restartPolicy"] == "Never"
    assert once["spec"]["serviceAccount"] == "robot"
    assert once["spec"]["containers"][0]["imagePullPolicy"] == "Never"


def _template() -> dict[str, Any]:
    return {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [dict(CONTAINER)]}}


EXPECTED_TEMPLATE = {"metadata": {"labels": {"app": "x"}},
                     "spec": {"containers": [DEFAULTED_CONTAINER], **TEMPLATE_SPEC_DEFAULTS}}

WORKLOAD_CASES = [
    ("deployments.apps", {"replicas": 1, "strategy": {"type": "RollingUpdate", "rollingUpdate": {
        "maxUnavailable": "25%", "maxSurge": "25%"}}, "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600}),
    ("replicasets.apps", {"replicas": 1}),
    ("statefulsets.apps", {"replicas": 1, "podManagementPolicy": "OrderedReady", "updateStrategy": {
        "type": "RollingUpdate", "rollingUpdate": {"partition": 0}}, "revisionHistoryLimit": 10,
        "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"}}),
    ("daemonsets.apps", {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {
        "maxUnavailable": 1, "maxSurge": 0}}, "revisionHistoryLimit": 10}),
    ("jobs.batch", {"parallelism": 1, "completions": 1, "backoffLimit": 6, "completionMode": "NonIndexed",
                    "suspend": False, "podReplacementPolicy": "TerminatingOrFailed"}),
]


@pytest.mark.parametrize(("key", "expected"), WORKLOAD_CASES, ids=[c[0] for c in WORKLOAD_CASES])
def test_workloads(key: str, expected: dict[str, Any]) -> None:
    spec = defaulted(key, {"metadata": {"name": "w"}, "spec": {"template": _template()}})["spec"]
    assert spec.pop("template") == EXPECTED_TEMPLATE
    assert "selector" not in spec  # apps/v1 never derives a selector
    assert spec == expected


def test_workload_template_has_no_pod_only_defaults() -> None:
    spec = defaulted("deployments.apps", {"spec": {"template": _template()}})["spec"]["template"]["spec"]
    for key in ("enableServiceLinks", "serviceAccountName", "priority", "tolerations"):
        assert key not in spec


def test_deployment_recreate_has_no_rolling_update() -> None:
    spec = defaulted("deployments.apps", {"spec": {"strategy": {"type": "Recreate"}}})["spec"]
    assert spec["strategy"] == {"type": "Recreate"}


def test_job_completions_only_parallelism() -> None:
    spec = defaulted("jobs.batch", {"spec": {"completions": 5}})["spec"]
    assert spec["completions"] == 5 and spec["parallelism"] == 1


def test_job_labels_and_selector() -> None:
    obj = defaulted("jobs.batch", {"metadata": {"name": "pi"}, "spec": {"template": _template()}})
    assert obj["metadata"]["labels"] == {"app": "x"}
    assert "selector" not in obj["spec"]
    apply_job_selector(obj)  # no uid yet: nothing to generate
    assert "selector" not in obj["spec"]
    obj["metadata"]["uid"] = "u-1"
    apply_job_selector(obj)
    assert obj["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}}
    assert obj["spec"]["template"]["metadata"]["labels"] == {
        "app": "x", "batch.kubernetes.io/controller-uid": "u-1", "batch.kubernetes.io/job-name": "pi",
        "controller-uid": "u-1", "job-name": "pi"}


def test_job_manual_selector_left_alone() -> None:
    obj = {"metadata": {"name": "j", "uid": "u"}, "spec": {"manualSelector": True, "selector": {
        "matchLabels": {"a": "b"}}, "template": _template()}}
    apply_job_selector(obj)
    assert obj["spec"]["selector"] == {"matchLabels": {"a": "b"}}


def test_cronjob() -> None:
    spec = defaulted("cronjobs.batch", {"spec": {"schedule": "* * * * *", "jobTemplate": {
        "spec": {"template": _template()}}}})["spec"]
    assert spec["jobTemplate"]["spec"] == {"template": EXPECTED_TEMPLATE}
    assert {k: spec[k] for k in ("concurrencyPolicy", "suspend", "successfulJobsHistoryLimit",
                                 "failedJobsHistoryLimit")} == {
        "concurrencyPolicy": "Allow", "suspend": False, "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1}


SERVICE_CASES = [
    ("cluster-ip", {"ports": [{"port": 80}]},
     {"type": "ClusterIP", "sessionAffinity": "None", "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
      "internalTrafficPolicy": "Cluster", "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv4"]}),
    ("node-port", {"type": "NodePort", "ports": [{"port": 80, "targetPort": "http"}]},
     {"type": "NodePort", "sessionAffinity": "None", "ports": [{"port": 80, "protocol": "TCP", "targetPort": "http"}],
      "externalTrafficPolicy": "Cluster", "internalTrafficPolicy": "Cluster", "ipFamilyPolicy": "SingleStack",
      "ipFamilies": ["IPv4"]}),
    ("load-balancer", {"type": "LoadBalancer", "ports": [{"port": 443, "protocol": "UDP"}]},
     {"type": "LoadBalancer", "sessionAffinity": "None", "ports": [{"port": 443, "protocol": "UDP", "targetPort": 443}],
      "externalTrafficPolicy": "Cluster", "internalTrafficPolicy": "Cluster", "ipFamilyPolicy": "SingleStack",
      "ipFamilies": ["IPv4"], "allocateLoadBalancerNodePorts": True}),
    ("external-name", {"type": "ExternalName", "externalName": "db.example.com"},
     {"type": "ExternalName", "externalName": "db.example.com", "sessionAffinity": "None"}),
    ("headless-selectorless", {"clusterIP": "None"},
     {"clusterIP": "None", "type": "ClusterIP", "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
      "ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv4"]}),
    ("client-ip", {"sessionAffinity": "ClientIP"},
     {"type": "ClusterIP", "sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {
         "timeoutSeconds": 10800}}, "internalTrafficPolicy": "Cluster", "ipFamilyPolicy": "SingleStack",
      "ipFamilies": ["IPv4"]}),
]


@pytest.mark.parametrize(("spec", "expected"), [c[1:] for c in SERVICE_CASES], ids=[c[0] for c in SERVICE_CASES])
def test_service(spec: dict[str, Any], expected: dict[str, Any]) -> None:
    assert defaulted("services", {"spec": spec})["spec"] == expected


SIMPLE_CASES = [
    ("secrets", None, {}, {"type": "Opaque"}),
    ("namespaces", None, {"metadata": {"name": "team"}},
     {"metadata": {"name": "team", "labels": {"kubernetes.io/metadata.name": "team"}},
      "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}),
    ("persistentvolumeclaims", None, {"spec": {}}, {"spec": {"volumeMode": "Filesystem"}, "status": {"phase": "Pending"}}),
    ("persistentvolumes", None, {"spec": {}},
     {"spec": {"persistentVolumeReclaimPolicy": "Retain", "volumeMode": "Filesystem"}, "status": {"phase": "Pending"}}),
    ("storageclasses.storage.k8s.io", None, {"provisioner": "p"},
     {"provisioner": "p", "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"}),
    ("priorityclasses.scheduling.k8s.io", None, {"value": 1},
     {"value": 1, "preemptionPolicy": "PreemptLowerPriority"}),
    ("horizontalpodautoscalers.autoscaling", "v2", {"spec": {"maxReplicas": 3}},
     {"spec": {"maxReplicas": 3, "minReplicas": 1, "metrics": [{"type": "Resource", "resource": {
         "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]}}),
    ("horizontalpodautoscalers.autoscaling", "v1", {"spec": {"maxReplicas": 3}},
     {"spec": {"maxReplicas": 3, "minReplicas": 1}}),
    ("endpointslices.discovery.k8s.io", None, {"ports": [{"port": 80}]},
     {"ports": [{"port": 80, "name": "", "protocol": "TCP"}]}),
    ("nodes", None, {"status": {"capacity": {"cpu": "4"}}},
     {"status": {"capacity": {"cpu": "4"}, "allocatable": {"cpu": "4"}}}),
    ("limitranges", None, {"spec": {"limits": [{"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "1Mi"}}]}},
     {"spec": {"limits": [{"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "1Mi"},
                           "default": {"cpu": "2"}, "defaultRequest": {"cpu": "2", "memory": "1Mi"}}]}}),
    ("configmaps", None, {"data": {"a": "b"}}, {"data": {"a": "b"}}),
    ("leases.coordination.k8s.io", None, {"spec": {}}, {"spec": {}}),
    ("events", None, {"reason": "X"}, {"reason": "X"}),
    ("ingressclasses.networking.k8s.io", None, {"spec": {"controller": "a/b"}}, {"spec": {"controller": "a/b"}}),
]


@pytest.mark.parametrize(("key", "version", "obj", "expected"), SIMPLE_CASES,
                         ids=[f"{c[0]}-{c[1]}" if c[1] else c[0] for c in SIMPLE_CASES])
def test_simple_kinds(key: str, version: str | None, obj: dict[str, Any], expected: dict[str, Any]) -> None:
    assert defaulted(key, obj, version) == expected


def test_custom_resources_untouched() -> None:
    info = copy.copy(_info("configmaps"))
    info.crd = {}
    obj = {"spec": {"x": 1}}
    apply_defaults(info, obj)
    assert obj == {"spec": {"x": 1}}


def test_namespace_finalizer_only_on_create() -> None:
    existing = {"metadata": {"name": "team", "uid": "u"}, "spec": {}, "status": {"phase": "Terminating"}}
    out = defaulted("namespaces", existing)
    assert out["spec"] == {} and out["status"] == {"phase": "Terminating"}
