"""Strategic merge patch: cases modelled on apimachinery's strategicpatch tests and kubectl's wire bodies."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubeling.api.errors import StatusError
from kubeling.api.patch import apply_strategic_merge_patch
from kubeling.api.schema import schema_for

POD = schema_for("", "v1", "Pod")
DEPLOYMENT = schema_for("apps", "v1", "Deployment")
SERVICE = schema_for("", "v1", "Service")


def pod_spec(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}


CASES = [
    pytest.param(
        pod_spec(containers=[{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]),
        {"spec": {"containers": [{"name": "b", "image": "b:2"}]}},
        pod_spec(containers=[{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:2"}]),
        POD, id="containers-merge-by-name"),
    pytest.param(
        pod_spec(containers=[{"name": "a", "image": "a:1"}]),
        {"spec": {"containers": [{"name": "c", "image": "c:1"}]}},
        # mergeSortedSlice: an item absent from the live list has no live position, so it goes first.
        pod_spec(containers=[{"name": "c", "image": "c:1"}, {"name": "a", "image": "a:1"}]),
        POD, id="new-container-goes-first"),
    pytest.param(
        pod_spec(containers=[{"name": "a"}, {"name": "b"}, {"name": "c"}]),
        {"spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "b"}, {"name": "a"}],
                  "containers": [{"name": "b", "image": "x"}]}},
        pod_spec(containers=[{"name": "c"}, {"name": "b", "image": "x"}, {"name": "a"}]),
        POD, id="setElementOrder-reorders"),
    pytest.param(
        pod_spec(containers=[{"name": "a"}, {"name": "b"}, {"name": "server-only"}]),
        {"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}},
        pod_spec(containers=[{"name": "b"}, {"name": "a"}, {"name": "server-only"}]),
        POD, id="setElementOrder-without-list-keeps-server-only"),
    pytest.param(
        pod_spec(containers=[{"name": "a"}, {"name": "b"}, {"name": "c"}]),
        {"spec": {"containers": [{"name": "c", "image": "c:2"}, {"name": "d"}]}},
        pod_spec(containers=[{"name": "a"}, {"name": "b"}, {"name": "c", "image": "c:2"}, {"name": "d"}]),
        POD, id="patched-items-keep-live-position"),
    pytest.param(
        pod_spec(containers=[{"name": "a", "env": [{"name": "A"}, {"name": "B"}, {"name": "C"}]}]),
        {"spec": {"containers": [{"name": "a", "$setElementOrder/env": [{"name": "C"}, {"name": "A"}],
                                  "env": [{"name": "B", "$patch": "delete"}]}]}},
        pod_spec(containers=[{"name": "a", "env": [{"name": "C"}, {"name": "A"}]}]),
        POD, id="kubectl-3way-env-delete-and-reorder"),
    pytest.param(
        {"metadata": {"finalizers": ["a", "b"]}},
        {"metadata": {"$setElementOrder/finalizers": ["c", "a"], "finalizers": ["c"],
                      "$deleteFromPrimitiveList/finalizers": ["b"]}},
        {"metadata": {"finalizers": ["c", "a"]}},
        POD, id="kubectl-3way-finalizers"),
    pytest.param(
        pod_spec(containers=[{"name": "a"}, {"name": "b"}]),
        {"spec": {"containers": [{"name": "a", "$patch": "delete"}]}},
        pod_spec(containers=[{"name": "b"}]),
        POD, id="patch-delete-list-element"),
    pytest.param(
        pod_spec(containers=[{"name": "a"}, {"name": "b"}]),
        {"spec": {"containers": [{"name": "z", "image": "z"}, {"$patch": "replace"}]}},
        pod_spec(containers=[{"name": "z", "image": "z"}]),
        POD, id="patch-replace-list"),
    pytest.param(
        pod_spec(nodeSelector={"a": "1", "b": "2"}),
        {"spec": {"nodeSelector": {"c": "3", "$patch": "replace"}}},
        pod_spec(nodeSelector={"c": "3"}),
        POD, id="patch-replace-map"),
    pytest.param(
        pod_spec(nodeSelector={"a": "1"}, hostname="h"),
        {"spec": {"nodeSelector": {"$patch": "delete"}}},
        pod_spec(nodeSelector={}, hostname="h"),
        POD, id="patch-delete-map"),
    pytest.param(
        pod_spec(volumes=[{"name": "v", "emptyDir": {}}]),
        {"spec": {"volumes": [{"name": "v", "hostPath": {"path": "/x"}, "$retainKeys": ["name", "hostPath"]}]}},
        pod_spec(volumes=[{"name": "v", "hostPath": {"path": "/x"}}]),
        POD, id="retainKeys-on-volume"),
    pytest.param(
        {"metadata": {"finalizers": ["a", "b", "c"]}},
        {"metadata": {"$deleteFromPrimitiveList/finalizers": ["b"]}},
        {"metadata": {"finalizers": ["a", "c"]}},
        POD, id="deleteFromPrimitiveList"),
    pytest.param(
        {"metadata": {"finalizers": ["a", "b"]}},
        {"metadata": {"finalizers": ["c", "a"]}},
        {"metadata": {"finalizers": ["c", "a", "b"]}},
        POD, id="primitive-merge-list-is-a-set"),
    pytest.param(
        pod_spec(tolerations=[{"key": "a"}, {"key": "b"}]),
        {"spec": {"tolerations": [{"key": "c"}]}},
        pod_spec(tolerations=[{"key": "c"}]),
        POD, id="non-merge-list-replaced"),
    pytest.param(
        {"metadata": {"labels": {"a": "1", "b": "2"}}},
        {"metadata": {"labels": {"a": None, "c": "3", "absent": None}}},
        {"metadata": {"labels": {"b": "2", "c": "3"}}},
        POD, id="null-deletes-key"),
    pytest.param(
        {"spec": {"ports": [{"port": 80, "protocol": "TCP", "targetPort": 8080}]}},
        {"spec": {"ports": [{"port": 443, "targetPort": 8443}]}},
        {"spec": {"ports": [{"port": 443, "targetPort": 8443}, {"port": 80, "protocol": "TCP", "targetPort": 8080}]}},
        SERVICE, id="service-ports-merge-by-port"),
    pytest.param(
        {"spec": {"ports": [{"port": 80, "targetPort": 8080}]}},
        {"spec": {"ports": [{"port": 80, "targetPort": 9090}]}},
        {"spec": {"ports": [{"port": 80, "targetPort": 9090}]}},
        SERVICE, id="service-port-updated-in-place"),
    pytest.param(
        {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}},
        {"spec": {"strategy": {"type": "Recreate", "$retainKeys": ["type"]}}},
        {"spec": {"strategy": {"type": "Recreate"}}},
        DEPLOYMENT, id="retainKeys-deployment-strategy"),
    pytest.param(
        {"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]}},
        {"metadata": {"ownerReferences": [{"uid": "2", "name": "b"}]}},
        {"metadata": {"ownerReferences": [{"uid": "2", "name": "b"}, {"uid": "1", "name": "a"}]}},
        POD, id="ownerReferences-merge-by-uid"),
    pytest.param(
        {"spec": {"list": [1, 2]}, "x": {"y": 1}},
        {"spec": {"list": [3]}, "x": {"z": 2}},
        {"spec": {"list": [3]}, "x": {"y": 1, "z": 2}},
        None, id="no-schema-lists-replaced-maps-merged"),
]


@pytest.mark.parametrize(("obj", "patch", "expected", "schema"), CASES)
def test_strategic_merge_patch(obj: dict[str, Any], patch: dict[str, Any], expected: dict[str, Any],
                               schema: Any) -> None:
    before_obj, before_patch = copy.deepcopy(obj), copy.deepcopy(patch)
    assert apply_strategic_merge_patch(obj, patch, schema) == expected
    assert obj == before_obj and patch == before_patch  # inputs untouched


def test_kubectl_apply_patch_body() -> None:
    """The exact PATCH body client-side `kubectl apply` sends for a changed Deployment (wire ref §6)."""
    live = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "annotations": {"deployment.kubernetes.io/revision": "1"}},
        "spec": {"replicas": 1, "template": {"spec": {"containers": [
            {"name": "nginx", "image": "nginx:1.25", "imagePullPolicy": "IfNotPresent",
             "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}}},
    }
    body = {"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}\n"}},
            "spec": {"replicas": 2, "template": {"spec": {
                "$setElementOrder/containers": [{"name": "nginx"}],
                "containers": [{"image": "nginx:1.26", "name": "nginx", "ports": [{"containerPort": 80}]}]}}}}
    out = apply_strategic_merge_patch(live, body, DEPLOYMENT)
    assert out["spec"]["replicas"] == 2
    assert out["metadata"]["annotations"] == {"deployment.kubernetes.io/revision": "1",
                                              "kubectl.kubernetes.io/last-applied-configuration": "{}\n"}
    assert out["spec"]["template"]["spec"]["containers"] == [
        {"name": "nginx", "image": "nginx:1.26", "imagePullPolicy": "IfNotPresent",
         "ports": [{"containerPort": 80, "protocol": "TCP"}]}]


def test_rollout_restart_adds_template_annotation() -> None:
    live = {"spec": {"template": {"metadata": {"labels": {"app": "web"}}}}}
    body = {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "t"}}}}}
    out = apply_strategic_merge_patch(live, body, DEPLOYMENT)
    assert out["spec"]["template"]["metadata"] == {
        "labels": {"app": "web"}, "annotations": {"kubectl.kubernetes.io/restartedAt": "t"}}


@pytest.mark.parametrize(("patch", "code"), [
    pytest.param({"spec": {"$foo": 1}}, 400, id="unknown-directive"),
    pytest.param({"spec": {"nodeSelector": {"$patch": "explode"}}}, 400, id="unknown-patch-type-map"),
    pytest.param({"spec": {"containers": [{"image": "x"}]}}, 400, id="missing-merge-key"),
    pytest.param({"spec": {"containers": [{"name": "a", "$patch": "bogus"}]}}, 400, id="unknown-patch-type-list"),
    pytest.param({"spec": {"hostname": "x", "$retainKeys": ["subdomain"]}}, 400, id="retainKeys-mismatch"),
    pytest.param({"spec": {"$setElementOrder/containers": "nope"}}, 400, id="bad-setElementOrder"),
    pytest.param({"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}, 400, id="bad-deleteFromPrimitiveList"),
])
def test_malformed_patches(patch: dict[str, Any], code: int) -> None:
    with pytest.raises(StatusError) as err:
        apply_strategic_merge_patch(pod_spec(containers=[{"name": "a"}]), patch, POD)
    assert err.value.code == code
