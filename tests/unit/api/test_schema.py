"""The published Kubernetes schemas: lookup by GVK, patch metadata, OpenAPI v3 conversion."""

from __future__ import annotations

import json

import pytest

from kubeling.api import schema
from kubeling.api.errors import StatusError


@pytest.mark.parametrize(("gvk", "name"), [
    pytest.param(("", "v1", "Pod"), "io.k8s.api.core.v1.Pod", id="core"),
    pytest.param(("apps", "v1", "Deployment"), "io.k8s.api.apps.v1.Deployment", id="apps"),
    pytest.param(("", "v1", "DeleteOptions"), "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions", id="shared"),
    pytest.param(("example.com", "v1", "Widget"), None, id="custom-resource"),
])
def test_definition_name_for(gvk: tuple[str, str, str], name: str | None) -> None:
    assert schema.definition_name_for(*gvk) == name


def _field(path: str) -> schema.SchemaNode:
    group, version, kind, *fields = path.split(".")
    node = schema.schema_for(group, version, kind)
    assert node is not None
    for f in fields:
        child = node.items() if f == "[]" else node.child(f)
        assert child is not None, f
        node = child
    return node


@pytest.mark.parametrize(("path", "strategy", "merge_key", "list_type", "keys"), [
    pytest.param(".v1.Pod.spec.containers", ["merge"], "name", "map", ["name"], id="containers"),
    pytest.param(".v1.Pod.spec.volumes", ["merge", "retainKeys"], "name", "map", ["name"], id="volumes"),
    pytest.param(".v1.Pod.spec.containers.[].ports", ["merge"], "containerPort", "map",
                 ["containerPort", "protocol"], id="container-ports"),
    pytest.param(".v1.Service.spec.ports", ["merge"], "port", "map", ["port", "protocol"], id="service-ports"),
    pytest.param(".v1.Pod.metadata.finalizers", ["merge"], None, "set", [], id="finalizers"),
    pytest.param(".v1.Pod.spec.tolerations", [], None, "atomic", [], id="tolerations"),
    pytest.param("apps.v1.Deployment.spec.strategy", ["retainKeys"], None, None, [], id="deployment-strategy"),
])
def test_patch_metadata(path: str, strategy: list[str], merge_key: str | None, list_type: str | None,
                        keys: list[str]) -> None:
    node = _field(path)
    assert (node.patch_strategy, node.patch_merge_key, node.list_type, node.list_map_keys) == (
        strategy, merge_key, list_type, keys)


def test_node_shapes() -> None:
    labels = _field(".v1.Pod.metadata.labels")
    assert labels.is_map and labels.type == "object" and labels.child("anything") is not None
    containers = _field(".v1.Pod.spec.containers")
    assert containers.is_array and containers.items() is not None and not containers.is_map
    assert "name" in containers.items().required
    assert _field(".v1.Pod.spec").child("nope") is None
    assert "containers" in _field(".v1.Pod.spec.containers").description.lower()
    assert _field(".v1.Pod.spec.nodeSelector").map_type == "atomic"


def test_smp_supported() -> None:
    schema.smp_supported(schema.schema_for("", "v1", "Pod"))
    with pytest.raises(StatusError) as err:
        schema.smp_supported(None)
    assert err.value.code == 415


def test_openapi_schemas() -> None:
    out = schema.openapi_schemas()
    assert len(out) == len(schema.definitions())
    text = json.dumps(out)
    assert "#/$defs/" not in text and '"null"' not in text
    strategy = out["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"]
    assert strategy["allOf"] == [{"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentStrategy"}]
    assert strategy["x-kubernetes-patch-strategy"] == "retainKeys"
    deployment = out["io.k8s.api.apps.v1.Deployment"]
    assert deployment["type"] == "object"
    assert deployment["x-kubernetes-group-version-kind"] == [{"group": "apps", "kind": "Deployment", "version": "v1"}]
    assert "enum" not in deployment["properties"]["kind"]
    assert out["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]["items"] == {
        "$ref": "#/components/schemas/io.k8s.api.core.v1.Container"}
    assert out["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["format"] == "int-or-string"
