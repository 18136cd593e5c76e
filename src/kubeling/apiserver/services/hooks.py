"""What the REST storage does to a Service around its store write: allocate
ClusterIPs and NodePorts, and free them again.

Kubernetes does this in the Service registry (`pkg/registry/core/service/
storage`), not in a controller, because the address must be in the object the
create returns and a refused address must be a 422 on that very request. The
allocations happen just before the write and are undone if the write fails
(lost race, AlreadyExists, cancellation); what an update no longer uses is
freed only after the write succeeded — so a failure never leaves a Service
without the address it still holds. Whatever still slips through (a crash
between allocation and write) is what the repair loop is for.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from kubeling.api import errors
from kubeling.api.registry import ResourceInfo
from kubeling.api.validation.labels import GoValue
from kubeling.apiserver.services.allocator import (
    AllocationError,
    ClusterIPAllocator,
    NodePortAllocator,
    RangeAllocator,
    RangeFull,
)

Obj = dict[str, Any]
log = logging.getLogger(__name__)


def needs_cluster_ip(spec: Obj) -> bool:
    return spec.get("type") != "ExternalName"


def needs_node_ports(spec: Obj) -> bool:
    stype = spec.get("type")
    return stype == "NodePort" or (stype == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is not False)


def needs_health_check_node_port(spec: Obj) -> bool:
    return spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"


def allocated_ip(svc: Obj | None) -> str:
    """The ClusterIP a stored Service holds in the allocator ("" when none)."""
    spec = (svc or {}).get("spec") or {}
    ip = str(spec.get("clusterIP") or "")
    return ip if ip and ip != "None" and needs_cluster_ip(spec) else ""


def allocated_ports(svc: Obj | None) -> set[int]:
    """The NodePorts (and healthCheckNodePort) a stored Service holds."""
    spec = (svc or {}).get("spec") or {}
    out = {int(p["nodePort"]) for p in spec.get("ports") or [] if isinstance(p, dict) and p.get("nodePort")}
    if spec.get("healthCheckNodePort"):
        out.add(int(spec["healthCheckNodePort"]))
    return out


class Transaction:
    """Allocations made for one write: `revert` frees them, `commit` frees what the old object gave up."""

    def __init__(self) -> None:
        self.allocated: list[tuple[RangeAllocator, Any]] = []
        self.release_on_commit: list[tuple[RangeAllocator, Any]] = []

    async def commit(self) -> None:
        for alloc, value in self.release_on_commit:
            await _release(alloc, value)

    async def revert(self) -> None:
        for alloc, value in reversed(self.allocated):
            await _release(alloc, value)
        self.allocated.clear()


async def _release(alloc: RangeAllocator, value: Any) -> None:
    try:
        await alloc.release(value)
    except Exception:  # the repair loop frees it later
        log.exception("could not release %s from %s", value, alloc.key)


class ServiceHooks:
    """The `services` write hook of the REST storage (see `rest.WriteHook`)."""

    def __init__(self, ips: ClusterIPAllocator, ports: NodePortAllocator) -> None:
        self.ips = ips
        self.ports = ports

    async def before_create(self, info: ResourceInfo, obj: Obj, *, dry_run: bool) -> Transaction:
        return await self._allocate(obj, None, dry_run)

    async def before_update(self, info: ResourceInfo, old: Obj, new: Obj, *, dry_run: bool) -> Transaction:
        return await self._allocate(new, old, dry_run)

    async def after_delete(self, info: ResourceInfo, obj: Obj) -> None:
        ip = allocated_ip(obj)
        if ip:
            await _release(self.ips, ip)
        for port in allocated_ports(obj):
            await _release(self.ports, port)

    async def _allocate(self, obj: Obj, old: Obj | None, dry_run: bool) -> Transaction:
        txn = Transaction()
        causes: list[errors.Cause] = []
        try:
            await self._cluster_ip(obj, old, txn, dry_run, causes)
            await self._node_ports(obj, old, txn, dry_run, causes)
        except RangeFull as exc:
            await txn.revert()
            raise errors.InternalError(f"failed to allocate a service {exc}") from None
        except BaseException:
            await txn.revert()
            raise
        if causes:
            await txn.revert()
            raise errors.Invalid("Service", str(obj["metadata"].get("name", "")), causes)
        return txn

    # ---- ClusterIP ---------------------------------------------------------------------

    async def _cluster_ip(self, obj: Obj, old: Obj | None, txn: Transaction, dry_run: bool,
                          causes: list[errors.Cause]) -> None:
        spec = obj.setdefault("spec", {})
        old_ip = allocated_ip(old)
        if not needs_cluster_ip(spec):
            if spec.get("clusterIP") or spec.get("clusterIPs"):
                causes.append(errors.forbidden("spec.clusterIP", "may not be set for ExternalName services"))
            if old_ip:
                txn.release_on_commit.append((self.ips, old_ip))
            return
        ip = str(spec.get("clusterIP") or "")
        ips = [str(i) for i in spec.get("clusterIPs") or []]
        if ips and not ip:
            ip = ips[0]
        if ip and ips and ips[0] != ip:
            causes.append(errors.invalid("spec.clusterIPs[0]", ips[0], "must match `clusterIP`"))
            return
        for i, extra in enumerate(ips[1:], start=1):
            causes.append(errors.invalid(f"spec.clusterIPs[{i}]", extra,
                                         "only one IP family (IPv4) is configured on this cluster"))
        if causes:
            return
        if ip and ip != "None" and ip != old_ip:
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                causes.append(errors.invalid("spec.clusterIPs[0]", ip,
                                             "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"))
                return
            try:
                await (self.ips.check(ip) if dry_run else self.ips.allocate(ip))
            except AllocationError as exc:
                causes.append(errors.invalid("spec.clusterIPs", GoValue(f'[]string{{"{ip}"}}'),
                                             f"failed to allocate IP {ip}: {exc}"))
                return
            if not dry_run:
                txn.allocated.append((self.ips, ip))
        elif not ip and not dry_run:
            ip = str(await self.ips.allocate_next())
            txn.allocated.append((self.ips, ip))
        if old_ip and old_ip != ip:
            txn.release_on_commit.append((self.ips, old_ip))
        if ip:
            spec["clusterIP"] = ip
            spec["clusterIPs"] = [ip]
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")

    # ---- NodePorts -----------------------------------------------------------------------

    async def _node_ports(self, obj: Obj, old: Obj | None, txn: Transaction, dry_run: bool,
                          causes: list[errors.Cause]) -> None:
        spec = obj["spec"]
        owned = allocated_ports(old)
        taken: set[int] = set()       # allocated for this object in this transaction
        pairs: set[tuple[int, str]] = set()
        auto = needs_node_ports(spec)
        for i, port in enumerate(spec.get("ports") or []):
            if not isinstance(port, dict):
                continue
            number = port.get("nodePort")
            if number:
                pair = (int(number), str(port.get("protocol") or "TCP"))
                if pair in pairs:
                    causes.append(errors.duplicate(f"spec.ports[{i}].nodePort", number))
                    continue
                pairs.add(pair)
                await self._take(int(number), f"spec.ports[{i}].nodePort", owned, taken, txn, dry_run, causes)
            elif auto and not dry_run:
                port["nodePort"] = await self._next(txn, taken)
        hc = spec.get("healthCheckNodePort")
        if needs_health_check_node_port(spec):
            if hc:
                await self._take(int(hc), "spec.healthCheckNodePort", owned, taken, txn, dry_run, causes)
            elif not dry_run:
                spec["healthCheckNodePort"] = await self._next(txn, taken)
        elif hc and int(hc) not in owned:
            causes.append(errors.invalid("spec.healthCheckNodePort", hc, "may only be set when `type` is "
                                         "'LoadBalancer' and `externalTrafficPolicy` is 'Local'"))
        keep = allocated_ports(obj)
        txn.release_on_commit.extend((self.ports, p) for p in sorted(owned - keep))

    async def _take(self, number: int, path: str, owned: set[int], taken: set[int], txn: Transaction,
                    dry_run: bool, causes: list[errors.Cause]) -> None:
        if number in owned or number in taken:
            return  # ours already (the old object's, or another protocol of the same port)
        try:
            await (self.ports.check(number) if dry_run else self.ports.allocate(number))
        except AllocationError as exc:
            causes.append(errors.invalid(path, number, str(exc)))
            return
        taken.add(number)
        if not dry_run:
            txn.allocated.append((self.ports, number))

    async def _next(self, txn: Transaction, taken: set[int]) -> int:
        number = int(await self.ports.allocate_next())
        taken.add(number)
        txn.allocated.append((self.ports, number))
        return number
