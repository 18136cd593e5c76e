"""Discovery documents and Accept negotiation, as kubectl 1.27–1.33 and the python client see them.

The expected values come from the wire-protocol reference (§1.5, §3, §15) and from a
real kube-apiserver (storageVersionHash values).
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from kubeling.api.registry import Registry, ResourceInfo, Subresource
from kubeling.apiserver import discovery, negotiation

ACCEPT_127 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
ACCEPT_133 = ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
              "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json")
TABLE_ACCEPT = ("application/json;as=Table;v=v1;g=meta.k8s.io,"
                "application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json")


def _crontab() -> ResourceInfo:
    crd = {"spec": {"group": "stable.example.com", "names": {"kind": "CronTab", "plural": "crontabs"},
                    "versions": [{"name": "v1", "served": True, "storage": True}]}}
    return ResourceInfo("stable.example.com", "v1", "crontabs", "CronTab", True, short_names=("ct",),
                        subresources=(Subresource("status", "CronTab", ("get", "patch", "update")),), crd=crd)


# ---- negotiation -------------------------------------------------------------------------

@pytest.mark.parametrize(("accept", "expected"), [
    (ACCEPT_127, "v2beta1"),
    (ACCEPT_133, "v2"),
    ("application/json", None),
    ("*/*", None),
    ("", None),
    (None, None),
    ("application/json, */*", None),
    ("application/vnd.kubernetes.protobuf,application/json", None),
    ("application/json," + ACCEPT_133, None),  # plain JSON listed first wins
    ("application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList,application/json", None),
    ("application/json;q=0.5,application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList", "v2"),
], ids=["kubectl-1.27", "kubectl-1.33", "json", "any", "empty", "none", "json-any", "protobuf-json",
        "json-first", "unknown-version", "q-order"])
def test_aggregated_discovery_version(accept: str | None, expected: str | None) -> None:
    assert negotiation.aggregated_discovery_version(accept) == expected


@pytest.mark.parametrize(("accept", "expected"), [
    (TABLE_ACCEPT, "v1"),
    ("application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json", "v1beta1"),
    ("application/json", None),
    ("application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json", None),
    ("application/json," + TABLE_ACCEPT, None),
    ("application/json;as=Table;v=v2;g=meta.k8s.io", None),
    ("application/json;as=Table;v=v1;g=other.io", None),
    ("", None),
], ids=["kubectl-get", "v1beta1", "json", "partial-metadata", "json-first", "bad-version", "bad-group", "empty"])
def test_table_version(accept: str, expected: str | None) -> None:
    assert negotiation.table_version(accept) == expected
    assert negotiation.wants_table(accept) is (expected is not None)


def test_parse_accept_keeps_params_and_client_order() -> None:
    ranges = negotiation.parse_accept("application/vnd.kubernetes.protobuf, */*;q=0.9, " + TABLE_ACCEPT)
    assert [r.media_type for r in ranges] == [
        "application/vnd.kubernetes.protobuf", "application/json", "application/json", "application/json", "*/*"]
    assert ranges[1].params == {"as": "Table", "v": "v1", "g": "meta.k8s.io"}
    assert ranges[-1].q == 0.9


@pytest.mark.parametrize("text", ["1", "t", "T", "TRUE", "true", "True"])
def test_parse_bool_true(text: str) -> None:
    assert negotiation.parse_bool(text) is True


@pytest.mark.parametrize("text", ["0", "f", "F", "FALSE", "false", "False"])
def test_parse_bool_false(text: str) -> None:
    assert negotiation.parse_bool(text) is False


@pytest.mark.parametrize("text", ["", "yes", "tRUE", "2", " true"])
def test_parse_bool_invalid(text: str) -> None:
    with pytest.raises(ValueError):
        negotiation.parse_bool(text)


# ---- legacy discovery ----------------------------------------------------------------------

def test_version_info_satisfies_python_client() -> None:
    info = discovery.version_info()
    model = client.VersionInfo.from_dict(info)
    assert model is not None and model.major == "1" and model.minor == "33"
    assert info["gitVersion"].startswith("v1.33.")


def test_api_versions() -> None:
    body = discovery.api_versions("127.0.0.1:6443")
    assert body == {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [
        {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]}
    assert client.V1APIVersions.from_dict(body) is not None


def test_api_group_list_excludes_core_and_prefers_autoscaling_v2() -> None:
    body = discovery.api_group_list(Registry())
    assert client.V1APIGroupList.from_dict(body) is not None
    groups = {g["name"]: g for g in body["groups"]}
    assert "" not in groups and list(groups)[0] == "apps"
    assert groups["autoscaling"]["preferredVersion"] == {"groupVersion": "autoscaling/v2", "version": "v2"}
    assert [v["version"] for v in groups["autoscaling"]["versions"]] == ["v2", "v1"]


@pytest.mark.parametrize(("group", "found"), [("apps", True), ("autoscaling", True), ("", False), ("nope", False)])
def test_api_group(group: str, found: bool) -> None:
    body = discovery.api_group(Registry(), group)
    assert (body is not None) is found
    if body:
        assert body["kind"] == "APIGroup" and body["name"] == group
        assert client.V1APIGroup.from_dict(body) is not None


def _entry(body: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r for r in body["resources"] if r["name"] == name)


@pytest.mark.parametrize(("group", "version", "name", "expected"), [
    ("", "v1", "pods", {"singularName": "pod", "namespaced": True, "kind": "Pod", "shortNames": ["po"],
                        "categories": ["all"], "storageVersionHash": "xPOwRZ+Yhw8=",
                        "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]}),
    ("", "v1", "services", {"shortNames": ["svc"], "storageVersionHash": "0/CO1lhkEBI="}),
    ("", "v1", "nodes", {"namespaced": False, "shortNames": ["no"]}),
    ("", "v1", "pods/status", {"singularName": "", "kind": "Pod", "verbs": ["get", "patch", "update"]}),
    ("", "v1", "pods/eviction", {"group": "policy", "version": "v1", "kind": "Eviction", "verbs": ["create"]}),
    ("apps", "v1", "deployments", {"singularName": "deployment", "shortNames": ["deploy"],
                                   "storageVersionHash": "8aSe+NMegvE="}),
    ("apps", "v1", "deployments/scale", {"group": "autoscaling", "version": "v1", "kind": "Scale",
                                         "singularName": ""}),
    ("apps", "v1", "deployments/status", {"kind": "Deployment"}),
    # HPA v1 is stored as v2, so both versions report the v2 storage hash.
    ("autoscaling", "v1", "horizontalpodautoscalers",
     {"storageVersionHash": discovery.storage_version_hash("autoscaling", "v2", "HorizontalPodAutoscaler")}),
], ids=lambda v: v if isinstance(v, str) and v else None)
def test_api_resource_list_entries(group: str, version: str, name: str, expected: dict[str, Any]) -> None:
    body = discovery.api_resource_list(Registry(), group, version)
    assert body is not None
    entry = _entry(body, name)
    assert {k: entry.get(k) for k in expected} == expected
    if "/" in name:
        assert "storageVersionHash" not in entry and "shortNames" not in entry
        if "group" not in expected:
            assert "group" not in entry and "version" not in entry


@pytest.mark.parametrize(("group", "version"), [("", "v1"), ("apps", "v1"), ("autoscaling", "v1"), ("batch", "v1")])
def test_api_resource_list_satisfies_python_client(group: str, version: str) -> None:
    body = discovery.api_resource_list(Registry(), group, version)
    assert body is not None and body["groupVersion"] == (f"{group}/{version}" if group else version)
    names = [r["name"] for r in body["resources"]]
    assert names == sorted(names)
    model = client.V1APIResourceList.from_dict(body)
    assert model is not None and len(model.resources) == len(body["resources"])


def test_api_resource_list_unknown() -> None:
    assert discovery.api_resource_list(Registry(), "apps", "v9") is None


# ---- aggregated discovery ------------------------------------------------------------------

@pytest.mark.parametrize("version", ["v2", "v2beta1"])
def test_aggregated_core(version: str) -> None:
    body = discovery.aggregated_discovery(Registry(), core=True, version=version)
    assert body["kind"] == "APIGroupDiscoveryList"
    assert body["apiVersion"] == f"apidiscovery.k8s.io/{version}"
    assert [i["metadata"]["name"] for i in body["items"]] == [""]
    (v1,) = body["items"][0]["versions"]
    assert v1["version"] == "v1" and v1["freshness"] == "Current"
    names = [r["resource"] for r in v1["resources"]]
    assert names == sorted(names)
    pods = next(r for r in v1["resources"] if r["resource"] == "pods")
    assert pods["scope"] == "Namespaced" and pods["singularResource"] == "pod"
    assert pods["responseKind"] == {"group": "", "version": "", "kind": "Pod"}
    assert pods["shortNames"] == ["po"] and pods["categories"] == ["all"]
    subs = {s["subresource"]: s for s in pods["subresources"]}
    assert subs["eviction"]["responseKind"] == {"group": "policy", "version": "v1", "kind": "Eviction"}
    assert subs["status"]["verbs"] == ["get", "patch", "update"]
    nodes = next(r for r in v1["resources"] if r["resource"] == "nodes")
    assert nodes["scope"] == "Cluster"


def test_aggregated_groups() -> None:
    body = discovery.aggregated_discovery(Registry(), core=False, version="v2")
    items = {i["metadata"]["name"]: i for i in body["items"]}
    assert "" not in items and "apps" in items
    assert [v["version"] for v in items["autoscaling"]["versions"]] == ["v2", "v1"]
    deploy = next(r for r in items["apps"]["versions"][0]["resources"] if r["resource"] == "deployments")
    scale = next(s for s in deploy["subresources"] if s["subresource"] == "scale")
    assert scale["responseKind"] == {"group": "autoscaling", "version": "v1", "kind": "Scale"}
    assert discovery.AGGREGATED_CONTENT_TYPE.format(v="v2") == (
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList")


def test_etag_stable_and_tracks_crds() -> None:
    first = discovery.json_etag(discovery.aggregated_discovery(Registry(), core=False, version="v2"))
    again = discovery.json_etag(discovery.aggregated_discovery(Registry(), core=False, version="v2"))
    assert first == again and first.startswith('"') and len(first) == 130
    registry = Registry()
    fingerprint = discovery.registry_fingerprint(registry)
    registry.add(_crontab())
    assert discovery.registry_fingerprint(registry) != fingerprint
    changed = discovery.aggregated_discovery(registry, core=False, version="v2")
    assert discovery.json_etag(changed) != first
    crontabs = {i["metadata"]["name"]: i for i in changed["items"]}["stable.example.com"]
    assert crontabs["versions"][0]["resources"][0]["shortNames"] == ["ct"]
