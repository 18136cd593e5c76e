"""Deployment controller against the real API server, with the ReplicaSet controller and a fake kubelet.

"Done" is what `kubectl rollout status` checks: generation <= observedGeneration,
updatedReplicas == replicas == availableReplicas == spec.replicas.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kubeling.client import Informer
from kubeling.client.resources import DEPLOYMENTS, EVENTS, PODS, REPLICASETS
from kubeling.controllers.deployment import DeploymentController, util
from kubeling.controllers.replicaset import ReplicaSetController
from kubeling.controllers.replicaset.podutil import is_pod_ready
from tests.unit.controllers.conftest import Cluster

Obj = dict[str, Any]
CONTROLLERS = (DeploymentController, ReplicaSetController)


def deployment(name: str = "web", replicas: int = 3, *, image: str = "nginx:1", strategy: Obj | None = None,
               **spec: Any) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "strategy": strategy or {"type": "RollingUpdate",
                                              "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}, **spec}}


async def get_deploy(cluster: Cluster, name: str = "web") -> Obj:
    return await cluster.client.get(DEPLOYMENTS, name, namespace="default")


async def replica_sets(cluster: Cluster) -> list[Obj]:
    items = (await cluster.client.list(REPLICASETS, namespace="default"))["items"]
    return sorted(items, key=util.revision)


def rollout_done(d: Obj) -> bool:
    """`kubectl rollout status`'s success test (DeploymentStatusViewer)."""
    st, want = d.get("status") or {}, d["spec"]["replicas"]
    return (d["metadata"]["generation"] <= st.get("observedGeneration", 0) and st.get("updatedReplicas") == want
            and st.get("replicas") == want and st.get("availableReplicas") == want)


async def wait_rollout(cluster: Cluster, name: str = "web", within: float = 5.0) -> Obj:
    async def check() -> Obj | None:
        d = await get_deploy(cluster, name)
        return d if rollout_done(d) else None
    return await cluster.eventually(check, within=within)


def condition(d: Obj, type_: str) -> Obj:
    return next(c for c in d["status"]["conditions"] if c["type"] == type_)


async def set_image(cluster: Cluster, image: str, name: str = "web") -> None:
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}}
    await cluster.client.patch(DEPLOYMENTS, name, patch, namespace="default", patch_type="strategic")


async def test_creates_replica_set_and_pods_and_converges(cluster: Cluster) -> None:
    await cluster.client.create(DEPLOYMENTS, deployment(replicas=3))
    async with cluster.run(*CONTROLLERS), cluster.kubelet():
        d = await wait_rollout(cluster)
        [rs] = await replica_sets(cluster)

        async def completed() -> Obj | None:
            fresh = await get_deploy(cluster)
            return fresh if condition(fresh, "Progressing")["reason"] == "NewReplicaSetAvailable" else None
        d = await cluster.eventually(completed)
        # Converged means quiet: no controller keeps rewriting anything.
        before = [o["metadata"]["resourceVersion"] for o in [await get_deploy(cluster), *await replica_sets(cluster)]]
        await asyncio.sleep(0.5)
        after = [o["metadata"]["resourceVersion"] for o in [await get_deploy(cluster), *await replica_sets(cluster)]]
        assert before == after
    pod_hash = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == f"web-{pod_hash}" and set(pod_hash) <= set("bcdfghjklmnpqrstvwxz2456789")
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": pod_hash}
    assert rs["spec"]["template"]["metadata"]["labels"] == {"app": "web", "pod-template-hash": pod_hash}
    assert rs["metadata"]["ownerReferences"][0]["uid"] == d["metadata"]["uid"]
    ann = rs["metadata"]["annotations"]
    assert (ann[util.REVISION], ann[util.DESIRED_REPLICAS], ann[util.MAX_REPLICAS]) == ("1", "3", "4")
    assert d["metadata"]["annotations"][util.REVISION] == "1"
    st = d["status"]
    assert (st["replicas"], st["updatedReplicas"], st["readyReplicas"], st["availableReplicas"],
            st.get("unavailableReplicas", 0)) == (3, 3, 3, 3, 0)
    available, progressing = condition(d, "Available"), condition(d, "Progressing")
    assert (available["status"], available["reason"]) == ("True", "MinimumReplicasAvailable")
    assert available["message"] == "Deployment has minimum availability."
    assert progressing["message"] == f'ReplicaSet "{rs["metadata"]["name"]}" has successfully progressed.'
    pods = (await cluster.client.list(PODS, namespace="default"))["items"]
    assert len(pods) == 3 and all(p["metadata"]["labels"]["pod-template-hash"] == pod_hash for p in pods)
    events = (await cluster.client.list(EVENTS, namespace="default"))["items"]
    scaling = [e["message"] for e in events if e["reason"] == "ScalingReplicaSet"]
    assert scaling == [f"Scaled up replica set {rs['metadata']['name']} from 0 to 3"]


async def test_rolling_update_never_exceeds_surge_or_unavailability(cluster: Cluster) -> None:
    await cluster.client.create(DEPLOYMENTS, deployment(replicas=4))
    async with cluster.run(*CONTROLLERS), cluster.kubelet(delay=0.1):
        await wait_rollout(cluster)
        # Watch every pod event of the rollout: at most 4 + maxSurge(1) pods, at least 4 - maxUnavailable(0) ready.
        pods = Informer(cluster.client, PODS, namespace="default")
        violations: list[str] = []
        seen_totals: list[int] = []

        def check(*_: Obj) -> None:
            live = [p for p in pods.list() if not p["metadata"].get("deletionTimestamp")]
            ready = sum(1 for p in live if is_pod_ready(p))
            seen_totals.append(len(live))
            if len(live) > 5 or ready < 4:
                violations.append(f"pods={len(live)} ready={ready}")
        pods.add_handler(on_add=check, on_update=check, on_delete=check)
        await pods.start()
        assert await pods.wait_synced(5)
        await set_image(cluster, "nginx:2")
        d = await wait_rollout(cluster)
        await asyncio.sleep(0.1)
        await pods.stop()
    assert not violations, violations
    assert max(seen_totals) == 5
    rss = await replica_sets(cluster)
    assert [util.replicas(rs) for rs in rss] == [0, 4]
    assert d["metadata"]["annotations"][util.REVISION] == "2"
    events = (await cluster.client.list(EVENTS, namespace="default"))["items"]
    downs = [e["message"] for e in events if e["message"].startswith("Scaled down")]
    assert f"Scaled down replica set {rss[0]['metadata']['name']} from 4 to 3" in downs


async def test_recreate_never_runs_two_versions(cluster: Cluster) -> None:
    await cluster.client.create(DEPLOYMENTS, deployment(replicas=2, strategy={"type": "Recreate"}))
    async with cluster.run(*CONTROLLERS), cluster.kubelet(delay=0.05):
        await wait_rollout(cluster)
        pods = Informer(cluster.client, PODS, namespace="default")
        mixed: list[set[str]] = []

        def check(*_: Obj) -> None:
            hashes = {p["metadata"]["labels"]["pod-template-hash"] for p in pods.list()}
            if len(hashes) > 1:
                mixed.append(hashes)
        pods.add_handler(on_add=check, on_update=check, on_delete=check)
        await pods.start()
        assert await pods.wait_synced(5)
        await set_image(cluster, "nginx:2")
        await cluster.eventually(lambda: _revisions(cluster, ["1", "2"]))
        await wait_rollout(cluster)
        await pods.stop()
    assert not mixed
    assert [util.replicas(rs) for rs in await replica_sets(cluster)] == [0, 2]


async def _revisions(cluster: Cluster, want: list[str]) -> bool:
    return [rs["metadata"]["annotations"].get(util.REVISION) for rs in await replica_sets(cluster)] == want


async def test_paused_deployment_scales_but_does_not_roll_out(cluster: Cluster) -> None:
    await cluster.client.create(DEPLOYMENTS, deployment(replicas=2))
    async with cluster.run(*CONTROLLERS), cluster.kubelet():
        await wait_rollout(cluster)
        await cluster.client.patch(DEPLOYMENTS, "web", {"spec": {"paused": True}}, namespace="default")

        async def paused() -> bool:
            return condition(await get_deploy(cluster), "Progressing")["reason"] == "DeploymentPaused"
        await cluster.eventually(paused)
        assert condition(await get_deploy(cluster), "Progressing")["message"] == "Deployment is paused"
        await set_image(cluster, "nginx:2")
        await cluster.client.patch(DEPLOYMENTS, "web", {"spec": {"replicas": 3}}, namespace="default")

        async def scaled() -> bool:
            d = await get_deploy(cluster)
            st = d.get("status") or {}
            # Scaled while paused; nothing is updated yet, so `rollout status` would still wait.
            return (st.get("observedGeneration") == d["metadata"]["generation"] and st.get("replicas") == 3
                    and st.get("availableReplicas") == 3 and st.get("updatedReplicas") == 0)
        await cluster.eventually(scaled)
        rss = await replica_sets(cluster)
        assert len(rss) == 1 and util.replicas(rss[0]) == 3
        await cluster.client.patch(DEPLOYMENTS, "web", {"spec": {"paused": False}}, namespace="default")
        await cluster.eventually(lambda: _revisions(cluster, ["1", "2"]))
        d = await wait_rollout(cluster)
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:2"
    assert [util.replicas(rs) for rs in await replica_sets(cluster)] == [0, 3]


async def test_revision_history_limit_and_change_cause(cluster: Cluster) -> None:
    await cluster.client.create(DEPLOYMENTS, deployment(replicas=1, revisionHistoryLimit=1))
    async with cluster.run(*CONTROLLERS), cluster.kubelet():
        await wait_rollout(cluster)
        for i in (2, 3, 4):
            await cluster.client.patch(DEPLOYMENTS, "web", {"metadata": {"annotations": {
                util.CHANGE_CAUSE: f"set image {i}"}}}, namespace="default")
            await set_image(cluster, f"nginx:{i}")
            await wait_rollout(cluster)
        await cluster.eventually(lambda: _revisions(cluster, ["3", "4"]))
    new = (await replica_sets(cluster))[-1]
    assert new["metadata"]["annotations"][util.CHANGE_CAUSE] == "set image 4"
    assert new["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:4"


async def test_rollback_reuses_old_replica_set_and_bumps_its_revision(cluster: Cluster) -> None:
    await cluster.client.create(DEPLOYMENTS, deployment(replicas=2))
    async with cluster.run(*CONTROLLERS), cluster.kubelet():
        await wait_rollout(cluster)
        [first] = await replica_sets(cluster)
        await set_image(cluster, "nginx:2")
        await cluster.eventually(lambda: _revisions(cluster, ["1", "2"]))
        await wait_rollout(cluster)
        # What `kubectl rollout undo` does: put the old RS's template (minus pod-template-hash) back.
        template = first["spec"]["template"]
        del template["metadata"]["labels"]["pod-template-hash"]
        await cluster.client.patch(DEPLOYMENTS, "web", [{"op": "replace", "path": "/spec/template",
                                                         "value": template}],
                                   namespace="default", patch_type="json")
        await cluster.eventually(lambda: _revisions(cluster, ["2", "3"]))
        d = await wait_rollout(cluster)
    rss = await replica_sets(cluster)
    assert rss[-1]["metadata"]["name"] == first["metadata"]["name"]
    assert rss[-1]["metadata"]["annotations"][util.REVISION_HISTORY] == "1"
    assert [util.replicas(rs) for rs in rss] == [0, 2]
    assert d["metadata"]["annotations"][util.REVISION] == "3"


async def test_progress_deadline_exceeded_when_pods_never_ready(cluster: Cluster) -> None:
    await cluster.client.create(DEPLOYMENTS, deployment(replicas=1, progressDeadlineSeconds=1))
    async with cluster.run(*CONTROLLERS), cluster.kubelet(hold=lambda _pod: True):
        async def timed_out() -> Obj | None:
            d = await get_deploy(cluster)
            conds = {c["type"]: c for c in (d.get("status") or {}).get("conditions") or []}
            return d if conds.get("Progressing", {}).get("reason") == "ProgressDeadlineExceeded" else None
        d = await cluster.eventually(timed_out, within=4.5)
    progressing = condition(d, "Progressing")
    assert progressing["status"] == "False"
    assert progressing["message"].endswith("has timed out progressing.")
    assert condition(d, "Available")["status"] == "False"


@pytest.mark.parametrize(("replicas", "surge", "unavailable", "want"), [
    (4, "25%", "25%", (1, 1)),
    (10, "25%", "25%", (3, 2)),
    (3, 0, 0, (0, 1)),
    (5, "10%", "10%", (1, 0)),
    (4, 2, 1, (2, 1)),
], ids=["quarter-of-4", "quarter-of-10", "both-zero", "round-up-surge-down-unavailable", "ints"])
def test_fenceposts(replicas: int, surge: Any, unavailable: Any, want: tuple[int, int]) -> None:
    d = deployment(replicas=replicas, strategy={"type": "RollingUpdate",
                                                "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}})
    assert util.fenceposts(d) == want


def test_hash_is_stable_and_changes_with_template_and_collisions() -> None:
    template = deployment()["spec"]["template"]
    h = util.compute_hash(template, None)
    assert h == util.compute_hash(dict(reversed(list(template.items()))), None)
    assert h != util.compute_hash(template, 1) != util.compute_hash(template, 2)
    assert h != util.compute_hash(deployment(image="nginx:2")["spec"]["template"], None)
    assert set(h) <= set("bcdfghjklmnpqrstvwxz2456789")


async def test_scale_and_restart(cluster: Cluster) -> None:
    """`kubectl scale` (the scale subresource) and `kubectl rollout restart` (a template annotation)."""
    await cluster.client.create(DEPLOYMENTS, deployment(replicas=2))
    async with cluster.run(*CONTROLLERS), cluster.kubelet():
        await wait_rollout(cluster)
        await cluster.client.patch(DEPLOYMENTS, "web", {"spec": {"replicas": 5}}, namespace="default",
                                   subresource="scale")
        await wait_rollout(cluster)
        assert [util.replicas(rs) for rs in await replica_sets(cluster)] == [5]
        restart = {"spec": {"template": {"metadata": {"annotations": {
            "kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"}}}}}
        await cluster.client.patch(DEPLOYMENTS, "web", restart, namespace="default", patch_type="strategic")
        await cluster.eventually(lambda: _revisions(cluster, ["1", "2"]))
        await wait_rollout(cluster)
    rss = await replica_sets(cluster)
    assert [util.replicas(rs) for rs in rss] == [0, 5]
    assert util.annotations(rss[1])[util.DESIRED_REPLICAS] == "5"


async def test_min_ready_seconds_holds_availability(cluster: Cluster) -> None:
    await cluster.client.create(DEPLOYMENTS, deployment(replicas=2, minReadySeconds=1))
    async with cluster.run(*CONTROLLERS), cluster.kubelet():
        async def ready_not_available() -> bool:
            st = (await get_deploy(cluster)).get("status") or {}
            return st.get("readyReplicas") == 2 and st.get("availableReplicas") == 0
        await cluster.eventually(ready_not_available)
        d = await wait_rollout(cluster, within=4)
    assert condition(d, "Available")["status"] == "True"
    assert [rs["spec"]["minReadySeconds"] for rs in await replica_sets(cluster)] == [1]


async def test_adopts_orphan_replica_set_with_matching_template(cluster: Cluster) -> None:
    d = deployment(replicas=3)
    orphan = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "legacy", "namespace": "default",
                                                                         "labels": {"app": "web"}},
              "spec": {"replicas": 1, "selector": d["spec"]["selector"], "template": d["spec"]["template"]}}
    await cluster.client.create(REPLICASETS, orphan)
    created = await cluster.client.create(DEPLOYMENTS, d)
    async with cluster.run(*CONTROLLERS), cluster.kubelet():
        await wait_rollout(cluster)
    [rs] = await replica_sets(cluster)
    assert rs["metadata"]["name"] == "legacy" and util.replicas(rs) == 3
    assert rs["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]
    assert rs["metadata"]["annotations"][util.REVISION] == "1"
