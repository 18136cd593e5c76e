"""ReplicaSet controller against the real API server: create, scale down in preference order, adopt, expect."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from kubeling.api.errors import StatusError
from kubeling.client.resources import EVENTS, PODS, REPLICASETS
from kubeling.controllers.base import InformerFactory
from kubeling.controllers.replicaset import ReplicaSetController
from kubeling.controllers.replicaset.controller import calculate_status
from kubeling.controllers.replicaset.podutil import rank_pods_for_deletion, slow_start_batch
from tests.unit.controllers.conftest import Cluster

Obj = dict[str, Any]


def replica_set(name: str = "web", replicas: int = 3, **spec: Any) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}, **spec}}


def pod(name: str, labels: dict[str, str], **status: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default", "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}, **({"status": status} if status else {})}


async def pods_of(cluster: Cluster, label: str = "app=web") -> list[Obj]:
    items = (await cluster.client.list(PODS, namespace="default", label_selector=label))["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


async def rs_status(cluster: Cluster, name: str = "web") -> Obj:
    return (await cluster.client.get(REPLICASETS, name, namespace="default")).get("status") or {}


async def test_creates_pods_with_owner_refs_events_and_status(cluster: Cluster) -> None:
    rs = await cluster.client.create(REPLICASETS, replica_set(replicas=3))
    async with cluster.run(ReplicaSetController), cluster.kubelet():
        pods = await cluster.eventually(lambda: _n_pods(cluster, 3))
        for p in pods:
            assert p["metadata"]["name"].startswith("web-")
            assert p["metadata"]["labels"] == {"app": "web"}
            ref = p["metadata"]["ownerReferences"][0]
            assert (ref["kind"], ref["name"], ref["uid"], ref["controller"]) == ("ReplicaSet", "web",
                                                                                rs["metadata"]["uid"], True)

        async def converged() -> bool:
            s = await rs_status(cluster)
            return (s.get("replicas"), s.get("readyReplicas"), s.get("availableReplicas"),
                    s.get("fullyLabeledReplicas"), s.get("observedGeneration")) == (3, 3, 3, 3, 1)
        await cluster.eventually(converged)
    events = (await cluster.client.list(EVENTS, namespace="default"))["items"]
    created = sorted(e["message"] for e in events if e["reason"] == "SuccessfulCreate")
    assert created == sorted(f"Created pod: {p['metadata']['name']}" for p in pods)
    assert all(e["involvedObject"]["kind"] == "ReplicaSet" and e["source"]["component"] == "replicaset-controller"
               for e in events)


async def _n_pods(cluster: Cluster, n: int) -> list[Obj] | None:
    pods = await pods_of(cluster)
    return pods if len(pods) == n else None


async def test_scale_down_deletes_least_valuable_pods_first(cluster: Cluster) -> None:
    # A pending orphan "x" is adopted and kept pending; three more pods are created and become ready.
    await cluster.client.create(PODS, pod("x", {"app": "web"}))
    await cluster.client.create(REPLICASETS, replica_set(replicas=4))
    async with cluster.run(ReplicaSetController), cluster.kubelet(hold=lambda p: p["metadata"]["name"] == "x"):
        before = await cluster.eventually(lambda: _n_pods(cluster, 4))
        await cluster.eventually(lambda: _ready_count(cluster, 3))
        assert await _owned(cluster, "x")
        # Scaling to 2 deletes the not-ready pod first, then one of the ready ones.
        await cluster.client.patch(REPLICASETS, "web", {"spec": {"replicas": 2}}, namespace="default")
        left = await cluster.eventually(lambda: _n_pods(cluster, 2))
    names = {p["metadata"]["name"] for p in left}
    assert "x" not in names and names < {p["metadata"]["name"] for p in before}
    events = (await cluster.client.list(EVENTS, namespace="default"))["items"]
    assert "Deleted pod: x" in {e["message"] for e in events if e["reason"] == "SuccessfulDelete"}


async def _ready_count(cluster: Cluster, n: int) -> bool:
    return (await rs_status(cluster)).get("readyReplicas") == n


async def _owned(cluster: Cluster, name: str) -> bool:
    p = await cluster.client.get(PODS, name, namespace="default")
    return bool(p["metadata"].get("ownerReferences"))


async def test_adopts_orphans_and_releases_non_matching(cluster: Cluster) -> None:
    for i in range(2):
        await cluster.client.create(PODS, pod(f"orphan-{i}", {"app": "web"}))
    await cluster.client.create(REPLICASETS, replica_set(replicas=2))
    async with cluster.run(ReplicaSetController):
        await cluster.eventually(lambda: _owned(cluster, "orphan-0"))
        await cluster.eventually(lambda: _owned(cluster, "orphan-1"))
        assert {p["metadata"]["name"] for p in await pods_of(cluster)} == {"orphan-0", "orphan-1"}
        # Relabel one: it is released and replaced.
        await cluster.client.patch(PODS, "orphan-0", {"metadata": {"labels": {"app": "other"}}}, namespace="default")

        async def released() -> bool:
            return not await _owned(cluster, "orphan-0")
        await cluster.eventually(released)
        await cluster.eventually(lambda: _n_pods(cluster, 2))


async def test_expectations_prevent_double_create(cluster: Cluster) -> None:
    """Two reconciles before the informer has seen the created pods: the second must not create more."""
    await cluster.client.create(REPLICASETS, replica_set(replicas=3))
    informers = InformerFactory(cluster.client)
    ctrl = ReplicaSetController(cluster.client, informers)
    await informers.start()
    assert await informers.wait_synced(5)
    await cluster.eventually(lambda: _cached(ctrl))
    await informers.stop()  # freeze the caches: the creates below are never observed
    await ctrl.reconcile("default/web")
    assert len(await pods_of(cluster)) == 3
    assert not ctrl.expectations.satisfied("default/web")
    await ctrl.reconcile("default/web")
    assert len(await pods_of(cluster)) == 3
    # Once the creations are observed, the controller acts again (and finds nothing to do).
    for p in await pods_of(cluster):
        ctrl.pod_informer.indexer.upsert(p)
        ctrl._pod_added(p)
    assert ctrl.expectations.satisfied("default/web")
    await ctrl.reconcile("default/web")
    assert len(await pods_of(cluster)) == 3


async def _cached(ctrl: ReplicaSetController) -> bool:
    return ctrl.rs_informer.get("default/web") is not None


def _ranked(name: str, *, node: str = "", phase: str = "Running", ready: str | None = None,
            restarts: int = 0, created: str = "2024-01-01T00:00:00Z") -> Obj:
    status: Obj = {"phase": phase, "containerStatuses": [{"name": "c", "restartCount": restarts}]}
    if ready is not None:
        status["conditions"] = [{"type": "Ready", "status": "True", "lastTransitionTime": ready}]
    return {"metadata": {"name": name, "creationTimestamp": created}, "spec": {"nodeName": node}, "status": status}


@pytest.mark.parametrize(("first", "second"), [
    (_ranked("unassigned"), _ranked("assigned", node="n1")),
    (_ranked("pending", node="n", phase="Pending"), _ranked("running", node="n")),
    (_ranked("unknown", node="n", phase="Unknown"), _ranked("running", node="n")),
    (_ranked("notready", node="n"), _ranked("ready", node="n", ready="2024-01-01T00:00:00Z")),
    (_ranked("ready-later", node="n", ready="2024-01-02T00:00:00Z"),
     _ranked("ready-earlier", node="n", ready="2024-01-01T00:00:00Z")),
    (_ranked("restarts", node="n", restarts=5), _ranked("fresh", node="n")),
    (_ranked("newer", node="n", created="2024-02-01T00:00:00Z"), _ranked("older", node="n")),
], ids=["unassigned", "pending", "unknown", "not-ready", "ready-less-time", "restarts", "newer"])
def test_deletion_preference_order(first: Obj, second: Obj) -> None:
    assert [p["metadata"]["name"] for p in rank_pods_for_deletion([second, first])] == \
        [first["metadata"]["name"], second["metadata"]["name"]]


async def test_min_ready_seconds_delays_availability(cluster: Cluster) -> None:
    await cluster.client.create(REPLICASETS, replica_set(replicas=2, minReadySeconds=1))
    async with cluster.run(ReplicaSetController), cluster.kubelet():
        await cluster.eventually(lambda: _ready_count(cluster, 2))
        assert (await rs_status(cluster)).get("availableReplicas") == 0

        async def available() -> bool:
            return (await rs_status(cluster)).get("availableReplicas") == 2
        await cluster.eventually(available, within=3.5)


def test_failed_creates_set_replica_failure_until_a_sync_succeeds() -> None:
    rs = replica_set(replicas=2)
    now = datetime(2024, 1, 1, tzinfo=UTC)
    failed = calculate_status(rs, [], StatusError(code=403, reason="Forbidden", message="exceeded quota"), now)
    assert failed["conditions"] == [{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                                     "message": "exceeded quota", "lastTransitionTime": "2024-01-01T00:00:00Z"}]
    assert "conditions" not in calculate_status({**rs, "status": failed}, [], None, now)


async def test_slow_start_batches_stop_at_the_first_failing_batch() -> None:
    calls = 0

    async def create() -> None:
        nonlocal calls
        calls += 1
        if calls > 3:
            raise RuntimeError("quota")

    successes, err = await slow_start_batch(20, create)
    # Batches of 1 and 2 succeed; the batch of 4 fails and nothing more is attempted.
    assert (calls, successes, str(err)) == (7, 3, "quota")
