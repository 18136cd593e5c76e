"""The controller manager under leader election: a lost Lease means campaigning again, not dying."""

from __future__ import annotations

import asyncio
import datetime

from kubeling.api.errors import StatusError
from kubeling.client.resources import LEASES
from kubeling.controllers.manager import ControllerManager

from .conftest import Cluster


def micro() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def holder(cluster: Cluster) -> str:
    try:
        lease = await cluster.client.get(LEASES, "kube-controller-manager", namespace="kube-system")
    except StatusError as err:
        if err.code == 404:
            return ""
        raise
    return str(lease["spec"].get("holderIdentity") or "")


async def test_lost_lease_campaigns_again(cluster: Cluster) -> None:
    manager = ControllerManager(cluster.client, enabled=["namespace"], identity="me")
    manager.lease_duration, manager.renew_deadline, manager.retry_period = 1.0, 0.6, 0.1
    task = asyncio.create_task(manager.run())
    try:
        await cluster.eventually(lambda: _is(holder(cluster), "me"))
        # Another manager takes the Lease over (as after a stall longer than the renew deadline).
        lease = await cluster.client.get(LEASES, "kube-controller-manager", namespace="kube-system")
        lease["spec"].update(holderIdentity="someone-else", renewTime=micro(), leaseDurationSeconds=1)
        await cluster.client.update(LEASES, lease)
        await asyncio.sleep(0.5)
        assert not task.done(), "the manager must not end when it loses the Lease"
        # Once the other holder's Lease expires, this manager leads again.
        await cluster.eventually(lambda: _is(holder(cluster), "me"), within=5)
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _is(value: object, expected: str) -> bool:
    return await value == expected  # type: ignore[misc]
