"""CronJob controller against the real API server with an injected clock: firing on
schedule, concurrency policies, the starting deadline, history limits, suspend."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest

from kubeling.client.resources import CRONJOBS, EVENTS, JOBS
from kubeling.controllers.cronjob import CronJobController
from kubeling.controllers.cronjob.schedule import Schedule
from tests.unit.controllers.conftest_workloads import Cluster, cluster_fixture, eventually  # noqa: F401

Obj = dict[str, Any]
KEY = "default/tick"


class Clock:
    """A settable clock; starts a little past real time so the CronJob's creation is in its past."""

    def __init__(self) -> None:
        self.t = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) + dt.timedelta(seconds=30)

    def __call__(self) -> dt.datetime:
        return self.t

    def to_next_minute(self) -> dt.datetime:
        self.t = self.t.replace(second=0) + dt.timedelta(minutes=1, seconds=5)
        return self.t.replace(second=0)


def cronjob(**spec: Any) -> Obj:
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "tick", "namespace": "default"},
            "spec": {"schedule": "* * * * *", **spec, "jobTemplate": {
                "metadata": {"labels": {"app": "tick"}},
                "spec": {"template": {"spec": {"restartPolicy": "Never",
                                               "containers": [{"name": "c", "image": "busybox"}]}}}}}}


async def jobs(c: Cluster) -> list[Obj]:
    items = (await c.client.list(JOBS, namespace="default"))["items"]
    return sorted((j for j in items if not j["metadata"].get("deletionTimestamp")),
                  key=lambda j: j["metadata"]["name"])


async def finish(c: Cluster, job: Obj, outcome: str = "Complete") -> None:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    conds = [{"type": "SuccessCriteriaMet" if outcome == "Complete" else "FailureTarget", "status": "True",
              "lastTransitionTime": now},
             {"type": outcome, "status": "True", "lastTransitionTime": now}]
    status: Obj = {"conditions": conds, "startTime": now}
    if outcome == "Complete":
        status.update(completionTime=now, succeeded=1)
    else:
        status.update(failed=1)
    await c.client.patch(JOBS, job["metadata"]["name"], {"status": status}, namespace="default",
                         subresource="status")


async def status(c: Cluster) -> Obj:
    return (await c.client.get(CRONJOBS, "tick", namespace="default")).get("status") or {}


async def tick(c: Cluster, ctrl: CronJobController, clock: Clock, want_jobs: int) -> list[Obj]:
    clock.to_next_minute()
    ctrl.enqueue_key(KEY)

    async def settled() -> list[Obj] | None:
        js = await jobs(c)
        return js if len(js) == want_jobs else None
    return await eventually(settled)


@pytest.mark.parametrize(("spec", "when", "want"), [
    ("*/15 * * * *", "2026-01-01T10:07:00+00:00", "2026-01-01T10:15:00+00:00"),
    ("@daily", "2026-01-01T10:07:00+00:00", "2026-01-02T00:00:00+00:00"),
    ("0 0 29 2 *", "2026-01-01T10:07:00+00:00", "2028-02-29T00:00:00+00:00"),
    ("0 9 1 * 1", "2026-01-01T10:07:00+00:00", "2026-01-05T09:00:00+00:00"),  # day-of-month OR day-of-week
], ids=["step", "daily", "leap-day", "dom-or-dow"])
def test_next_schedule_time(spec: str, when: str, want: str) -> None:
    assert Schedule.parse(spec).next_after(dt.datetime.fromisoformat(when)) == dt.datetime.fromisoformat(want)


def test_time_zone() -> None:
    nine_paris = Schedule.parse("0 9 * * *", "Europe/Paris").next_after(
        dt.datetime.fromisoformat("2026-07-01T00:00:00+00:00"))
    assert nine_paris == dt.datetime.fromisoformat("2026-07-01T07:00:00+00:00")


async def test_fires_on_schedule_and_tracks_completion(cluster: Cluster) -> None:
    clock = Clock()
    ctrl = await cluster.run(CronJobController, now=clock)
    await cluster.client.create(CRONJOBS, cronjob())
    await asyncio.sleep(0.2)
    assert await jobs(cluster) == []
    scheduled = clock.to_next_minute()
    ctrl.enqueue_key(KEY)
    [job] = await eventually(lambda: jobs(cluster))
    assert job["metadata"]["name"] == f"tick-{int(scheduled.timestamp()) // 60}"
    assert job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"] == \
        scheduled.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert job["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    assert job["metadata"]["labels"]["app"] == "tick"

    async def active() -> Obj | None:
        st = await status(cluster)
        return st if st.get("active") else None
    st = await eventually(active)
    assert st["active"][0]["name"] == job["metadata"]["name"]
    assert st["lastScheduleTime"] == scheduled.strftime("%Y-%m-%dT%H:%M:%SZ")

    await finish(cluster, job)

    async def completed() -> Obj | None:
        st = await status(cluster)
        return st if not st.get("active") and st.get("lastSuccessfulTime") else None
    await eventually(completed)
    events = {(e["reason"], e["message"]) for e in (await cluster.client.list(EVENTS, namespace="default"))["items"]}
    assert ("SuccessfulCreate", f"Created job {job['metadata']['name']}") in events
    assert ("SawCompletedJob", f"Saw completed job: {job['metadata']['name']}, condition: Complete") in events


async def test_forbid_skips_while_active(cluster: Cluster) -> None:
    clock = Clock()
    ctrl = await cluster.run(CronJobController, now=clock)
    await cluster.client.create(CRONJOBS, cronjob(concurrencyPolicy="Forbid"))
    [first] = await tick(cluster, ctrl, clock, 1)
    await eventually(lambda: status(cluster))
    clock.to_next_minute()
    ctrl.enqueue_key(KEY)
    await asyncio.sleep(0.3)
    assert [j["metadata"]["name"] for j in await jobs(cluster)] == [first["metadata"]["name"]]
    await finish(cluster, first)
    await eventually(lambda: len_is(cluster, 2))  # the skipped slot runs once the active job is done


async def len_is(c: Cluster, n: int) -> bool:
    return len(await jobs(c)) == n


async def test_replace_deletes_the_active_job(cluster: Cluster) -> None:
    clock = Clock()
    ctrl = await cluster.run(CronJobController, now=clock)
    await cluster.client.create(CRONJOBS, cronjob(concurrencyPolicy="Replace"))
    [first] = await tick(cluster, ctrl, clock, 1)

    async def tracked() -> bool:
        return bool((await status(cluster)).get("active"))
    await eventually(tracked)
    clock.to_next_minute()
    ctrl.enqueue_key(KEY)

    async def replaced() -> bool:
        names = [j["metadata"]["name"] for j in await jobs(cluster)]
        return len(names) == 1 and names != [first["metadata"]["name"]]
    await eventually(replaced)
    events = {(e["reason"], e["message"]) for e in (await cluster.client.list(EVENTS, namespace="default"))["items"]}
    assert ("SuccessfulDelete", f"Deleted job {first['metadata']['name']}") in events


async def test_history_limits(cluster: Cluster) -> None:
    clock = Clock()
    ctrl = await cluster.run(CronJobController, now=clock)
    await cluster.client.create(CRONJOBS, cronjob(successfulJobsHistoryLimit=1, failedJobsHistoryLimit=1))
    names = []
    for outcome in ["Complete", "Complete", "Failed", "Failed"]:
        before = {j["metadata"]["name"] for j in await jobs(cluster)}
        clock.to_next_minute()
        ctrl.enqueue_key(KEY)

        async def created(before: set[str] = before) -> list[Obj]:
            return [j for j in await jobs(cluster) if j["metadata"]["name"] not in before]
        [newest] = await eventually(created)
        names.append(newest["metadata"]["name"])
        await finish(cluster, newest, outcome)

    async def trimmed() -> bool:
        return [j["metadata"]["name"] for j in await jobs(cluster)] == [names[1], names[3]]
    await eventually(trimmed)


async def test_starting_deadline_and_suspend(cluster: Cluster) -> None:
    clock = Clock()
    ctrl = await cluster.run(CronJobController, now=clock)
    await cluster.client.create(CRONJOBS, cronjob(startingDeadlineSeconds=10, suspend=True))
    clock.to_next_minute()
    ctrl.enqueue_key(KEY)
    await asyncio.sleep(0.3)
    assert await jobs(cluster) == []  # suspended
    clock.t += dt.timedelta(seconds=30)  # the slot is now 35 s old: past its 10 s deadline
    await cluster.client.patch(CRONJOBS, "tick", {"spec": {"suspend": False}}, namespace="default")
    await asyncio.sleep(0.3)
    assert await jobs(cluster) == []
    await tick(cluster, ctrl, clock, 1)


async def test_manual_job_is_not_tracked(cluster: Cluster) -> None:
    """`kubectl create job --from=cronjob/tick` makes an owned Job the schedule ignores, as in Kubernetes."""
    clock = Clock()
    ctrl = await cluster.run(CronJobController, now=clock)
    cj = await cluster.client.create(CRONJOBS, cronjob(concurrencyPolicy="Forbid"))
    manual = {"apiVersion": "batch/v1", "kind": "Job",
              "metadata": {"name": "manual", "namespace": "default",
                           "annotations": {"cronjob.kubernetes.io/instantiate": "manual"},
                           "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "tick",
                                                "uid": cj["metadata"]["uid"], "controller": True}]},
              "spec": cj["spec"]["jobTemplate"]["spec"]}
    await cluster.client.create(JOBS, manual)
    js = await tick(cluster, ctrl, clock, 2)
    assert [j["metadata"]["name"] for j in js][0] == "manual"
    st = await eventually(lambda: status(cluster))
    assert [r["name"] for r in st.get("active") or []] == [js[1]["metadata"]["name"]]
