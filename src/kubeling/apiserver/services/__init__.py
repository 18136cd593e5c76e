"""Services in the API server: ClusterIP/NodePort allocation, its repair loop,
and the `kubernetes` Service.

`ServiceNetwork` is the one object the API server holds: it owns the two
allocators, registers the `services` write hook on the REST storage, and at
start repairs the bitmaps, reconciles the `kubernetes` Service and starts the
periodic repair. The service CIDR defaults to a loopback range because the
only pod network mode implemented today is the no-root host network, where a
userspace proxy must be able to listen on ClusterIPs without root.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from kubeling.api import errors
from kubeling.api.registry import Registry
from kubeling.apiserver import objects
from kubeling.apiserver.rest import ResourceStore, WriteOptions
from kubeling.apiserver.services.allocator import (
    DEFAULT_NODE_PORT_RANGE,
    DEFAULT_SERVICE_CIDR,
    ROOT_SERVICE_CIDR,
    ClusterIPAllocator,
    NodePortAllocator,
)
from kubeling.apiserver.services.hooks import ServiceHooks
from kubeling.apiserver.services.kubernetes import ensure_kubernetes_service
from kubeling.apiserver.services.repair import REPAIR_INTERVAL, Repairer
from kubeling.storage.interface import Store

__all__ = ["DEFAULT_NODE_PORT_RANGE", "DEFAULT_SERVICE_CIDR", "ROOT_SERVICE_CIDR", "ServiceNetwork"]

Obj = dict[str, Any]
log = logging.getLogger(__name__)

KUBERNETES_SERVICE_OFFSET = 1   # .1: the `kubernetes` Service
CLUSTER_DNS_OFFSET = 10         # .10: kube-system/kube-dns (reserved for the cluster DNS)


class ServiceNetwork:
    """The API server's service address management (allocators, write hook, repair, bootstrap)."""

    def __init__(self, store: Store, *, service_cidr: str = DEFAULT_SERVICE_CIDR,
                 node_port_range: str = DEFAULT_NODE_PORT_RANGE, repair_interval: float = REPAIR_INTERVAL) -> None:
        probe = ClusterIPAllocator(store, service_cidr)
        self.kubernetes_ip = probe.nth(KUBERNETES_SERVICE_OFFSET)
        self.dns_ip = probe.nth(CLUSTER_DNS_OFFSET)
        self.ips = ClusterIPAllocator(store, service_cidr, reserved_ips=(self.kubernetes_ip, self.dns_ip))
        self.ports = NodePortAllocator(store, node_port_range)
        self.hooks = ServiceHooks(self.ips, self.ports)
        self.store = store
        self.repairer = Repairer(store, self.ips, self.ports, on_event=self._event, interval=repair_interval)
        self._rest: ResourceStore | None = None
        self._registry: Registry | None = None

    @property
    def service_cidr(self) -> str:
        return str(self.ips.network)

    def install(self, rest: ResourceStore) -> None:
        """Register the `services` write hook on the REST storage."""
        rest.register_hook("services", self.hooks)

    async def start(self, rest: ResourceStore, registry: Registry, advertise_address: str) -> None:
        """Repair once, reconcile the `kubernetes` Service, then repair every interval."""
        self._rest, self._registry = rest, registry
        await self.repairer.run_once()
        await ensure_kubernetes_service(rest, registry, self.kubernetes_ip, advertise_address)
        self.repairer.start()

    async def stop(self) -> None:
        await self.repairer.stop()

    async def _event(self, svc: Obj, reason: str, message: str) -> None:
        """A Warning event on the Service, as the repair controllers record them."""
        if self._rest is None or self._registry is None:
            return
        info = self._registry.get("", "v1", "events")
        assert info is not None
        meta = svc.get("metadata") or {}
        now = objects.now_rfc3339()
        event = {"metadata": {"name": f"{meta.get('name')}.{secrets.token_hex(8)}", "namespace": meta.get("namespace")},
                 "involvedObject": {"apiVersion": "v1", "kind": "Service", "namespace": meta.get("namespace"),
                                    "name": meta.get("name"), "uid": meta.get("uid"),
                                    "resourceVersion": meta.get("resourceVersion")},
                 "reason": reason, "message": message, "type": "Warning", "count": 1,
                 "source": {"component": "ipallocator-repair-controller"},
                 "reportingComponent": "ipallocator-repair-controller",
                 "firstTimestamp": now, "lastTimestamp": now}
        try:
            await self._rest.create(info, str(meta.get("namespace") or "default"), event,
                                    WriteOptions(field_manager="kube-apiserver"))
        except errors.StatusError as exc:
            log.warning("cannot record event %s on service %s/%s: %s", reason, meta.get("namespace"),
                        meta.get("name"), exc.message)
