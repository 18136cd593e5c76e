"""ServiceLB: LoadBalancer Services get this node's address as their ingress (k3s's klipper-lb).

On a laptop cluster there is no cloud to hand out load-balancer IPs, and a
Service stuck at `<pending>` is useless. k3s answers with ServiceLB: every node
that can serve the Service's ports on its own address becomes part of the
"load balancer", and the Service's status lists those node addresses. We do
the same: `status.loadBalancer.ingress` gets `{ip: <node address>, ipMode:
VIP}` as soon as the Service is seen, and the proxy of this very process then
serves the ports on that address.

Why it lives in the proxy's process and not in the controller manager: the
decision is a *node* fact — the address is this node's and whether port 80 is
still free on it depends on what this node already serves there — and only
the node's proxy knows both; k3s, too, runs its svclb pods per node. Each
node's ServiceLB owns exactly the ingress entry carrying its own address and
leaves the others alone, so several nodes never fight over one status.

Conflicts are decided deterministically — the oldest Service (creation time,
then namespace/name) keeps a port — so that a restart never hands a port to a
different Service. A loser gets a Warning "PortConflict" event and no ingress
entry for this node; it gets one as soon as the port is free again.
Services with a `spec.loadBalancerClass` belong to another implementation and
are left alone, as in k3s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from kubeling.api.errors import StatusError
from kubeling.client import APIUnavailable, EventRecorder, Informer, KubeClient
from kubeling.client.resources import SERVICES

log = logging.getLogger(__name__)

Obj = Mapping[str, Any]


def _key(svc: Obj) -> str:
    meta = svc.get("metadata") or {}
    return f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"


def _ports(svc: Obj) -> list[tuple[str, int]]:
    return [(p.get("protocol") or "TCP", int(p["port"])) for p in (svc.get("spec") or {}).get("ports") or []
            if p.get("port")]


def assign(services: list[Obj], node_address: str) -> tuple[dict[str, bool], dict[str, str]]:
    """Which LoadBalancer Services get this node's address: ({key: served}, {key: conflict message}).

    NodePorts on the node address count as taken; among LoadBalancer Services
    the oldest wins a contested port.
    """
    node_ports: dict[tuple[str, int], str] = {}
    balanced: list[Obj] = []
    for svc in services:
        spec = svc.get("spec") or {}
        if spec.get("type") in ("NodePort", "LoadBalancer"):
            for port in spec.get("ports") or []:
                if port.get("nodePort"):
                    node_ports[(port.get("protocol") or "TCP", int(port["nodePort"]))] = _key(svc)
        if spec.get("type") == "LoadBalancer" and not spec.get("loadBalancerClass"):
            balanced.append(svc)
    balanced.sort(key=lambda s: ((s.get("metadata") or {}).get("creationTimestamp") or "", _key(s)))
    taken: dict[tuple[str, int], str] = {}
    served: dict[str, bool] = {}
    conflicts: dict[str, str] = {}
    for svc in balanced:
        key = _key(svc)
        clash = []
        for port in _ports(svc):
            owner = taken.get(port) or node_ports.get(port)
            if owner is not None and owner != key:
                clash.append(f"{port[0]}/{port[1]} (used by Service {owner})")
        if clash:
            served[key] = False
            conflicts[key] = (f"port {', '.join(clash)} already in use on node address {node_address}; "
                              f"no load-balancer ingress on this node")
            continue
        served[key] = True
        for port in _ports(svc):
            taken[port] = key
    return served, conflicts


class ServiceLB:
    """Keeps `status.loadBalancer.ingress` of LoadBalancer Services pointing at this node's address."""

    def __init__(self, client: KubeClient, services: Informer, *, node_address: str,
                 recorder: EventRecorder | None = None) -> None:
        self.client = client
        self.services = services
        self.node_address = node_address
        self.recorder = recorder
        self._wake = asyncio.Event()
        self._conflicts: dict[str, str] = {}  # last conflict reported per Service
        services.add_handler(self._changed, self._updated, self._changed)

    def _changed(self, svc: Obj) -> None:
        if (svc.get("spec") or {}).get("type") in ("LoadBalancer", "NodePort"):
            self._wake.set()

    def _updated(self, old: Obj, new: Obj) -> None:
        self._changed(old)
        self._changed(new)

    async def run(self) -> None:
        """Reconcile on every relevant change (and every 30 s, to retry failed writes) until cancelled."""
        await self.services.wait_synced()
        self._wake.set()
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel that races
            # the event being set, and this loop would then never end.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(30):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.reconcile()
            except Exception:  # guard: a bug here must not stop the proxy
                log.exception("service load balancer reconcile failed")

    async def reconcile(self) -> None:
        """Bring every LoadBalancer Service's ingress entry for this node in line with `assign`."""
        services = self.services.list()
        served, conflicts = assign(services, self.node_address)
        for svc in services:
            key = _key(svc)
            if key not in served:
                continue
            message = conflicts.get(key)
            if message is not None and self._conflicts.get(key) != message:
                log.warning("service %s: %s", key, message)
                if self.recorder is not None:
                    await self.recorder.event(svc, "Warning", "PortConflict", message)
            if message is None:
                self._conflicts.pop(key, None)
            else:
                self._conflicts[key] = message
            await self._ensure_ingress(svc, served[key])
        for key in [k for k in self._conflicts if k not in served]:
            del self._conflicts[key]

    async def _ensure_ingress(self, svc: Obj, serve: bool) -> None:
        lb = (svc.get("status") or {}).get("loadBalancer") or {}
        current = list(lb.get("ingress") or [])
        others = [e for e in current if e.get("ip") != self.node_address]
        wanted = [*others, {"ip": self.node_address, "ipMode": "VIP"}] if serve else others
        if wanted == current:
            return
        meta = svc.get("metadata") or {}
        patch = {"status": {"loadBalancer": {"ingress": wanted or None}}}
        try:
            await self.client.patch(SERVICES, meta["name"], patch, namespace=meta.get("namespace"),
                                    subresource="status")
        except StatusError as err:
            if err.code != 404:  # gone meanwhile: nothing to do
                log.warning("cannot set load-balancer ingress of %s: %s", _key(svc), err.message)
        except APIUnavailable as err:
            log.warning("cannot set load-balancer ingress of %s: %s", _key(svc), err)
