"""KubeClient against a fake API server: paths, parameters, error mapping, paging, watch."""

from __future__ import annotations

import socket

import aiohttp
import pytest

from kubeling.api import errors
from kubeling.client import resources as r
from kubeling.client.errors import APIUnavailable, errors_from_status
from kubeling.client.rest import KubeClient
from tests.unit.client.fake_kube_api import FakeAPI

PODS = ("", "v1", "pods")


def pod(name: str, namespace: str = "default", **labels: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace, "labels": labels}}


@pytest.mark.parametrize(("res", "args", "path"), [
    (r.PODS, ("ns", "p", "status"), "/api/v1/namespaces/ns/pods/p/status"),
    (r.PODS, (None, None, None), "/api/v1/pods"),
    (r.DEPLOYMENTS, ("ns", None, None), "/apis/apps/v1/namespaces/ns/deployments"),
    (r.NODES, ("ignored", "n1", None), "/api/v1/nodes/n1"),
    (r.HPAS, ("a", "h", None), "/apis/autoscaling/v2/namespaces/a/horizontalpodautoscalers/h"),
    (r.LEASES, ("kube-system", "x/y", None), "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/x%2Fy"),
], ids=["subresource", "all-namespaces", "group", "cluster-scoped", "autoscaling-v2", "escaped-name"])
def test_resource_paths(res: r.Resource, args: tuple, path: str) -> None:
    assert res.path(*args) == path


def test_resource_for_kind() -> None:
    assert r.resource_for_kind("apps/v1", "Deployment") is r.DEPLOYMENTS
    assert r.resource_for_kind("v1", "Pod").api_version == "v1"
    assert r.resource_for_kind("v1", "Nope") is None
    with pytest.raises(ValueError, match="needs an object name"):
        r.PODS.path("ns", None, "status")


@pytest.mark.parametrize("original", [
    errors.NotFound("pods", "p"),
    errors.Conflict("deployments", "d", "apps"),
    errors.Invalid("Pod", "p", [errors.required("spec.containers")]),
    errors.Gone("too old resource version: 1 (5)"),
    errors.TooManyRequests("slow down", retry_after=3),
], ids=["404", "409", "422", "410", "429"])
def test_errors_from_status_round_trips(original: errors.StatusError) -> None:
    rebuilt = errors_from_status(original.status(), original.code)
    assert rebuilt.status() == original.status()


def test_errors_from_non_status_body() -> None:
    err = errors_from_status("<html>bad gateway</html>", 502)
    assert (err.code, err.reason) == (502, "InternalError")
    assert errors_from_status(None, 404).reason == "NotFound"


async def test_crud_and_error_mapping(client: KubeClient, fake_api: FakeAPI) -> None:
    created = await client.create(r.PODS, pod("a"))
    assert created["metadata"]["resourceVersion"]
    assert fake_api.requests[-1].path == "/api/v1/namespaces/default/pods"
    with pytest.raises(errors.StatusError) as info:
        await client.create(r.PODS, pod("a"))
    assert (info.value.code, info.value.reason, info.value.name) == (409, "AlreadyExists", "a")
    assert isinstance(info.value.__cause__, aiohttp.ClientResponseError)

    stale = {**created, "metadata": {**created["metadata"], "resourceVersion": "1"}}
    with pytest.raises(errors.StatusError, match="has been modified") as info:
        await client.update(r.PODS, stale)
    assert info.value.reason == "Conflict"
    updated = await client.update(r.PODS, {**created, "spec": {"x": 1}})
    assert updated["spec"] == {"x": 1}

    patched = await client.patch(r.PODS, "a", {"spec": {"y": 2}}, namespace="default")
    assert patched["spec"] == {"y": 2}
    assert fake_api.requests[-1].content_type == "application/merge-patch+json"
    await client.patch(r.PODS, "a", {"spec": {}}, namespace="default", patch_type="apply", force=True)
    assert fake_api.requests[-1].query == {"fieldManager": "kubeling", "force": "true"}
    assert fake_api.requests[-1].content_type == "application/apply-patch+yaml"

    await client.delete(r.PODS, "a", namespace="default", propagation_policy="Foreground",
                        grace_period_seconds=0, preconditions={"uid": "uid-a"})
    assert fake_api.requests[-1].body == {"kind": "DeleteOptions", "apiVersion": "v1",
                                          "propagationPolicy": "Foreground", "gracePeriodSeconds": 0,
                                          "preconditions": {"uid": "uid-a"}}
    with pytest.raises(errors.StatusError) as info:
        await client.get(r.PODS, "a", namespace="default")
    assert info.value.code == 404 and info.value.message == 'pods "a" not found'


async def test_subresource_post_and_headers(client: KubeClient, fake_api: FakeAPI) -> None:
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p", "namespace": "ns"},
               "target": {"kind": "Node", "name": "n1"}}
    fake_api.put(PODS, pod("p", "ns"))
    await client.create(r.PODS, binding, subresource="binding", dry_run=True)
    req = fake_api.requests[-1]
    assert (req.method, req.path, req.query) == ("POST", "/api/v1/namespaces/ns/pods/p/binding", {"dryRun": "All"})
    assert req.headers["Authorization"] == "Bearer t0ken" and req.headers["User-Agent"] == "kubeling"
    assert req.headers["Accept"] == "application/json"


async def test_list_paging_and_list_all(client: KubeClient, fake_api: FakeAPI) -> None:
    for i in range(7):
        fake_api.put(PODS, pod(f"p{i}", app="web" if i % 2 else "db"))
    page = await client.list(r.PODS, namespace="default", limit=3)
    assert len(page["items"]) == 3 and page["metadata"]["continue"] == "3"
    everything = await client.list_all(r.PODS, limit=3)
    assert [p["metadata"]["name"] for p in everything["items"]] == [f"p{i}" for i in range(7)]
    assert "continue" not in everything["metadata"]
    assert sum(1 for q in fake_api.requests if q.method == "GET") == 4
    web = await client.list_all(r.PODS, label_selector="app=web")
    assert len(web["items"]) == 3


async def test_watch_streams_events_and_raises_gone(client: KubeClient, fake_api: FakeAPI) -> None:
    fake_api.put(PODS, pod("a"))
    seen = []
    async for type_, obj in client.watch(r.PODS, resource_version="100"):
        seen.append((type_, obj["metadata"]["name"]))
        break
    assert seen == [("ADDED", "a")]
    assert fake_api.requests[-1].query["allowWatchBookmarks"] == "true"
    fake_api.compact()
    with pytest.raises(errors.StatusError) as info:
        async for _ in client.watch(r.PODS, resource_version="100"):
            pass
    assert (info.value.code, info.value.reason) == (410, "Expired")


async def test_watch_handles_objects_larger_than_a_stream_line(client: KubeClient, fake_api: FakeAPI) -> None:
    big = pod("big")
    big["data"] = "x" * 400_000  # aiohttp's readline would refuse lines over 128 KiB
    fake_api.put(PODS, big)
    async for type_, obj in client.watch(r.PODS, resource_version="100"):
        assert (type_, len(obj["data"])) == ("ADDED", 400_000)
        break


async def test_connection_refused_is_api_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with KubeClient(f"http://127.0.0.1:{port}", timeout=2) as client:
        with pytest.raises(APIUnavailable) as info:
            await client.get(r.PODS, "x", namespace="default")
        assert isinstance(info.value, ConnectionError)
        with pytest.raises(APIUnavailable):
            async for _ in client.watch(r.PODS):
                pass


def test_from_kubeconfig(tmp_path) -> None:
    (tmp_path / "token").write_text("from-file\n")
    (tmp_path / "config").write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: b\n"
        "clusters:\n- name: c1\n  cluster: {server: 'http://127.0.0.1:1'}\n"
        "- name: c2\n  cluster: {server: 'http://127.0.0.1:2/'}\n"
        "contexts:\n- name: a\n  context: {cluster: c1, user: u1}\n- name: b\n  context: {cluster: c2, user: u2}\n"
        "users:\n- name: u1\n  user: {token: one}\n- name: u2\n  user: {tokenFile: token}\n")
    client = KubeClient.from_kubeconfig(tmp_path / "config")
    assert (client.base_url, client._token) == ("http://127.0.0.1:2", "from-file")
    other = KubeClient.from_kubeconfig(tmp_path / "config", context="a")
    assert (other.base_url, other._token) == ("http://127.0.0.1:1", "one")
