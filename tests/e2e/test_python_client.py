"""The official `kubernetes` Python client against kubeling."""

from __future__ import annotations

import threading

import pytest

from .conftest import Server

pytestmark = pytest.mark.e2e

kubernetes = pytest.importorskip("kubernetes", reason="the official kubernetes client is not installed")
from kubernetes import client, watch  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402


@pytest.fixture(scope="module")
def core(k8s_client) -> client.CoreV1Api:  # type: ignore[no-untyped-def]
    return client.CoreV1Api(k8s_client)


@pytest.fixture(scope="module")
def apps(k8s_client) -> client.AppsV1Api:  # type: ignore[no-untyped-def]
    return client.AppsV1Api(k8s_client)


@pytest.fixture(scope="module")
def ns(core: client.CoreV1Api) -> str:
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="pyclient")))
    return "pyclient"


def test_crud(core: client.CoreV1Api, ns: str) -> None:
    cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="one", labels={"a": "b"}), data={"k": "v"})
    created = core.create_namespaced_config_map(ns, cm)
    assert created.metadata.uid and created.metadata.resource_version
    got = core.read_namespaced_config_map("one", ns)
    assert got.data == {"k": "v"}
    got.data["k2"] = "v2"
    updated = core.replace_namespaced_config_map("one", ns, got)
    assert int(updated.metadata.resource_version) > int(created.metadata.resource_version)
    patched = core.patch_namespaced_config_map("one", ns, {"data": {"k3": "v3"}})
    assert patched.data == {"k": "v", "k2": "v2", "k3": "v3"}
    core.delete_namespaced_config_map("one", ns)
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_config_map("one", ns)
    assert exc.value.status == 404


def test_typed_models_decode(core: client.CoreV1Api, apps: client.AppsV1Api, ns: str) -> None:
    dep = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="typed"),
        spec=client.V1DeploymentSpec(
            selector=client.V1LabelSelector(match_labels={"app": "typed"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "typed"}),
                spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")]))))
    out = apps.create_namespaced_deployment(ns, dep)
    assert out.spec.replicas == 1
    scale = apps.read_namespaced_deployment_scale("typed", ns)
    assert scale.spec.replicas == 1 and scale.status.selector == "app=typed"
    apps.patch_namespaced_deployment_scale("typed", ns, {"spec": {"replicas": 3}})
    assert apps.read_namespaced_deployment("typed", ns).spec.replicas == 3
    assert core.list_namespace().items
    assert core.read_namespaced_service_account("default", ns).metadata.name == "default"


def test_list_selectors_and_paging(core: client.CoreV1Api, ns: str) -> None:
    for i in range(25):
        core.create_namespaced_config_map(ns, client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=f"page-{i:02d}", labels={"group": "odd" if i % 2 else "even"})))
    odd = core.list_namespaced_config_map(ns, label_selector="group=odd")
    assert len(odd.items) == 12
    both = core.list_namespaced_config_map(ns, label_selector="group in (odd,even)")
    assert len(both.items) == 25
    names: list[str] = []
    token = None
    pages = 0
    while True:
        page = core.list_namespaced_config_map(ns, label_selector="group", limit=10, _continue=token)
        names += [i.metadata.name for i in page.items]
        pages += 1
        token = page.metadata._continue
        if not token:
            break
    assert pages == 3 and names == sorted(names) and len(names) == 25
    named = core.list_namespaced_config_map(ns, field_selector="metadata.name=page-03")
    assert [i.metadata.name for i in named.items] == ["page-03"]


def test_watch_replays_from_resource_version(core: client.CoreV1Api, ns: str) -> None:
    first = core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="w1")))
    rv = first.metadata.resource_version
    core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="w2")))
    core.patch_namespaced_config_map("w2", ns, {"data": {"x": "y"}})
    core.delete_namespaced_config_map("w1", ns)
    seen = []
    w = watch.Watch()
    for ev in w.stream(core.list_namespaced_config_map, ns, resource_version=rv, timeout_seconds=2):
        seen.append((ev["type"], ev["object"].metadata.name))
        if len(seen) == 3:
            w.stop()
    assert seen == [("ADDED", "w2"), ("MODIFIED", "w2"), ("DELETED", "w1")]


def test_watch_sees_live_events_and_timeout(core: client.CoreV1Api, ns: str) -> None:
    lst = core.list_namespaced_config_map(ns)
    seen: list[str] = []

    def consume() -> None:
        for ev in watch.Watch().stream(core.list_namespaced_config_map, ns,
                                       resource_version=lst.metadata.resource_version, timeout_seconds=3):
            seen.append(ev["object"].metadata.name)
    t = threading.Thread(target=consume)
    t.start()
    core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="live")))
    t.join(10)
    assert not t.is_alive(), "timeoutSeconds did not close the watch"
    assert "live" in seen


def test_stale_update_conflicts(core: client.CoreV1Api, ns: str) -> None:
    cm = core.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="cas")))
    fresh = core.read_namespaced_config_map("cas", ns)
    fresh.data = {"a": "1"}
    core.replace_namespaced_config_map("cas", ns, fresh)
    cm.data = {"a": "2"}
    with pytest.raises(ApiException) as exc:
        core.replace_namespaced_config_map("cas", ns, cm)
    assert exc.value.status == 409
    assert "the object has been modified" in exc.value.body


def test_already_exists_body_is_go_exact(apps: client.AppsV1Api, ns: str, server: Server) -> None:
    import urllib.request

    body = b'{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"typed"},"spec":{}}'
    req = urllib.request.Request(f"{server.url}/apis/apps/v1/namespaces/{ns}/deployments", data=body,
                                 method="POST", headers={"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(req)
    except urllib.error.HTTPError as err:
        raw = err.read()
    else:
        raise AssertionError("expected a 409")
    # Validation runs first in Kubernetes too, so an invalid duplicate is a 422; a valid one 409.
    assert raw.endswith(b"}\n")
    assert raw.startswith(b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure"')
