"""Node IPAM: gives every Node its own slice of the cluster's pod network.

Each node's CNI (or the no-root loopback scheme) draws pod IPs from
`spec.podCIDR`, so two nodes sharing a range means two pods sharing an IP.
Like Kubernetes' range allocator (pkg/controller/nodeipam), the set of ranges
in use is rebuilt from the nodes themselves — the informer's initial list
marks every existing `spec.podCIDRs` as taken before any worker runs — so a
restart never hands out a range twice. A range is reserved *before* the
patch is sent (workers interleave at every await) and released when its node
is deleted. The addresses are only strings in API objects here.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from kubeling.api.errors import StatusError
from kubeling.client import resources
from kubeling.controllers.base import Controller

Obj = dict[str, Any]
log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class NodeIpamController(Controller):
    """Assigns spec.podCIDR/podCIDRs from `cluster_cidr`, one /`node_cidr_mask_size` per node."""

    NAME = "node-ipam"
    WORKERS = 1
    cluster_cidr: str = "10.42.0.0/16"
    node_cidr_mask_size: int = 24
    exhausted_retry: float = 15.0

    def setup(self) -> None:
        self.nodes = self.watch(resources.NODES, on_add=self._observe, on_update=lambda _o, new: self._observe(new),
                                on_delete=self._release)
        self.used: dict[str, str] = {}  # CIDR → node name
        self._cursor = 0

    # ---- allocation table, kept by the handlers ----------------------------------------

    @staticmethod
    def _cidrs_of(node: Obj) -> list[str]:
        spec = node.get("spec") or {}
        cidrs = list(spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else []))
        out = []
        for c in cidrs:
            try:
                out.append(str(ipaddress.ip_network(c, strict=False)))
            except ValueError:
                log.warning("node %s has an invalid podCIDR %r", node["metadata"].get("name"), c)
        return out

    def _observe(self, node: Obj) -> None:
        name = node["metadata"]["name"]
        cidrs = self._cidrs_of(node)
        for cidr in cidrs:
            owner = self.used.setdefault(cidr, name)
            if owner != name:
                log.error("pod CIDR %s is claimed by both node %s and node %s", cidr, owner, name)
        if not cidrs:
            self.enqueue_key(name)

    def _release(self, node: Obj) -> None:
        name = node["metadata"]["name"]
        for cidr in self._cidrs_of(node):
            if self.used.get(cidr) == name:
                del self.used[cidr]
                log.info("released pod CIDR %s of deleted node %s", cidr, name)

    def _network(self) -> tuple[Network, int]:
        net = ipaddress.ip_network(self.cluster_cidr, strict=False)
        if self.node_cidr_mask_size < net.prefixlen or self.node_cidr_mask_size > net.max_prefixlen:
            raise ValueError(f"node CIDR mask /{self.node_cidr_mask_size} does not fit cluster CIDR {net}")
        return net, 1 << (self.node_cidr_mask_size - net.prefixlen)

    def allocate(self, name: str) -> str | None:
        """Reserve the next free range for `name` (round-robin, like Kubernetes' cidrset), or None when full."""
        net, count = self._network()
        step = 1 << (net.max_prefixlen - self.node_cidr_mask_size)
        base = int(net.network_address)
        for i in range(count):
            index = (self._cursor + i) % count
            cidr = str(ipaddress.ip_network((base + index * step, self.node_cidr_mask_size)))
            if cidr not in self.used:
                self.used[cidr] = name
                self._cursor = (index + 1) % count
                return cidr
        return None

    # ---- reconcile ---------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        node = self.nodes.get(key)
        if node is None or node["metadata"].get("deletionTimestamp") or self._cidrs_of(node):
            return
        mine = [c for c, n in self.used.items() if n == key]
        cidr = mine[0] if mine else self.allocate(key)
        if cidr is None:
            await self.event(node, "Normal", "CIDRNotAvailable", f"Node {key} status is now: CIDRNotAvailable")
            log.warning("no pod CIDR left in %s for node %s", self.cluster_cidr, key)
            self.queue.add_after(key, self.exhausted_retry)
            return
        try:
            await self.client.patch(resources.NODES, key, {"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}})
        except StatusError as err:
            if self.used.get(cidr) == key:
                del self.used[cidr]
            if err.code == 404:
                return
            raise
        log.info("assigned pod CIDR %s to node %s", cidr, key)
