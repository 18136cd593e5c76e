"""Leader election on a coordination.k8s.io/v1 Lease (client-go's leaderelection).

Several replicas of a controller manager or scheduler may run; only one must
act. Each candidate tries to write itself into a shared Lease. Writes are
compare-and-swap on `resourceVersion`, so when two race the API server lets one
win and answers the other with 409. The holder renews `renewTime` every
`retry_period`; others may take the Lease over only once `renewTime +
leaseDurationSeconds` has passed. The holder gives up — cancelling its work —
if it has not renewed for `renew_deadline`, which is shorter than the lease
duration: so it stops before anyone else may start, and two electors never
lead at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from kubeling.api.errors import StatusError
from kubeling.client.errors import APIUnavailable
from kubeling.client.resources import LEASES
from kubeling.client.rest import KubeClient

log = logging.getLogger(__name__)

MICROTIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
JITTER = 1.2  # client-go's JitterFactor for retries while acquiring


class LostLeadership(Exception):
    """Raised by `LeaderElector.run` when renewing failed: the process should exit or restart."""


def format_microtime(moment: datetime) -> str:
    """A metav1.MicroTime: "2006-01-02T15:04:05.000000Z"."""
    return moment.astimezone(UTC).strftime(MICROTIME_FORMAT)


def parse_microtime(value: str | None) -> datetime | None:
    """Parse a MicroTime (or a second-precision Time); None when absent or malformed."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


class LeaderElector:
    """Campaigns for one Lease and runs a callback while holding it."""

    def __init__(self, client: KubeClient, *, name: str, namespace: str = "kube-system", identity: str,
                 lease_duration: float = 15.0, renew_deadline: float = 10.0, retry_period: float = 2.0,
                 release_on_cancel: bool = True) -> None:
        if not 0 < retry_period < renew_deadline < lease_duration:
            raise ValueError("need 0 < retry_period < renew_deadline < lease_duration")
        self.client = client
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.release_on_cancel = release_on_cancel
        self._is_leader = False
        self._observed_holder: str | None = None

    @property
    def is_leader(self) -> bool:
        """Whether this elector currently holds the Lease (as of its last successful renew)."""
        return self._is_leader

    @property
    def observed_holder(self) -> str | None:
        """The holderIdentity of the Lease as last read."""
        return self._observed_holder

    async def run(self, on_started_leading: Callable[[], Awaitable[None]]) -> None:
        """Acquire the Lease, run the callback while renewing it, and give it up at the end.

        Returns when the callback returns; re-raises what it raises; raises
        `LostLeadership` (after cancelling the callback) when renewal fails for
        `renew_deadline`. Cancelling `run` cancels the callback too. Unless the
        leadership was lost, the Lease is released so a successor need not wait.
        """
        await self._acquire()
        self._is_leader = True
        log.info("%s became leader of lease %s/%s", self.identity, self.namespace, self.name)
        work = asyncio.create_task(on_started_leading(), name=f"leader:{self.name}")
        lost = False
        try:
            lost = not await self._renew_until(work)
            if lost:
                raise LostLeadership(f"{self.identity} lost lease {self.namespace}/{self.name}")
            await work  # finished by itself: propagate its result or exception
        finally:
            self._is_leader = False
            if not work.done():
                work.cancel()
                with contextlib.suppress(BaseException):
                    await work
            if not lost and self.release_on_cancel:
                await asyncio.shield(self._release())

    async def _acquire(self) -> None:
        while True:
            if await self._try(acquiring=True):
                return
            await asyncio.sleep(self.retry_period * random.uniform(1.0, JITTER))

    async def _renew_until(self, work: asyncio.Task[None]) -> bool:
        """Renew every retry_period while `work` runs; False once renewal failed past the deadline."""
        loop = asyncio.get_running_loop()
        last_renew = loop.time()
        while True:
            # Never sleep past the deadline: give up as soon as it passes, not a retry_period later.
            pause = min(self.retry_period, last_renew + self.renew_deadline - loop.time())
            await asyncio.wait([work], timeout=max(pause, 0.0))
            if work.done():
                return True
            remaining = last_renew + self.renew_deadline - loop.time()
            if remaining <= 0:
                log.warning("%s failed to renew lease %s/%s within %.1fs",
                            self.identity, self.namespace, self.name, self.renew_deadline)
                return False
            try:
                # A hung request must not outlive the deadline: bound every attempt by what is left.
                ok = await asyncio.wait_for(self._try(acquiring=False), remaining)
            except TimeoutError:
                ok = False
            if ok:
                last_renew = loop.time()
            elif self._observed_holder not in (None, "", self.identity):
                log.warning("lease %s/%s was taken by %s", self.namespace, self.name, self._observed_holder)
                return False

    async def _try(self, *, acquiring: bool) -> bool:
        """One tryAcquireOrRenew: create the Lease, renew ours, or take over an expired one."""
        now = datetime.now(UTC)
        try:
            lease = await self.client.get(LEASES, self.name, namespace=self.namespace)
        except StatusError as err:
            if err.code != 404:
                log.warning("reading lease %s/%s failed: %s", self.namespace, self.name, err)
                return False
            return await self._write(None, now)
        except APIUnavailable as err:
            log.warning("reading lease %s/%s failed: %s", self.namespace, self.name, err)
            return False
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        self._observed_holder = holder
        if holder and holder != self.identity:
            if not acquiring:
                return False  # someone else holds what we thought was ours: we lost it
            renewed = parse_microtime(spec.get("renewTime")) or parse_microtime(spec.get("acquireTime"))
            duration = spec.get("leaseDurationSeconds") or self._duration_seconds()
            if renewed is not None and renewed + timedelta(seconds=duration) > now:
                return False  # held and not expired
        return await self._write(lease, now)

    async def _write(self, lease: dict[str, Any] | None, now: datetime) -> bool:
        stamp = format_microtime(now)
        old = (lease or {}).get("spec") or {}
        ours = old.get("holderIdentity") == self.identity
        spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self._duration_seconds(),
            "acquireTime": old.get("acquireTime") if ours and old.get("acquireTime") else stamp,
            "renewTime": stamp,
            "leaseTransitions": int(old.get("leaseTransitions") or 0) + (0 if ours or lease is None else 1),
        }
        try:
            if lease is None:
                body = {"apiVersion": LEASES.api_version, "kind": LEASES.kind,
                        "metadata": {"name": self.name, "namespace": self.namespace}, "spec": spec}
                await self.client.create(LEASES, body, namespace=self.namespace)
            else:
                # resourceVersion in the body makes this a compare-and-swap: a 409 means someone else wrote first.
                await self.client.update(LEASES, {**lease, "spec": {**old, **spec}})
        except StatusError as err:
            if err.code != 409:
                log.warning("writing lease %s/%s failed: %s", self.namespace, self.name, err)
            return False
        except APIUnavailable as err:
            log.warning("writing lease %s/%s failed: %s", self.namespace, self.name, err)
            return False
        self._observed_holder = self.identity
        return True

    async def _release(self) -> None:
        """Step down: clear holderIdentity so a successor need not wait out the lease (ReleaseOnCancel)."""
        try:
            lease = await self.client.get(LEASES, self.name, namespace=self.namespace)
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") != self.identity:
                return
            stamp = format_microtime(datetime.now(UTC))
            await self.client.update(LEASES, {**lease, "spec": {
                **spec, "holderIdentity": "", "leaseDurationSeconds": 1, "acquireTime": stamp, "renewTime": stamp}})
            log.info("%s released lease %s/%s", self.identity, self.namespace, self.name)
        except (StatusError, APIUnavailable) as err:
            log.warning("releasing lease %s/%s failed: %s", self.namespace, self.name, err)

    def _duration_seconds(self) -> int:
        # leaseDurationSeconds is an int32; round up so the others never see a shorter lease than ours.
        return max(1, math.ceil(self.lease_duration))
