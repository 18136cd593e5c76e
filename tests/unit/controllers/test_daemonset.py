"""DaemonSet controller against the real API server: placement by node selector and
taints, following nodes as they come and go, and a rolling update."""

from __future__ import annotations

from typing import Any

from kubeling.client.resources import DAEMONSETS, NODES
from kubeling.controllers.daemonset import DaemonSetController
from kubeling.controllers.daemonset.placement import target_node
from tests.unit.controllers.conftest_workloads import Cluster, cluster_fixture, eventually  # noqa: F401

Obj = dict[str, Any]


def node(name: str, *, labels: dict[str, str] | None = None, taints: list[Obj] | None = None) -> Obj:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels or {}},
            "spec": {"taints": taints} if taints else {}}


def daemonset(name: str = "agent", *, image: str = "agent:1", **pod_spec: Any) -> Obj:
    return {
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": image}], **pod_spec}}},
    }


async def pods_by_node(c: Cluster) -> dict[str, list[Obj]]:
    out: dict[str, list[Obj]] = {}
    for pod in await c.pods():
        if not pod["metadata"].get("deletionTimestamp"):
            out.setdefault(target_node(pod) or "", []).append(pod)
    return out


async def status(c: Cluster) -> Obj:
    return (await c.client.get(DAEMONSETS, "agent", namespace="default")).get("status") or {}


async def rolled_out(c: Cluster, desired: int) -> bool:
    st = await status(c)
    return (st.get("desiredNumberScheduled") == desired == st.get("updatedNumberScheduled")
            == st.get("numberAvailable") == st.get("currentNumberScheduled"))


async def test_one_pod_per_eligible_node(cluster: Cluster) -> None:
    await cluster.client.create(NODES, node("n1", labels={"disk": "ssd"}))
    await cluster.client.create(NODES, node("n2", labels={"disk": "ssd"}, taints=[
        {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]))  # auto-tolerated
    await cluster.client.create(NODES, node("n3", labels={"disk": "ssd"}, taints=[
        {"key": "dedicated", "value": "db", "effect": "NoSchedule"}]))  # not tolerated
    await cluster.client.create(NODES, node("n4", labels={"disk": "hdd"}))  # selector mismatch
    await cluster.kubelet()
    await cluster.run(DaemonSetController)
    await cluster.client.create(DAEMONSETS, daemonset(nodeSelector={"disk": "ssd"}))
    await eventually(lambda: rolled_out(cluster, 2))
    placed = await pods_by_node(cluster)
    assert sorted(placed) == ["n1", "n2"] and all(len(p) == 1 for p in placed.values())
    pod = placed["n1"][0]
    assert not pod["spec"].get("nodeName")  # the scheduler binds daemon pods
    terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms == {"nodeSelectorTerms": [{"matchFields": [
        {"key": "metadata.name", "operator": "In", "values": ["n1"]}]}]}
    keys = {(t.get("key"), t.get("effect")) for t in pod["spec"]["tolerations"]}
    assert ("node.kubernetes.io/not-ready", "NoExecute") in keys
    assert ("node.kubernetes.io/unschedulable", "NoSchedule") in keys
    labels = pod["metadata"]["labels"]
    assert labels["pod-template-generation"] == "1" and labels["controller-revision-hash"]
    st = await status(cluster)
    assert st["numberMisscheduled"] == 0 and st["numberUnavailable"] == 0 and st["numberReady"] == 2


async def test_follows_nodes_added_removed_and_relabelled(cluster: Cluster) -> None:
    await cluster.client.create(NODES, node("n1", labels={"role": "edge"}))
    await cluster.kubelet()
    await cluster.run(DaemonSetController)
    await cluster.client.create(DAEMONSETS, daemonset(nodeSelector={"role": "edge"}))
    await eventually(lambda: rolled_out(cluster, 1))

    await cluster.client.create(NODES, node("n2", labels={"role": "edge"}))
    await eventually(lambda: rolled_out(cluster, 2))
    assert sorted(await pods_by_node(cluster)) == ["n1", "n2"]

    await cluster.client.patch(NODES, "n1", {"metadata": {"labels": {"role": "core"}}})

    async def only_n2() -> bool:
        return sorted(await pods_by_node(cluster)) == ["n2"]
    await eventually(only_n2)
    await eventually(lambda: rolled_out(cluster, 1))

    await cluster.client.delete(NODES, "n2")

    async def none_left() -> bool:
        return await pods_by_node(cluster) == {} and (await status(cluster)).get("desiredNumberScheduled") == 0
    await eventually(none_left)


async def test_rolling_update_respects_max_unavailable(cluster: Cluster) -> None:
    for name in ("n1", "n2", "n3"):
        await cluster.client.create(NODES, node(name))
    await cluster.kubelet()
    await cluster.run(DaemonSetController)
    await cluster.client.create(DAEMONSETS, daemonset())
    await eventually(lambda: rolled_out(cluster, 3))

    worst = 0

    async def updated_and_track() -> bool:
        nonlocal worst
        st = await status(cluster)
        worst = max(worst, st.get("numberUnavailable", 0))
        images = [p["spec"]["containers"][0]["image"] for ps in (await pods_by_node(cluster)).values() for p in ps]
        return images == ["agent:2"] * 3 and await rolled_out(cluster, 3)

    patch = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "agent:2"}]}}}}
    await cluster.client.patch(DAEMONSETS, "agent", patch, namespace="default", patch_type="strategic")
    await eventually(updated_and_track, interval=0.005)
    assert worst <= 1
    st = await status(cluster)
    ds = await cluster.client.get(DAEMONSETS, "agent", namespace="default")
    assert st["observedGeneration"] == ds["metadata"]["generation"] == 2
    for ps in (await pods_by_node(cluster)).values():
        assert ps[0]["metadata"]["labels"]["pod-template-generation"] == "2"


async def test_taints_added_later(cluster: Cluster) -> None:
    """An untolerated NoSchedule taint keeps a running daemon pod; NoExecute removes it."""
    for name in ("n1", "n2"):
        await cluster.client.create(NODES, node(name))
    await cluster.kubelet()
    await cluster.run(DaemonSetController)
    await cluster.client.create(DAEMONSETS, daemonset())
    await eventually(lambda: rolled_out(cluster, 2))
    await cluster.client.patch(NODES, "n1", {"spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}})
    await cluster.client.patch(NODES, "n2", {"spec": {"taints": [{"key": "k", "effect": "NoExecute"}]}})

    async def only_n1() -> bool:
        st = await status(cluster)
        return (sorted(await pods_by_node(cluster)) == ["n1"] and st.get("desiredNumberScheduled") == 0
                and st.get("numberMisscheduled") == 1)
    await eventually(only_n1)


async def test_failed_daemon_pod_is_replaced(cluster: Cluster) -> None:
    await cluster.client.create(NODES, node("n1"))
    failed_once: set[str] = set()

    def behaviour(pod: Obj) -> str:
        if not failed_once:
            failed_once.add(pod["metadata"]["name"])
            return "Failed"
        return "Running"
    await cluster.kubelet(behaviour)
    await cluster.run(DaemonSetController, failed_pod_backoff=0.05)
    await cluster.client.create(DAEMONSETS, daemonset())
    await eventually(lambda: rolled_out(cluster, 1))
    [pod] = (await pods_by_node(cluster))["n1"]
    assert pod["metadata"]["name"] not in failed_once
