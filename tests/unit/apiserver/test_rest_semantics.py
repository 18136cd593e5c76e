"""Kubernetes API semantics of the generic REST storage, over HTTP."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from .conftest import API

CM = "/api/v1/namespaces/default/configmaps"
DEP = "/apis/apps/v1/namespaces/default/deployments"


def deployment(name: str = "web", replicas: int = 1) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}


async def test_system_namespaces_and_default_service_accounts(api: API) -> None:
    code, body = await api.call("GET", "/api/v1/namespaces")
    assert code == 200
    names = {i["metadata"]["name"] for i in body["items"]}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names
    code, sa = await api.call("GET", "/api/v1/namespaces/kube-system/serviceaccounts/default")
    assert code == 200 and sa["kind"] == "ServiceAccount"
    await api.call("POST", "/api/v1/namespaces", {"metadata": {"name": "fresh"}})
    code, _ = await api.call("GET", "/api/v1/namespaces/fresh/serviceaccounts/default")
    assert code == 200


async def test_create_sets_metadata_and_conflicts(api: API) -> None:
    code, obj = await api.call("POST", CM, {"metadata": {"name": "a"}, "data": {"k": "v"}})
    assert code == 201
    meta = obj["metadata"]
    assert meta["uid"] and meta["creationTimestamp"] and int(meta["resourceVersion"]) > 0
    assert obj["kind"] == "ConfigMap" and obj["apiVersion"] == "v1"
    code, err = await api.call("POST", CM, {"metadata": {"name": "a"}})
    assert code == 409 and err["reason"] == "AlreadyExists"
    assert err["message"] == 'configmaps "a" already exists'
    stale = dict(obj, data={"k": "2"})
    code, _ = await api.call("PUT", f"{CM}/a", stale)
    assert code == 200
    code, err = await api.call("PUT", f"{CM}/a", dict(obj, data={"k": "3"}))
    assert code == 409 and err["reason"] == "Conflict"


async def test_generate_name(api: API) -> None:
    code, obj = await api.call("POST", CM, {"metadata": {"generateName": "gen-"}})
    assert code == 201 and obj["metadata"]["name"].startswith("gen-") and len(obj["metadata"]["name"]) == 9


async def test_generation_counts_spec_changes_only(api: API) -> None:
    _, d = await api.call("POST", DEP, deployment())
    assert d["metadata"]["generation"] == 1
    _, d = await api.call("PATCH", f"{DEP}/web", {"metadata": {"labels": {"x": "y"}}},
                          content_type="application/merge-patch+json")
    assert d["metadata"]["generation"] == 1
    _, d = await api.call("PATCH", f"{DEP}/web", {"spec": {"replicas": 3}},
                          content_type="application/merge-patch+json")
    assert d["metadata"]["generation"] == 2


async def test_status_subresource_isolation(api: API) -> None:
    _, d = await api.call("POST", DEP, dict(deployment(), status={"replicas": 9}))
    assert "replicas" not in (d.get("status") or {})
    d["status"] = {"replicas": 2}
    d["spec"]["replicas"] = 5
    code, d2 = await api.call("PUT", f"{DEP}/web/status", d)
    assert code == 200 and d2["status"]["replicas"] == 2 and d2["spec"]["replicas"] == 1
    d2["status"] = {"replicas": 7}
    code, d3 = await api.call("PUT", f"{DEP}/web", d2)
    assert d3["status"]["replicas"] == 2


async def test_validation_is_422_with_causes(api: API) -> None:
    bad = deployment("bad")
    del bad["spec"]["template"]["spec"]["containers"][0]["name"]
    code, err = await api.call("POST", DEP, bad)
    assert code == 422 and err["reason"] == "Invalid"
    assert err["message"] == 'Deployment.apps "bad" is invalid: spec.template.spec.containers[0].name: Required value'
    assert err["details"]["causes"][0]["field"] == "spec.template.spec.containers[0].name"
    assert err["details"]["kind"] == "Deployment" and err["details"]["group"] == "apps"


@pytest.mark.parametrize(("raw", "ctype", "code"), [
    (b"{not json", "application/json", 400),
    (b"- a\n- : b: c", "application/yaml", 400),
    (b"[1,2]", "application/json", 400),
], ids=["bad-json", "bad-yaml", "not-an-object"])
async def test_malformed_bodies_are_400(api: API, raw: bytes, ctype: str, code: int) -> None:
    status, err = await api.call("POST", CM, raw=raw, content_type=ctype)
    assert status == code and err["kind"] == "Status"


async def test_body_too_large_is_413(api: API) -> None:
    big = {"metadata": {"name": "big"}, "data": {"x": "y" * (3 * 1024 * 1024 + 10)}}
    code, err = await api.call("POST", CM, big)
    assert code == 413 and err["code"] == 413


async def test_unknown_resource_and_missing_namespace(api: API) -> None:
    code, err = await api.call("GET", "/api/v1/namespaces/default/nothings")
    assert code == 404 and err["kind"] == "Status"
    code, err = await api.call("POST", "/api/v1/namespaces/nope/configmaps", {"metadata": {"name": "x"}})
    assert code == 404 and err["message"] == 'namespaces "nope" not found'


async def test_finalizers_hold_deletion(api: API) -> None:
    await api.call("POST", CM, {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}})
    code, obj = await api.call("DELETE", f"{CM}/held")
    assert code == 200 and obj["metadata"]["deletionTimestamp"]
    code, obj = await api.call("GET", f"{CM}/held")
    assert code == 200
    code, _ = await api.call("PATCH", f"{CM}/held", {"metadata": {"finalizers": None}},
                             content_type="application/merge-patch+json")
    assert code == 200
    code, _ = await api.call("GET", f"{CM}/held")
    assert code == 404


async def test_propagation_policy_recorded_as_finalizers(api: API) -> None:
    await api.call("POST", DEP, deployment("fg"))
    code, obj = await api.call("DELETE", f"{DEP}/fg", {"propagationPolicy": "Foreground"})
    assert code == 200 and "foregroundDeletion" in obj["metadata"]["finalizers"]
    await api.call("POST", DEP, deployment("or"))
    code, obj = await api.call("DELETE", f"{DEP}/or", {"propagationPolicy": "Orphan"})
    assert "orphan" in obj["metadata"]["finalizers"]
    await api.call("POST", DEP, deployment("bg"))
    code, obj = await api.call("DELETE", f"{DEP}/bg", {"propagationPolicy": "Background"})
    assert code == 200 and obj["status"] == "Success"


async def test_namespace_delete_marks_terminating(api: API) -> None:
    await api.call("POST", "/api/v1/namespaces", {"metadata": {"name": "gone"}})
    code, ns = await api.call("DELETE", "/api/v1/namespaces/gone")
    assert code == 200 and ns["status"]["phase"] == "Terminating"
    code, err = await api.call("POST", "/api/v1/namespaces/gone/configmaps", {"metadata": {"name": "x"}})
    assert code == 403 and "being terminated" in err["message"]
    code, _ = await api.call("PUT", "/api/v1/namespaces/gone/finalize",
                             {"metadata": {"name": "gone"}, "spec": {"finalizers": []}})
    assert code == 200
    code, _ = await api.call("GET", "/api/v1/namespaces/gone")
    assert code == 404


async def test_dry_run_writes_nothing(api: API) -> None:
    code, obj = await api.call("POST", f"{CM}?dryRun=All", {"metadata": {"name": "dry"}})
    assert code == 201 and obj["metadata"]["uid"]
    code, _ = await api.call("GET", f"{CM}/dry")
    assert code == 404


async def test_list_paging_is_consistent(api: API) -> None:
    for i in range(7):
        await api.call("POST", CM, {"metadata": {"name": f"p{i}", "labels": {"n": str(i % 2)}}})
    _, first = await api.call("GET", f"{CM}?limit=3")
    assert len(first["items"]) == 3 and first["metadata"]["continue"]
    await api.call("POST", CM, {"metadata": {"name": "p99"}})  # created after the first page
    names = [i["metadata"]["name"] for i in first["items"]]
    token = first["metadata"]["continue"]
    while token:
        _, page = await api.call("GET", f"{CM}?limit=3&continue={token}")
        names += [i["metadata"]["name"] for i in page["items"]]
        token = page["metadata"].get("continue")
    assert names == [f"p{i}" for i in range(7)]
    _, odd = await api.call("GET", f"{CM}?labelSelector=n%3D1&limit=2")
    assert [i["metadata"]["name"] for i in odd["items"]] == ["p1", "p3"]


async def test_field_selectors(api: API) -> None:
    await api.call("POST", CM, {"metadata": {"name": "fs"}})
    _, res = await api.call("GET", "/api/v1/configmaps?fieldSelector=metadata.name%3Dfs")
    assert [i["metadata"]["name"] for i in res["items"]] == ["fs"]
    code, err = await api.call("GET", f"{CM}?fieldSelector=spec.bogus%3D1")
    assert code == 400 and err["kind"] == "Status"


async def _watch(api: API, path: str, n: int) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    async with api.client.get(path) as resp:
        assert resp.status == 200
        while len(out) < n:
            line = await asyncio.wait_for(resp.content.readline(), 5)
            ev = orjson.loads(line)
            out.append((ev["type"], ev["object"].get("metadata", {}).get("name", ev["object"].get("reason"))))
    return out


async def test_watch_replays_and_follows_selector_transitions(api: API) -> None:
    _, a = await api.call("POST", CM, {"metadata": {"name": "w", "labels": {"sel": "yes"}}})
    rv = a["metadata"]["resourceVersion"]
    await api.call("PATCH", f"{CM}/w", {"metadata": {"labels": {"sel": "no"}}},
                   content_type="application/merge-patch+json")
    await api.call("PATCH", f"{CM}/w", {"metadata": {"labels": {"sel": "yes"}}},
                   content_type="application/merge-patch+json")
    await api.call("DELETE", f"{CM}/w")
    events = await _watch(api, f"{CM}?watch=true&resourceVersion={rv}&labelSelector=sel%3Dyes", 3)
    assert events == [("DELETED", "w"), ("ADDED", "w"), ("DELETED", "w")]


async def test_watch_without_rv_starts_with_current_state(api: API) -> None:
    await api.call("POST", CM, {"metadata": {"name": "existing"}})
    events = await _watch(api, f"{CM}?watch=1", 1)
    assert events == [("ADDED", "existing")]


async def test_watch_timeout_closes_stream(api: API) -> None:
    _, cm = await api.call("POST", CM, {"metadata": {"name": "t"}})
    rv = int(cm["metadata"]["resourceVersion"]) - 1
    async with api.client.get(f"{CM}?watch=true&resourceVersion={rv}&timeoutSeconds=1") as resp:
        body = await asyncio.wait_for(resp.read(), 5)  # ends by itself after ~1 s
    assert body.count(b"\n") == 1 and b'"ADDED"' in body


async def test_watch_from_compacted_revision_is_410_error_event(api: API) -> None:
    for i in range(5):
        await api.call("POST", CM, {"metadata": {"name": f"c{i}"}})
    current = await api.server.store.current_revision()
    await api.server.store.compact(current)
    events: list[dict] = []
    async with api.client.get(f"{CM}?watch=true&resourceVersion=2") as resp:
        line = await asyncio.wait_for(resp.content.readline(), 5)
        events.append(orjson.loads(line))
    assert events[0]["type"] == "ERROR" and events[0]["object"]["code"] == 410
    assert events[0]["object"]["reason"] == "Expired"


async def test_send_initial_events_is_refused(api: API) -> None:
    code, err = await api.call("GET", f"{CM}?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
                                      "&allowWatchBookmarks=true&resourceVersion=")
    assert 400 <= code < 500 and err["kind"] == "Status"


async def test_scale_subresource(api: API) -> None:
    await api.call("POST", DEP, deployment("sc", 2))
    code, scale = await api.call("GET", f"{DEP}/sc/scale")
    assert code == 200 and scale["kind"] == "Scale" and scale["spec"]["replicas"] == 2
    assert scale["status"]["selector"] == "app=sc"
    code, scale = await api.call("PATCH", f"{DEP}/sc/scale", {"spec": {"replicas": 5}},
                                 content_type="application/merge-patch+json")
    assert code == 200 and scale["spec"]["replicas"] == 5
    _, d = await api.call("GET", f"{DEP}/sc")
    assert d["spec"]["replicas"] == 5
    code, err = await api.call("PATCH", f"{DEP}/sc/scale", {"spec": {"replicas": -1}},
                               content_type="application/merge-patch+json")
    assert code == 422


async def test_binding_and_eviction(api: API) -> None:
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    code, p = await api.call("POST", "/api/v1/namespaces/default/pods", pod)
    assert code == 201 and p["status"]["phase"] == "Pending" and p["status"]["qosClass"] == "BestEffort"
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
               "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"}}
    code, _ = await api.call("POST", "/api/v1/namespaces/default/pods/p/binding", binding)
    assert code == 201
    _, p = await api.call("GET", "/api/v1/namespaces/default/pods/p")
    assert p["spec"]["nodeName"] == "n1"
    assert any(c["type"] == "PodScheduled" and c["status"] == "True" for c in p["status"]["conditions"])
    code, err = await api.call("POST", "/api/v1/namespaces/default/pods/p/binding", binding)
    assert code == 409
    # Bound and running: deletion is graceful (the kubelet finishes it).
    code, p = await api.call("POST", "/api/v1/namespaces/default/pods/p/eviction",
                             {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "p"}})
    assert code == 201
    _, p = await api.call("GET", "/api/v1/namespaces/default/pods/p")
    assert p["metadata"]["deletionTimestamp"] and p["metadata"]["deletionGracePeriodSeconds"] == 30
    code, _ = await api.call("DELETE", "/api/v1/namespaces/default/pods/p", {"gracePeriodSeconds": 0})
    assert code == 200
    code, _ = await api.call("GET", "/api/v1/namespaces/default/pods/p")
    assert code == 404


async def test_delete_collection(api: API) -> None:
    for i in range(3):
        await api.call("POST", CM, {"metadata": {"name": f"dc{i}", "labels": {"dc": "1"}}})
    code, res = await api.call("DELETE", f"{CM}?labelSelector=dc%3D1")
    assert code == 200 and len(res["items"]) == 3
    _, left = await api.call("GET", f"{CM}?labelSelector=dc")
    assert left["items"] == []


async def test_custom_resources(api: API) -> None:
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "widgets.example.com"},
           "spec": {"group": "example.com", "scope": "Namespaced",
                    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
                    "versions": [{"name": "v1", "served": True, "storage": True,
                                  "schema": {"openAPIV3Schema": {"type": "object",
                                                                 "x-kubernetes-preserve-unknown-fields": True}}}]}}
    code, created = await api.call("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    assert code == 201, created
    assert any(c["type"] == "Established" and c["status"] == "True" for c in created["status"]["conditions"])
    path = "/apis/example.com/v1/namespaces/default/widgets"
    code, w = await api.call("POST", path, {"apiVersion": "example.com/v1", "kind": "Widget",
                                            "metadata": {"name": "w1"}, "spec": {"size": 3}})
    assert code == 201 and w["metadata"]["generation"] == 1
    code, lst = await api.call("GET", path)
    assert [i["metadata"]["name"] for i in lst["items"]] == ["w1"]
    code, _ = await api.call("PATCH", f"{path}/w1", {"spec": {"size": 4}}, content_type="application/strategic-merge-patch+json")
    assert code == 415
    code, _ = await api.call("DELETE", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com")
    assert code == 200
    code, _ = await api.call("GET", path)
    assert code == 404


async def test_events_are_served_in_both_groups(api: API) -> None:
    ev = {"metadata": {"name": "e1"}, "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
          "reason": "Started", "message": "hello", "type": "Normal", "count": 1}
    code, _ = await api.call("POST", "/api/v1/namespaces/default/events", ev)
    assert code == 201
    code, e = await api.call("GET", "/apis/events.k8s.io/v1/namespaces/default/events/e1")
    assert code == 200 and e["note"] == "hello" and e["regarding"]["name"] == "p"


async def test_hpa_v1_and_v2_share_storage(api: API) -> None:
    hpa = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "h"},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                    "minReplicas": 1, "maxReplicas": 5, "targetCPUUtilizationPercentage": 60}}
    code, _ = await api.call("POST", "/apis/autoscaling/v1/namespaces/default/horizontalpodautoscalers", hpa)
    assert code == 201
    code, v2 = await api.call("GET", "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers/h")
    assert code == 200 and v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 60


async def test_custom_resources_are_validated_pruned_and_defaulted(api: API) -> None:
    schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "replicas": {"type": "integer", "minimum": 1, "default": 1},
        "mode": {"type": "string", "enum": ["fast", "safe"]}}}}}
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "gadgets.example.com"},
           "spec": {"group": "example.com", "scope": "Namespaced",
                    "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                    "versions": [{"name": "v1", "served": True, "storage": True,
                                  "schema": {"openAPIV3Schema": schema}}]}}
    code, _ = await api.call("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    assert code == 201
    path = "/apis/example.com/v1/namespaces/default/gadgets"
    code, g = await api.call("POST", path, {"apiVersion": "example.com/v1", "kind": "Gadget",
                                            "metadata": {"name": "g1"}, "spec": {"extra": 1}})
    assert code == 201 and g["spec"] == {"replicas": 1}  # unknown field pruned, default applied
    code, err = await api.call("POST", f"{path}?fieldValidation=Strict", {
        "apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g2"}, "spec": {"extra": 1}})
    assert code == 400 and 'unknown field "spec.extra"' in err["message"]
    code, err = await api.call("POST", path, {"apiVersion": "example.com/v1", "kind": "Gadget",
                                              "metadata": {"name": "g3"}, "spec": {"replicas": "x", "mode": "odd"}})
    assert code == 422 and err["reason"] == "Invalid"
    fields = {c["field"] for c in err["details"]["causes"]}
    assert fields == {"spec.replicas", "spec.mode"}


async def test_wrong_bearer_token_is_401_and_anonymous_is_served(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from aiohttp.test_utils import TestClient, TestServer

    from kubeling.apiserver.app import APIServer
    from kubeling.storage.sqlite import SQLiteStore

    server = APIServer(SQLiteStore(str(tmp_path / "s.db")), tokens={"right"})
    await server.start()
    client = TestClient(TestServer(server.app()))
    await client.start_server()
    try:
        async with client.get("/api/v1/namespaces", headers={"Authorization": "Bearer wrong"}) as r:
            body = await r.json()
            assert r.status == 401 and body["reason"] == "Unauthorized"
        async with client.get("/api/v1/namespaces", headers={"Authorization": "Bearer right"}) as r:
            assert r.status == 200
        async with client.get("/api/v1/namespaces") as r:
            assert r.status == 200
    finally:
        await client.close()
        await server.stop()


async def test_watch_survives_bookmarks(api: API, monkeypatch: pytest.MonkeyPatch) -> None:
    from kubeling.apiserver import watch as watch_module

    monkeypatch.setattr(watch_module, "BOOKMARK_INTERVAL", 0.3)
    _, first = await api.call("POST", CM, {"metadata": {"name": "bm0"}})
    rv = first["metadata"]["resourceVersion"]
    async with api.client.get(f"{CM}?watch=true&allowWatchBookmarks=true&resourceVersion={rv}") as resp:
        bookmark = orjson.loads(await asyncio.wait_for(resp.content.readline(), 5))
        assert bookmark["type"] == "BOOKMARK" and int(bookmark["object"]["metadata"]["resourceVersion"]) >= int(rv)
        await api.call("POST", CM, {"metadata": {"name": "bm1"}})
        while True:  # the stream is still open after the bookmark, and delivers the next change
            ev = orjson.loads(await asyncio.wait_for(resp.content.readline(), 5))
            if ev["type"] != "BOOKMARK":
                break
        assert ev["type"] == "ADDED" and ev["object"]["metadata"]["name"] == "bm1"
