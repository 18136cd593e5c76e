"""OpenAPI v3 index and documents, checked the way kubectl reads them.

The helpers below re-implement, in a few lines each, what kubectl does with a
document: the fieldValidation verifier (cli-runtime query_param_verifier_v3.go),
apply's strategic-merge-patch support check (kubectl apply/patcher.go) and
`kubectl explain`'s GVK lookup and `$ref`/`allOf` walk (explain/v2 plaintext.tmpl).
"""

from __future__ import annotations

import re
import sys
import time
from typing import Any

import orjson
import pytest

import kubeling.api
from kubeling.api.registry import Registry, ResourceInfo, Subresource
from kubeling.apiserver import openapi

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "crontabs.stable.example.com"},
    "spec": {"group": "stable.example.com", "scope": "Namespaced",
             "names": {"kind": "CronTab", "plural": "crontabs", "singular": "crontab"},
             "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                 "type": "object", "properties": {"spec": {"type": "object", "description": "The spec.",
                                                           "properties": {"cronSpec": {"type": "string"}}}}}}}]},
}


@pytest.fixture(autouse=True)
def fresh_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(openapi, "_cache", openapi._Cache())


def _crontab(crd_field: dict[str, Any]) -> ResourceInfo:
    return ResourceInfo("stable.example.com", "v1", "crontabs", "CronTab", True,
                        subresources=(Subresource("status", "CronTab", ("get", "patch", "update")),), crd=crd_field)


def _with_crd() -> Registry:
    registry = Registry()
    registry.add(_crontab(CRD))
    return registry


def _doc(registry: Registry, gv: str) -> dict[str, Any]:
    doc = openapi.openapi_v3_document(registry, gv)
    assert doc is not None
    return doc


def _patch_ops(doc: dict[str, Any], gvk: dict[str, str]) -> list[dict[str, Any]]:
    return [item["patch"] for item in doc["paths"].values()
            if "patch" in item and item["patch"]["x-kubernetes-group-version-kind"] == gvk]


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Follow `$ref` and single-element `allOf` wrappers, as explain and the SMP code do."""
    while True:
        if "$ref" in schema:
            schema = doc["components"]["schemas"][schema["$ref"].removeprefix(openapi.SCHEMA_PREFIX)]
        elif len(schema.get("allOf", ())) == 1 and "properties" not in schema:
            schema = schema["allOf"][0]
        else:
            return schema


def _explain(doc: dict[str, Any], prefix: str, resource: str, field_path: list[str]) -> dict[str, Any]:
    """kubectl explain: GVK from the resource's paths, then the component schema carrying it."""
    gvk = None
    for path in (f"{prefix}/{resource}", f"{prefix}/{resource}/{{name}}",
                 f"{prefix}/namespaces/{{namespace}}/{resource}", f"{prefix}/namespaces/{{namespace}}/{resource}/{{name}}"):
        for method in ("get", "post", "put", "patch", "delete"):
            gvk = gvk or doc["paths"].get(path, {}).get(method, {}).get("x-kubernetes-group-version-kind")
    assert gvk is not None, "GVR not found in OpenAPI schema"
    schema = next(s for s in doc["components"]["schemas"].values()
                  if gvk in s.get("x-kubernetes-group-version-kind", []))
    for name in field_path:
        schema = _resolve(doc, schema)
        schema = _resolve(doc, schema.get("items", schema))["properties"][name]
    schema = _resolve(doc, schema)
    return _resolve(doc, schema.get("items", schema))


# ---- index --------------------------------------------------------------------------------

def test_index_lists_every_group_version_with_hash() -> None:
    index = openapi.openapi_v3_index(Registry())
    assert {"api/v1", "apis/apps/v1", "apis/autoscaling/v1", "apis/autoscaling/v2"} <= set(index["paths"])
    for path, entry in index["paths"].items():
        url, _, digest = entry["serverRelativeURL"].partition("?hash=")
        assert url == f"/openapi/v3/{path}"
        assert re.fullmatch(r"[0-9A-F]{128}", digest)
        body, body_hash = openapi.openapi_v3_document_bytes(Registry(), path) or (b"", "")
        assert body_hash == digest == openapi.openapi_v3_hash(orjson.loads(body))


def test_hashes_stable_and_only_the_crd_group_changes() -> None:
    before = openapi.openapi_v3_index(Registry())["paths"]
    assert openapi.openapi_v3_index(Registry())["paths"] == before
    after = openapi.openapi_v3_index(_with_crd())["paths"]
    assert set(after) - set(before) == {"apis/stable.example.com/v1"}
    assert {k: after[k] for k in before} == before


@pytest.mark.parametrize("gv", ["apis/apps", "api", "apis/apps/v9", "apis/nope/v1", "openid/v1/jwks", ""])
def test_unknown_paths(gv: str) -> None:
    assert openapi.openapi_v3_document(Registry(), gv) is None


# ---- operations ---------------------------------------------------------------------------

@pytest.mark.parametrize(("gv", "path", "method", "op_id", "action", "gvk"), [
    ("apis/apps/v1", "/apis/apps/v1/namespaces/{namespace}/deployments/{name}", "patch",
     "patchAppsV1NamespacedDeployment", "patch", ("apps", "v1", "Deployment")),
    ("apis/apps/v1", "/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale", "patch",
     "patchAppsV1NamespacedDeploymentScale", "patch", ("autoscaling", "v1", "Scale")),
    ("apis/apps/v1", "/apis/apps/v1/deployments", "get", "listAppsV1DeploymentForAllNamespaces", "list",
     ("apps", "v1", "Deployment")),
    ("api/v1", "/api/v1/namespaces/{namespace}/pods", "delete", "deleteCoreV1CollectionNamespacedPod",
     "deletecollection", ("", "v1", "Pod")),
    ("api/v1", "/api/v1/namespaces/{namespace}/pods/{name}/eviction", "post",
     "createCoreV1NamespacedPodEviction", "post", ("policy", "v1", "Eviction")),
    ("api/v1", "/api/v1/nodes/{name}", "get", "readCoreV1Node", "get", ("", "v1", "Node")),
    ("api/v1", "/api/v1/namespaces/{namespace}/services/{name}/status", "put",
     "replaceCoreV1NamespacedServiceStatus", "put", ("", "v1", "Service")),
    ("apis/networking.k8s.io/v1", "/apis/networking.k8s.io/v1/ingressclasses", "post",
     "createNetworkingV1IngressClass", "post", ("networking.k8s.io", "v1", "IngressClass")),
], ids=lambda v: v if isinstance(v, str) and v.islower() is False and "/" not in v else None)
def test_operations_match_kube(gv: str, path: str, method: str, op_id: str, action: str,
                               gvk: tuple[str, str, str]) -> None:
    op = _doc(Registry(), gv)["paths"][path][method]
    assert op["operationId"] == op_id
    assert op["x-kubernetes-action"] == action
    assert op["x-kubernetes-group-version-kind"] == dict(zip(("group", "version", "kind"), gvk, strict=True))


@pytest.mark.parametrize(("registry", "gv", "gvk", "smp"), [
    (Registry(), "apis/apps/v1", {"group": "apps", "kind": "Deployment", "version": "v1"}, True),
    (Registry(), "api/v1", {"group": "", "kind": "Namespace", "version": "v1"}, True),
    (_with_crd(), "apis/stable.example.com/v1", {"group": "stable.example.com", "kind": "CronTab", "version": "v1"},
     False),
], ids=["deployment", "namespace", "crd"])
def test_patch_verifier_and_smp_support(registry: Registry, gv: str, gvk: dict[str, str], smp: bool) -> None:
    ops = _patch_ops(_doc(registry, gv), gvk)
    assert ops
    for op in ops:
        params = {(p["name"], p["in"]) for p in op["parameters"]}
        assert {("fieldValidation", "query"), ("dryRun", "query"), ("fieldManager", "query"), ("force", "query")} <= params
        assert ("application/strategic-merge-patch+json" in op["requestBody"]["content"]) is smp
        assert "application/merge-patch+json" in op["requestBody"]["content"]


def test_post_and_put_take_field_validation() -> None:
    item = _doc(Registry(), "apis/apps/v1")["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments"]
    assert {"fieldValidation", "fieldManager", "dryRun"} <= {p["name"] for p in item["post"]["parameters"]}
    assert "requestBody" not in item["get"]


# ---- components ---------------------------------------------------------------------------

@pytest.mark.parametrize("gv", ["api/v1", "apis/apps/v1", "apis/batch/v1", "apis/autoscaling/v2"])
def test_components_are_closed_under_ref(gv: str) -> None:
    doc = _doc(_with_crd(), gv)
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', orjson.dumps(doc).decode()))
    assert refs and refs <= set(doc["components"]["schemas"])
    assert "io.k8s.api.batch.v1.Job" not in doc["components"]["schemas"] or gv == "apis/batch/v1"


@pytest.mark.parametrize(("registry", "prefix", "resource", "field_path", "expect"), [
    (Registry(), "/apis/apps/v1", "deployments", ["spec"], "replicas"),
    (Registry(), "/apis/apps/v1", "deployments", ["spec", "template", "spec", "containers"], "ports"),
    (Registry(), "/api/v1", "pods", ["spec", "containers", "ports"], "containerPort"),
    (Registry(), "/api/v1", "nodes", ["status", "nodeInfo"], "architecture"),
    (_with_crd(), "/apis/stable.example.com/v1", "crontabs", ["spec"], "cronSpec"),
    (_with_crd(), "/apis/stable.example.com/v1", "crontabs", ["metadata"], "labels"),
], ids=["deployment.spec", "containers", "pod.ports", "node.nodeInfo", "crontab.spec", "crontab.metadata"])
def test_explain_walk(registry: Registry, prefix: str, resource: str, field_path: list[str], expect: str) -> None:
    gv = prefix.strip("/")
    schema = _explain(_doc(registry, gv), prefix, resource, field_path)
    assert expect in schema["properties"]


def test_deployment_schema_keeps_patch_metadata() -> None:
    containers = _explain(_doc(Registry(), "apis/apps/v1"), "/apis/apps/v1", "deployments",
                          ["spec", "template", "spec"])["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-patch-strategy"].startswith("merge")


@pytest.mark.parametrize("crd_field", [CRD, {"crd": CRD, "version": CRD["spec"]["versions"][0]}],
                         ids=["crd", "crd-and-version"])
def test_crd_component_schemas(crd_field: dict[str, Any]) -> None:
    schemas = openapi.crd_component_schemas(_crontab(crd_field))
    kind, lst = schemas["com.example.stable.v1.CronTab"], schemas["com.example.stable.v1.CronTabList"]
    assert kind["x-kubernetes-group-version-kind"] == [
        {"group": "stable.example.com", "kind": "CronTab", "version": "v1"}]
    assert kind["properties"]["metadata"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}]
    assert kind["properties"]["spec"]["properties"]["cronSpec"] == {"type": "string"}
    assert lst["properties"]["items"]["items"] == {"$ref": "#/components/schemas/com.example.stable.v1.CronTab"}
    assert "metadata" not in CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]  # not mutated


def test_crd_without_schema_preserves_unknown_fields() -> None:
    bare = {"spec": {"group": "x.io", "versions": [{"name": "v1", "served": True, "storage": True}]}}
    info = ResourceInfo("x.io", "v1", "things", "Thing", False, crd=bare)
    schema = openapi.crd_component_schemas(info)["io.x.v1.Thing"]
    assert schema["x-kubernetes-preserve-unknown-fields"] is True


def test_document_shape_and_speed() -> None:
    registry = _with_crd()
    start = time.perf_counter()
    doc = _doc(registry, "api/v1")
    assert time.perf_counter() - start < 0.2
    assert doc["openapi"] == "3.0.0" and doc["info"] == {"title": "Kubernetes", "version": "v1.33.0"}
    assert "/api/v1/" in doc["paths"]
    assert openapi.openapi_v3_document(registry, "api/v1") is doc  # cached per registry state


def test_missing_schema_module_degrades(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "kubeling.api.schema", None)
    monkeypatch.delattr(kubeling.api, "schema", raising=False)
    doc = _doc(Registry(), "apis/apps/v1")
    assert doc["components"]["schemas"] == {}
    assert _patch_ops(doc, {"group": "apps", "kind": "Deployment", "version": "v1"})


# ---- v2 -----------------------------------------------------------------------------------

def test_v2_json_uses_definitions() -> None:
    v2 = openapi.openapi_v2_json(_with_crd())
    assert v2["swagger"] == "2.0"
    text = orjson.dumps(v2).decode()
    assert '"$ref":"#/components/' not in text and '"allOf":[' not in text
    props = v2["definitions"]["io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps"]["properties"]
    assert {"allOf", "anyOf", "oneOf", "not", "nullable"} <= set(props)  # field names survive
    meta = v2["definitions"]["io.k8s.api.apps.v1.Deployment"]["properties"]["metadata"]
    assert meta["$ref"] == "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    assert "com.example.stable.v1.CronTab" in v2["definitions"]
    assert openapi.openapi_v2_protobuf_empty() == b""
    assert "@" not in openapi.V2_PROTOBUF_CONTENT_TYPE
