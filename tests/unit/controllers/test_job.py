"""Job controller against the real API server: completions with parallelism, the
backoff limit, the active deadline, tracking finalizers, Indexed jobs, suspend, TTL."""

from __future__ import annotations

import asyncio
from typing import Any

from kubeling.client import Informer
from kubeling.client.resources import EVENTS, JOBS, PODS
from kubeling.controllers.job import JobController
from kubeling.controllers.job.tracking import TRACKING_FINALIZER
from tests.unit.controllers.conftest_workloads import Cluster, cluster_fixture, eventually  # noqa: F401

Obj = dict[str, Any]
FAST = {"backoff_base": 0.01, "backoff_max": 0.05}


def job(name: str = "pi", **spec: Any) -> Obj:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": "default"},
            "spec": {"template": {"spec": {"restartPolicy": "Never",
                                           "containers": [{"name": "c", "image": "busybox"}]}}, **spec}}


async def get_job(c: Cluster, name: str = "pi") -> Obj:
    return await c.client.get(JOBS, name, namespace="default")


def has_condition(obj: Obj, type_: str, reason: str | None = None) -> bool:
    return any(c["type"] == type_ and c["status"] == "True" and (reason is None or c.get("reason") == reason)
               for c in (obj.get("status") or {}).get("conditions") or [])


async def condition(c: Cluster, type_: str, reason: str | None = None, name: str = "pi") -> Obj | None:
    obj = await get_job(c, name)
    return obj if has_condition(obj, type_, reason) else None


async def test_completions_with_parallelism(cluster: Cluster) -> None:
    running = 0
    peak = 0
    watcher = Informer(cluster.client, PODS, namespace="default")

    def count(_old: Obj | None = None, _new: Obj | None = None) -> None:
        nonlocal running, peak
        running = sum(1 for p in watcher.list() if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
                      and not p["metadata"].get("deletionTimestamp"))
        peak = max(peak, running)
    watcher.add_handler(on_add=lambda p: count(), on_update=count)
    await watcher.start()
    await cluster.kubelet(lambda pod: "Succeeded")
    await cluster.run(JobController, **FAST)
    await cluster.client.create(JOBS, job(completions=3, parallelism=2))
    try:
        done = await eventually(lambda: condition(cluster, "Complete"))
    finally:
        await watcher.stop()
    st = done["status"]
    assert st["succeeded"] == 3 and st["active"] == 0 and st.get("failed", 0) == 0
    assert st["startTime"] and st["completionTime"] and st["uncountedTerminatedPods"] == {}
    assert peak <= 2
    pods = await cluster.pods()
    assert len(pods) == 3
    for pod in pods:
        labels = pod["metadata"]["labels"]
        assert labels["batch.kubernetes.io/job-name"] == labels["job-name"] == "pi"
        assert labels["batch.kubernetes.io/controller-uid"] == done["metadata"]["uid"]
        assert pod["metadata"]["ownerReferences"][0]["kind"] == "Job"
        assert TRACKING_FINALIZER not in (pod["metadata"].get("finalizers") or [])
    reasons = {(e["reason"], e["message"].split(":")[0]) for e in
               (await cluster.client.list(EVENTS, namespace="default"))["items"]}
    assert ("SuccessfulCreate", "Created pod") in reasons and ("Completed", "Job completed") in reasons


async def test_tracking_finalizer_keeps_counts_when_pods_are_deleted(cluster: Cluster) -> None:
    kubelet = await cluster.kubelet(lambda pod: None)
    await cluster.run(JobController, **FAST)
    await cluster.client.create(JOBS, job(completions=1))

    async def pending() -> list[Obj]:
        return await cluster.pods()
    pods = await eventually(pending)
    assert pods[0]["metadata"]["finalizers"] == [TRACKING_FINALIZER]
    kubelet.behaviour = lambda pod: "Succeeded"
    await kubelet.resync()
    done = await eventually(lambda: condition(cluster, "Complete"))
    assert done["status"]["succeeded"] == 1


async def test_backoff_limit_exceeded(cluster: Cluster) -> None:
    await cluster.kubelet(lambda pod: "Failed")
    await cluster.run(JobController, **FAST)
    await cluster.client.create(JOBS, job(backoffLimit=2))
    failed = await eventually(lambda: condition(cluster, "Failed", "BackoffLimitExceeded"))
    assert failed["status"]["failed"] == 3
    assert not has_condition(failed, "Complete")
    await asyncio.sleep(0.2)
    assert len(await cluster.pods()) == 3  # no pod after the limit
    events = (await cluster.client.list(EVENTS, namespace="default"))["items"]
    assert any(e["reason"] == "BackoffLimitExceeded" for e in events)


async def test_active_deadline_deletes_running_pods(cluster: Cluster) -> None:
    await cluster.kubelet()  # pods run forever
    await cluster.run(JobController, **FAST)
    await cluster.client.create(JOBS, job(parallelism=2, completions=4, activeDeadlineSeconds=2))
    # Both pods are created in the first sync and run until the deadline kills them.
    failed = await eventually(lambda: condition(cluster, "Failed", "DeadlineExceeded"), within=8.0)
    assert failed["status"]["active"] == 0 and failed["status"]["failed"] == 2

    async def pods_gone() -> bool:
        return await cluster.pods() == []
    await eventually(pods_gone)


async def test_indexed_job(cluster: Cluster) -> None:
    await cluster.kubelet(lambda pod: "Succeeded")
    await cluster.run(JobController, **FAST)
    await cluster.client.create(JOBS, job(completions=3, parallelism=3, completionMode="Indexed"))
    done = await eventually(lambda: condition(cluster, "Complete"))
    assert done["status"]["completedIndexes"] == "0-2" and done["status"]["succeeded"] == 3
    indexes = sorted(p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
                     for p in await cluster.pods())
    assert indexes == ["0", "1", "2"]


async def test_suspend_and_resume(cluster: Cluster) -> None:
    await cluster.kubelet(lambda pod: None)
    await cluster.run(JobController, **FAST)
    await cluster.client.create(JOBS, job(suspend=True))
    await eventually(lambda: condition(cluster, "Suspended"))
    assert await cluster.pods() == []
    await cluster.client.patch(JOBS, "pi", {"spec": {"suspend": False}}, namespace="default")

    async def one_pod() -> bool:
        return len(await cluster.pods()) == 1
    await eventually(one_pod)
    assert not has_condition(await get_job(cluster), "Suspended")


async def test_ttl_after_finished_deletes_the_job(cluster: Cluster) -> None:
    await cluster.kubelet(lambda pod: "Succeeded")
    await cluster.run(JobController, **FAST)
    await cluster.client.create(JOBS, job(ttlSecondsAfterFinished=0))

    async def gone_or_deleting() -> bool:
        items = (await cluster.client.list(JOBS, namespace="default"))["items"]
        return not items or bool(items[0]["metadata"].get("deletionTimestamp"))
    await eventually(gone_or_deleting)
