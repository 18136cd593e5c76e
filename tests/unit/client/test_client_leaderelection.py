"""LeaderElector on a fake Lease store: one leader at a time, takeover after expiry, release."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

import pytest

from kubeling.client.leaderelection import LeaderElector, LostLeadership, format_microtime, parse_microtime
from kubeling.client.rest import KubeClient
from tests.unit.client.fake_kube_api import FakeAPI, eventually

LEASES = ("coordination.k8s.io", "v1", "leases")
FAST = {"lease_duration": 1.0, "renew_deadline": 0.5, "retry_period": 0.1}
MICROTIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


class Timeline:
    """Records when each candidate's leader callback starts and stops."""

    def __init__(self) -> None:
        self.leading: set[str] = set()
        self.max_concurrent = 0
        self.started: list[str] = []

    def work(self, identity: str):
        async def lead() -> None:
            self.leading.add(identity)
            self.started.append(identity)
            self.max_concurrent = max(self.max_concurrent, len(self.leading))
            try:
                await asyncio.Event().wait()
            finally:
                self.leading.discard(identity)
        return lead


def lease(fake_api: FakeAPI) -> dict:
    return fake_api.objects[LEASES][("kube-system", "ctrl")]["spec"]


def test_microtime_round_trip() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    assert format_microtime(moment) == "2026-01-02T03:04:05.678901Z"
    assert parse_microtime("2026-01-02T03:04:05.678901Z") == moment
    assert parse_microtime("garbage") is None
    with pytest.raises(ValueError):
        LeaderElector(None, name="x", identity="a", lease_duration=1, renew_deadline=2)  # type: ignore[arg-type]


async def test_only_one_leads_and_release_hands_over(client: KubeClient, fake_api: FakeAPI) -> None:
    timeline = Timeline()
    a = LeaderElector(client, name="ctrl", identity="a", **FAST)
    b = LeaderElector(client, name="ctrl", identity="b", **FAST)
    run_a = asyncio.create_task(a.run(timeline.work("a")))
    run_b = asyncio.create_task(b.run(timeline.work("b")))
    await eventually(lambda: timeline.leading)
    await asyncio.sleep(0.4)  # several renew rounds
    assert timeline.max_concurrent == 1 and len(timeline.started) == 1
    first = timeline.started[0]
    leader, follower, leader_task, follower_task = (a, b, run_a, run_b) if first == "a" else (b, a, run_b, run_a)
    assert leader.is_leader and not follower.is_leader
    spec = lease(fake_api)
    assert spec["holderIdentity"] == first and spec["leaseDurationSeconds"] == 1
    assert MICROTIME.match(spec["renewTime"]) and MICROTIME.match(spec["acquireTime"])
    assert spec["leaseTransitions"] == 0

    # Cancelling the leader releases the Lease: the follower takes over without waiting out the duration.
    loop = asyncio.get_running_loop()
    leader_task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leader_task
    stopped = loop.time()
    await eventually(lambda: follower.is_leader, within=2)
    assert loop.time() - stopped < 0.9
    assert timeline.max_concurrent == 1
    assert lease(fake_api)["holderIdentity"] == follower.identity
    assert lease(fake_api)["leaseTransitions"] == 1
    follower_task.cancel()
    await asyncio.gather(follower_task, return_exceptions=True)


async def test_leader_that_cannot_renew_steps_down_before_takeover(client: KubeClient, fake_api: FakeAPI) -> None:
    timeline = Timeline()
    loop = asyncio.get_running_loop()
    async with KubeClient(fake_api.url, timeout=1) as partitioned:
        a = LeaderElector(partitioned, name="ctrl", identity="a", **FAST)
        run_a = asyncio.create_task(a.run(timeline.work("a")))
        await eventually(lambda: a.is_leader)
        b = LeaderElector(client, name="ctrl", identity="b", **FAST)
        run_b = asyncio.create_task(b.run(timeline.work("b")))
        await asyncio.sleep(0.3)
        assert not b.is_leader

        partitioned.base_url = "http://127.0.0.1:9"  # the leader loses the API server
        cut = loop.time()
        with pytest.raises(LostLeadership):
            await asyncio.wait_for(run_a, 2)
        lost_after = loop.time() - cut
        assert "a" not in timeline.leading and not a.is_leader
        assert lost_after <= FAST["renew_deadline"] + 0.2

        await eventually(lambda: b.is_leader, within=3)
        assert timeline.max_concurrent == 1  # a had stopped before b started
        assert loop.time() - cut >= 0.5  # b waited for the lease to expire
        assert lease(fake_api)["holderIdentity"] == "b" and lease(fake_api)["leaseTransitions"] == 1
        run_b.cancel()
        await asyncio.gather(run_b, return_exceptions=True)


async def test_callback_return_releases_lease(client: KubeClient, fake_api: FakeAPI) -> None:
    done = []

    async def short_work() -> None:
        done.append(True)

    elector = LeaderElector(client, name="ctrl", identity="a", **FAST)
    await asyncio.wait_for(elector.run(short_work), 2)
    assert done == [True] and not elector.is_leader
    assert lease(fake_api)["holderIdentity"] == ""


async def test_conflicting_write_loses_the_race(client: KubeClient, fake_api: FakeAPI) -> None:
    elector = LeaderElector(client, name="ctrl", identity="a", **FAST)
    assert await elector._try(acquiring=True)
    stale = fake_api.objects[LEASES][("kube-system", "ctrl")]
    fake_api.put(LEASES, {**stale, "spec": {**stale["spec"], "holderIdentity": ""}})  # someone else wrote

    other = LeaderElector(client, name="ctrl", identity="b", **FAST)
    assert not await other._write(stale, datetime.now(UTC))  # 409 on the stale resourceVersion
