"""Cross-node pod traffic by host-gw routes: `<other node podCIDR> via <its InternalIP>`.

Why host-gw rather than a VXLAN overlay (flannel offers both):

* Nothing to encapsulate, so no MTU reduction, no per-packet overhead, no kernel
  module (vxlan) or FDB/ARP entries to keep in sync — each node needs exactly one
  route per other node, computed from the Node objects the API server already has
  (`spec.podCIDR` from node IPAM, `status.addresses[InternalIP]`).
* Packets keep their pod source and destination addresses end to end, which is what
  the Kubernetes network model asks for and what makes `tcpdump` readable.
* Its one requirement — every node can reach every other node's InternalIP without a
  router in between (one L2 segment) — holds for the setups kubeling targets: nodes on
  one LAN, and the multi-node tests, where each node is a network namespace on one
  machine joined by a veth or a bridge. Where nodes sit on different subnets the
  kernel refuses the route ("Nexthop has invalid gateway"); `NodeRoutes` reports that
  clearly instead of pretending, and a VXLAN backend can be added behind the same
  interface later.

Routes are tagged with a private routing protocol number (`proto 152`) so the
reconciler can find and remove the ones it owns without touching anything else.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

ROUTE_PROTO = "152"  # not in /etc/iproute2/rt_protos; marks kubeling's routes


class RouteError(Exception):
    """`ip route` refused a route (most often: the gateway is not on a directly attached network)."""


@dataclass
class SyncReport:
    """What one `NodeRoutes.sync` changed."""

    added: dict[str, str] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)


def node_route(node: Mapping[str, Any]) -> tuple[str, str, str] | None:
    """(name, podCIDR, InternalIP) of a Node object, or None when it has no podCIDR or address yet."""
    name = (node.get("metadata") or {}).get("name", "")
    spec = node.get("spec") or {}
    cidrs = list(spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else []))
    addrs = [a.get("address", "") for a in (node.get("status") or {}).get("addresses") or []
             if a.get("type") == "InternalIP"]
    for cidr in cidrs:
        try:
            net = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            continue
        for addr in addrs:
            try:
                ip = ipaddress.ip_address(addr)
            except ValueError:
                continue
            if ip.version == net.version == 4:
                return name, str(net), str(ip)
    return None


class NodeRoutes:
    """Keeps this node's routes to every other node's podCIDR in line with the Node list.

    `sync(nodes)` is idempotent: it adds or replaces missing and changed routes and
    removes routes it owns (by protocol tag) for nodes that are gone. `netns` runs every
    `ip` command in that named namespace (a node simulated by a namespace).
    """

    def __init__(self, node_name: str, *, netns: str | None = None, proto: str = ROUTE_PROTO) -> None:
        self.node_name = node_name
        self.netns = netns
        self.proto = proto
        self._lock = asyncio.Lock()

    def desired(self, nodes: Iterable[Mapping[str, Any]]) -> dict[str, str]:
        """podCIDR -> gateway for every other node that has both."""
        out: dict[str, str] = {}
        mine: str | None = None
        for node in nodes:
            r = node_route(node)
            if r is None:
                continue
            name, cidr, ip = r
            if name == self.node_name:
                mine = cidr
                continue
            out[cidr] = ip
        if mine is not None:
            out.pop(mine, None)  # never route our own podCIDR away from the bridge
        return out

    async def current(self) -> dict[str, str]:
        """The routes this reconciler owns now: dst -> gateway."""
        out = await self._ip("-j", "route", "show", "proto", self.proto)
        routes: dict[str, str] = {}
        for r in json.loads(out or "[]"):
            dst = r.get("dst", "")
            if dst and dst != "default":
                routes[str(ipaddress.ip_network(dst, strict=False))] = r.get("gateway", "")
        return routes

    async def sync(self, nodes: Iterable[Mapping[str, Any]]) -> SyncReport:
        """Program the routes for `nodes`; per-route failures are logged and reported, not raised."""
        want = self.desired(nodes)
        report = SyncReport()
        async with self._lock:
            have = await self.current()
            for cidr, gw in sorted(want.items()):
                if have.get(cidr) == gw:
                    continue
                try:
                    await self._ip("route", "replace", cidr, "via", gw, "proto", self.proto)
                    report.added[cidr] = gw
                except RouteError as e:
                    log.warning("route %s via %s: %s (host-gw needs the nodes on one L2 segment)", cidr, gw, e)
                    report.errors[cidr] = str(e)
            for cidr in sorted(set(have) - set(want)):
                try:
                    await self._ip("route", "del", cidr, "proto", self.proto)
                    report.removed.append(cidr)
                except RouteError as e:
                    report.errors[cidr] = str(e)
        return report

    async def clear(self) -> None:
        """Remove every route this reconciler owns (node leaving the cluster)."""
        await self.sync([])

    async def _ip(self, *args: str) -> str:
        argv = ["ip", *(["-n", self.netns] if self.netns else []), *args]
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise RouteError(f"{' '.join(argv)}: {err.decode(errors='replace').strip()}")
        return out.decode()
