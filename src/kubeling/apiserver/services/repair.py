"""The repair loop: rebuild the ClusterIP and NodePort bitmaps from the Services.

Why: the bitmap and the Services are two keys written one after the other. A
crash (or a cancelled request) between the allocation and the Service write
leaks an address; a restore from an old backup, or a range change, can leave
Services holding addresses the bitmap thinks are free. Kubernetes runs
`ipallocator/controller.Repair` and `portallocator/controller.Repair` at start
and every few minutes; so do we (at start and every 60 s).

Each run reads the bitmap (with its revision), lists every Service, builds
the bitmap the Services imply and writes it with compare-and-swap — a
concurrent allocation makes the CAS fail and the run starts over, so an
in-flight create is never undone. An entry allocated but used by no Service
is freed only after it was seen leaked in `leak_threshold` consecutive runs
(an allocation whose Service write is still in flight looks exactly like a
leak once). Duplicates and out-of-range values cannot be fixed by the server:
they are reported as Warning events on the Services and in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from kubeling.apiserver import objects
from kubeling.apiserver.services.allocator import RangeAllocator
from kubeling.apiserver.services.hooks import allocated_ip, allocated_ports
from kubeling.storage.interface import Store

Obj = dict[str, Any]
EventSink = Callable[[Obj, str, str], Awaitable[None]]
log = logging.getLogger(__name__)

SERVICES_PREFIX = "/registry/core/services/"
REPAIR_INTERVAL = 60.0
LEAK_THRESHOLD = 3  # Kubernetes' numRepairsBeforeLeakCleanup


class RangeRepair:
    """Reconciles one allocator's bitmap with the values the Services hold."""

    def __init__(self, store: Store, allocator: RangeAllocator, values: Callable[[Obj], list[Any]],
                 *, what: str, on_event: EventSink | None = None, leak_threshold: int = LEAK_THRESHOLD) -> None:
        self.store = store
        self.allocator = allocator
        self.values = values
        self.what = what  # "ClusterIP" | "Port"
        self.on_event = on_event
        self.leak_threshold = leak_threshold
        self.leaks: dict[int, int] = {}  # offset → consecutive runs it was seen leaked

    async def run_once(self, services: list[Obj] | None = None) -> None:
        """One repair; retried when an allocation raced with it."""
        for _ in range(16):
            bitmap, revision = await self.allocator.snapshot()
            svcs = services if services is not None else await list_services(self.store)
            rebuilt, reports = self._rebuild(svcs)
            leaked = bitmap & ~rebuilt
            still: dict[int, int] = {}
            rest = leaked
            while rest:
                low = rest & -rest
                rest ^= low
                off = low.bit_length() - 1
                seen = self.leaks.get(off, 0) + 1
                if seen < self.leak_threshold:
                    still[off] = seen
                    rebuilt |= low  # keep it for now: its Service write may be in flight
                else:
                    log.warning("%s %s is allocated but unused: freeing it", self.what,
                                self.allocator.value(off))
            missing = rebuilt & ~bitmap
            if rebuilt == bitmap and revision:
                self.leaks = still
                break
            if await self.allocator.replace(rebuilt, revision):
                self.leaks = still
                if missing:
                    log.warning("repaired %d %s allocation(s) missing from %s", missing.bit_count(),
                                self.what, self.allocator.key)
                break
            services = None  # lost a race with an allocation: start over on fresh data
        else:
            log.warning("could not repair %s: too many concurrent writers", self.allocator.key)
            return
        for svc, reason, message in reports:
            log.warning("%s", message)
            if self.on_event is not None:
                with contextlib.suppress(Exception):
                    await self.on_event(svc, reason, message)

    def _rebuild(self, services: list[Obj]) -> tuple[int, list[tuple[Obj, str, str]]]:
        bitmap = 0
        reports: list[tuple[Obj, str, str]] = []
        label = "Cluster IP [IPv4]:" if self.what == "ClusterIP" else "Port "
        cidr = self.allocator.range_text
        for svc in services:
            for value in self.values(svc):
                if not self.allocator.contains(value):
                    reports.append((svc, f"{self.what}OutOfRange",
                                    f"{label}{value} is not within the configured "
                                    f"{'Service CIDR' if self.what == 'ClusterIP' else 'port range'} "
                                    f"{cidr}; please recreate service"))
                    continue
                off = self.allocator.offset(value)
                if bitmap >> off & 1:
                    reports.append((svc, f"{self.what}AlreadyAllocated",
                                    f"{label}{value} was assigned to multiple services; please recreate service"))
                bitmap |= 1 << off
        return bitmap, reports


async def list_services(store: Store) -> list[Obj]:
    out: list[Obj] = []
    start = ""
    while True:
        page = await store.range(SERVICES_PREFIX, start_after=start, limit=500)
        out.extend(objects.decode_from_store(kv) for kv in page.kvs)
        if not page.more or not page.kvs:
            return out
        start = page.kvs[-1].key


def ip_values(svc: Obj) -> list[Any]:
    ip = allocated_ip(svc)
    return [ip] if ip else []


def port_values(svc: Obj) -> list[Any]:
    """Every NodePort number of the Service, once per (number, protocol) pair, plus healthCheckNodePort."""
    spec = svc.get("spec") or {}
    seen: set[int] = set()
    out: list[Any] = []
    for port in spec.get("ports") or []:
        number = port.get("nodePort") if isinstance(port, dict) else None
        if number and number not in seen:
            seen.add(number)
            out.append(int(number))
    out.extend(p for p in allocated_ports(svc) if p not in seen)
    return out


class Repairer:
    """Both repairs, at start (`run_once`) and then every `interval` seconds (`start`/`stop`)."""

    def __init__(self, store: Store, ips: RangeAllocator, ports: RangeAllocator, *,
                 on_event: EventSink | None = None, interval: float = REPAIR_INTERVAL,
                 leak_threshold: int = LEAK_THRESHOLD) -> None:
        self.store = store
        self.interval = interval
        self.ips = RangeRepair(store, ips, ip_values, what="ClusterIP", on_event=on_event,
                               leak_threshold=leak_threshold)
        self.ports = RangeRepair(store, ports, port_values, what="Port", on_event=on_event,
                                 leak_threshold=leak_threshold)
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> None:
        services = await list_services(self.store)
        await self.ips.run_once(services)
        await self.ports.run_once(services)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="service-range-repair")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("service range repair failed")
