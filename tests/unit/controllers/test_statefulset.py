"""StatefulSet controller against the real API server: ordered creation, claims,
scale-down from the top, rolling update from the highest ordinal, partition."""

from __future__ import annotations

import asyncio
from typing import Any

from kubeling.client import Informer
from kubeling.client.resources import CONTROLLERREVISIONS, EVENTS, PERSISTENTVOLUMECLAIMS, PODS, STATEFULSETS
from kubeling.controllers import podstate
from kubeling.controllers.statefulset import StatefulSetController
from tests.unit.controllers.conftest_workloads import Cluster, cluster_fixture, eventually  # noqa: F401

Obj = dict[str, Any]


def statefulset(name: str = "web", *, replicas: int = 3, image: str = "nginx:1", **spec: Any) -> Obj:
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": replicas, "serviceName": name, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": image}]}},
                 **spec},
    }


CLAIMS = [{"metadata": {"name": "data"},
           "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]


async def get_sts(c: Cluster, name: str = "web") -> Obj:
    return await c.client.get(STATEFULSETS, name, namespace="default")


async def rolled_out(c: Cluster, replicas: int, name: str = "web") -> bool:
    st = (await get_sts(c, name)).get("status") or {}
    return (st.get("readyReplicas") == replicas == st.get("replicas") == st.get("updatedReplicas")
            and st.get("currentRevision") == st.get("updateRevision"))


async def test_pods_are_created_in_order_with_claims(cluster: Cluster) -> None:
    watcher = Informer(cluster.client, PODS, namespace="default")
    violations: list[str] = []

    def on_add(pod: Obj) -> None:
        ordinal = int(pod["metadata"]["name"].rsplit("-", 1)[1])
        for lower in range(ordinal):
            prev = watcher.get(f"default/web-{lower}")
            if prev is None or not podstate.is_running_and_ready(prev):
                violations.append(f"web-{ordinal} created before web-{lower} was Ready")

    watcher.add_handler(on_add=on_add)
    await watcher.start()
    await cluster.kubelet()
    await cluster.run(StatefulSetController)
    await cluster.client.create(STATEFULSETS, statefulset(volumeClaimTemplates=CLAIMS))
    try:
        await eventually(lambda: rolled_out(cluster, 3))
    finally:
        await watcher.stop()
    assert violations == []
    pods = {p["metadata"]["name"]: p for p in await cluster.pods()}
    assert sorted(pods) == ["web-0", "web-1", "web-2"]
    web1 = pods["web-1"]
    assert web1["spec"]["hostname"] == "web-1" and web1["spec"]["subdomain"] == "web"
    labels = web1["metadata"]["labels"]
    assert labels["statefulset.kubernetes.io/pod-name"] == "web-1"
    assert labels["apps.kubernetes.io/pod-index"] == "1"
    sts = await get_sts(cluster)
    assert labels["controller-revision-hash"] == sts["status"]["updateRevision"]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "data-web-1"}} in web1["spec"]["volumes"]
    claims = (await cluster.client.list(PERSISTENTVOLUMECLAIMS, namespace="default"))["items"]
    assert sorted(c["metadata"]["name"] for c in claims) == ["data-web-0", "data-web-1", "data-web-2"]
    assert all(not c["metadata"].get("ownerReferences") for c in claims)  # Retain by default
    revisions = (await cluster.client.list(CONTROLLERREVISIONS, namespace="default"))["items"]
    assert [r["revision"] for r in revisions] == [1]
    assert sts["status"]["observedGeneration"] == sts["metadata"]["generation"]
    events = (await cluster.client.list(EVENTS, namespace="default"))["items"]
    assert "create Pod web-0 in StatefulSet web successful" in {e["message"] for e in events}


async def test_scale_down_from_the_top_and_recreate_deleted_pod(cluster: Cluster) -> None:
    await cluster.kubelet()
    await cluster.run(StatefulSetController)
    await cluster.client.create(STATEFULSETS, statefulset(
        persistentVolumeClaimRetentionPolicy={"whenScaled": "Delete", "whenDeleted": "Retain"},
        volumeClaimTemplates=CLAIMS))
    await eventually(lambda: rolled_out(cluster, 3))

    old_uid = next(p["metadata"]["uid"] for p in await cluster.pods() if p["metadata"]["name"] == "web-1")
    await cluster.client.delete(PODS, "web-1", namespace="default")

    async def replaced() -> bool:
        pods = {p["metadata"]["name"]: p for p in await cluster.pods()}
        pod = pods.get("web-1")
        return pod is not None and pod["metadata"]["uid"] != old_uid and podstate.is_running_and_ready(pod)
    await eventually(replaced)

    deleted: list[str] = []
    watcher = Informer(cluster.client, PODS, namespace="default")
    watcher.add_handler(on_delete=lambda p: deleted.append(p["metadata"]["name"]))
    await watcher.start()
    await watcher.wait_synced(5)
    await cluster.client.patch(STATEFULSETS, "web", {"spec": {"replicas": 1}}, namespace="default")
    try:
        await eventually(lambda: rolled_out(cluster, 1))
        await eventually(lambda: len(deleted) == 2)
    finally:
        await watcher.stop()
    assert deleted == ["web-2", "web-1"]
    claims = {c["metadata"]["name"]: c for c in
              (await cluster.client.list(PERSISTENTVOLUMECLAIMS, namespace="default"))["items"]}
    # whenScaled=Delete: the condemned pods own their claims, so the garbage collector removes them.
    assert [r["kind"] for r in claims["data-web-2"]["metadata"]["ownerReferences"]] == ["Pod"]
    assert not claims["data-web-0"]["metadata"].get("ownerReferences")


async def test_rolling_update_from_highest_ordinal_with_partition(cluster: Cluster) -> None:
    await cluster.kubelet()
    await cluster.run(StatefulSetController)
    await cluster.client.create(STATEFULSETS, statefulset())
    await eventually(lambda: rolled_out(cluster, 3))
    first = (await get_sts(cluster))["status"]["currentRevision"]

    created: list[str] = []
    watcher = Informer(cluster.client, PODS, namespace="default")
    watcher.add_handler(on_add=lambda p: created.append(p["metadata"]["name"]))
    await watcher.start()
    await watcher.wait_synced(5)
    created.clear()
    patch = {"spec": {"updateStrategy": {"rollingUpdate": {"partition": 1}},
                      "template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}}
    await cluster.client.patch(STATEFULSETS, "web", patch, namespace="default", patch_type="strategic")

    async def partitioned() -> bool:
        st = (await get_sts(cluster))["status"]
        return st.get("updatedReplicas") == 2 and st.get("readyReplicas") == 3
    try:
        await eventually(partitioned)
        images = {p["metadata"]["name"]: p["spec"]["containers"][0]["image"] for p in await cluster.pods()}
        assert images == {"web-0": "nginx:1", "web-1": "nginx:2", "web-2": "nginx:2"}
        assert created == ["web-2", "web-1"]
        st = (await get_sts(cluster))["status"]
        assert st["currentRevision"] == first != st["updateRevision"]

        await cluster.client.patch(STATEFULSETS, "web", {"spec": {"updateStrategy": {"rollingUpdate": {
            "partition": 0}}}}, namespace="default")
        await eventually(lambda: rolled_out(cluster, 3))
    finally:
        await watcher.stop()
    assert created == ["web-2", "web-1", "web-0"]
    revisions = (await cluster.client.list(CONTROLLERREVISIONS, namespace="default"))["items"]
    assert sorted(r["revision"] for r in revisions) == [1, 2]


async def test_parallel_creates_all_pods_without_waiting(cluster: Cluster) -> None:
    await cluster.kubelet(lambda pod: None)  # pods stay Pending
    await cluster.run(StatefulSetController)
    await cluster.client.create(STATEFULSETS, statefulset(
        podManagementPolicy="Parallel", volumeClaimTemplates=CLAIMS,
        persistentVolumeClaimRetentionPolicy={"whenDeleted": "Delete", "whenScaled": "Retain"}))

    async def three() -> bool:
        return len(await cluster.pods()) == 3
    await eventually(three)
    st = (await get_sts(cluster)).get("status") or {}
    assert st.get("readyReplicas", 0) == 0
    # whenDeleted=Delete: the set owns the claims, so they go with it.
    claims = (await cluster.client.list(PERSISTENTVOLUMECLAIMS, namespace="default"))["items"]
    assert len(claims) == 3
    assert all([r["kind"] for r in c["metadata"]["ownerReferences"]] == ["StatefulSet"] for c in claims)


async def test_ordered_ready_waits_for_ready_pod(cluster: Cluster) -> None:
    kubelet = await cluster.kubelet(lambda pod: None)
    await cluster.run(StatefulSetController)
    await cluster.client.create(STATEFULSETS, statefulset())

    async def one() -> bool:
        return [p["metadata"]["name"] for p in await cluster.pods()] == ["web-0"]
    await eventually(one)
    await asyncio.sleep(0.3)
    assert [p["metadata"]["name"] for p in await cluster.pods()] == ["web-0"]
    kubelet.behaviour = lambda pod: "Running"
    await kubelet.resync()
    await eventually(lambda: rolled_out(cluster, 3))
