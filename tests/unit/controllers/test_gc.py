"""Garbage collector against the real API server: Background, Foreground and Orphan
propagation on a hand-built Deployment → ReplicaSet → Pod chain, custom resources as
owners (discovered after the collector started), dangling and partly dangling references."""

from __future__ import annotations

from typing import Any

import pytest

from kubeling.api.errors import StatusError
from kubeling.client import Resource
from kubeling.client.resources import CONFIGMAPS, DEPLOYMENTS, PODS, REPLICASETS
from kubeling.controllers.garbagecollector import GarbageCollector, Graph
from tests.unit.controllers.conftest_workloads import Cluster, cluster_fixture, eventually  # noqa: F401
from tests.unit.controllers.gc_objects import (
    WIDGETS,
    configmap,
    create_widget_crd,
    deployment,
    owner_ref,
    pod,
    replicaset,
    widget,
)

Obj = dict[str, Any]


async def exists(c: Cluster, res: Resource, name: str, ns: str = "default") -> bool:
    try:
        await c.client.get(res, name, namespace=ns)
    except StatusError as err:
        if err.code == 404:
            return False
        raise
    return True


async def chain(c: Cluster, *, pod_finalizers: list[str] | None = None) -> tuple[Obj, Obj, list[Obj]]:
    dep = await c.client.create(DEPLOYMENTS, deployment("web"))
    rs = await c.client.create(REPLICASETS, replicaset("web-1", dep))
    pods = [await c.client.create(PODS, pod(f"web-1-{i}", rs, finalizers=pod_finalizers if i == 0 else None))
            for i in range(2)]
    return dep, rs, pods


async def test_background_deletes_replicasets_and_their_pods(cluster: Cluster) -> None:
    await chain(cluster)
    await cluster.run(GarbageCollector)
    await cluster.client.delete(DEPLOYMENTS, "web", namespace="default")  # Background is the default
    await eventually(lambda: _none(cluster, [(REPLICASETS, "web-1"), (PODS, "web-1-0"), (PODS, "web-1-1")]))


async def _none(c: Cluster, objs: list[tuple[Resource, str]]) -> bool:
    for res, name in objs:
        if await exists(c, res, name):
            return False
    return True


async def test_foreground_waits_for_blocking_dependents(cluster: Cluster) -> None:
    await chain(cluster, pod_finalizers=["example.com/hold"])
    await cluster.run(GarbageCollector)
    await cluster.client.delete(DEPLOYMENTS, "web", namespace="default", propagation_policy="Foreground")
    # The pod with a finalizer cannot go; the ReplicaSet waits for it and the Deployment for the ReplicaSet.
    await eventually(lambda: _none(cluster, [(PODS, "web-1-1")]))
    held = await cluster.client.get(PODS, "web-1-0", namespace="default")
    assert held["metadata"].get("deletionTimestamp")
    dep = await cluster.client.get(DEPLOYMENTS, "web", namespace="default")
    assert dep["metadata"]["deletionTimestamp"] and "foregroundDeletion" in dep["metadata"]["finalizers"]
    rs = await cluster.client.get(REPLICASETS, "web-1", namespace="default")
    assert "foregroundDeletion" in rs["metadata"]["finalizers"]
    await cluster.client.patch(PODS, "web-1-0", {"metadata": {"finalizers": None}}, namespace="default")
    await eventually(lambda: _none(cluster, [(PODS, "web-1-0"), (REPLICASETS, "web-1"), (DEPLOYMENTS, "web")]))


async def test_orphan_keeps_dependents_without_the_reference(cluster: Cluster) -> None:
    _, rs, _ = await chain(cluster)
    await cluster.run(GarbageCollector)
    await cluster.client.delete(DEPLOYMENTS, "web", namespace="default", propagation_policy="Orphan")
    await eventually(lambda: _none(cluster, [(DEPLOYMENTS, "web")]))
    kept = await cluster.client.get(REPLICASETS, "web-1", namespace="default")
    assert not kept["metadata"].get("ownerReferences")
    for i in range(2):
        p = await cluster.client.get(PODS, f"web-1-{i}", namespace="default")
        assert p["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"]


async def test_custom_resource_discovered_later_owns_a_configmap(cluster: Cluster) -> None:
    gc = await cluster.run(GarbageCollector, discovery_interval=0.2)
    await create_widget_crd(cluster.client)
    w = await eventually(lambda: _create_widget(cluster))
    await cluster.client.create(CONFIGMAPS, configmap("w-config", owner_ref(w)))
    await eventually(lambda: WIDGETS in gc._active)
    await cluster.client.delete(WIDGETS, "w1", namespace="default")
    await eventually(lambda: _none(cluster, [(CONFIGMAPS, "w-config")]))


async def _create_widget(c: Cluster) -> Obj | None:
    try:
        return await c.client.create(WIDGETS, widget("w1"))
    except StatusError as err:
        if err.code == 404:
            return None
        raise


@pytest.mark.parametrize("alive", [False, True], ids=["all-dangling", "one-owner-left"])
async def test_dangling_references(cluster: Cluster, alive: bool) -> None:
    ghost = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ghost", "uid": "0000-gone"}}
    owners = [owner_ref(ghost)]
    if alive:
        live = await cluster.client.create(CONFIGMAPS, configmap("owner"))
        owners.append(owner_ref(live, controller=False))
    await cluster.client.create(CONFIGMAPS, configmap("dependent", *owners))
    await cluster.run(GarbageCollector)
    if not alive:
        await eventually(lambda: _none(cluster, [(CONFIGMAPS, "dependent")]))
        return

    async def only_live_ref() -> bool:
        cm = await cluster.client.get(CONFIGMAPS, "dependent", namespace="default")
        return [r["name"] for r in cm["metadata"]["ownerReferences"]] == ["owner"]
    await eventually(only_live_ref)


def _obj(uid: str, *owners: str) -> Obj:
    refs = [{"apiVersion": "v1", "kind": "ConfigMap", "name": o, "uid": o} for o in owners]
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": uid, "namespace": "default", "uid": uid, "ownerReferences": refs}}


def test_graph_links_virtual_owners_and_keeps_them_while_referenced() -> None:
    g = Graph()
    change = g.upsert(_obj("child", "parent"), CONFIGMAPS)
    assert change.new_virtual == ["parent"] and g.get("parent").virtual  # type: ignore[union-attr]
    g.upsert(_obj("parent"), CONFIGMAPS)
    assert not g.get("parent").virtual and g.get("parent").dependents == {"child"}  # type: ignore[union-attr]
    removed = g.remove("parent")
    assert removed.dependents == ["child"] and g.get("parent").virtual  # type: ignore[union-attr]
    # Re-owned elsewhere: the placeholder loses its last dependent and disappears.
    assert g.upsert(_obj("child", "other"), CONFIGMAPS).removed_owners == ["parent"]
    assert g.get("parent") is None and g.get("other").dependents == {"child"}  # type: ignore[union-attr]
    g.remove("child")
    assert len(g) == 0
