"""The node half of the root-mode pod network: this node's podCIDR, routes to the others, forwarding.

A kubelet in CNI mode cannot hand out a single pod IP before the node IPAM
controller has given its Node a `spec.podCIDR` (it does so right after
registration), so start waits for it — on a Node informer, with a log line
saying what it waits for. The same informer drives host-gw routing: on every
add, update or delete of any Node, `NodeRoutes.sync` recomputes this node's
routes to every other node's podCIDR via that node's InternalIP. Like every
reconciler here it is level-triggered (one sync of the whole list, however
many events arrived) and never crashes on a route the kernel refuses: that
becomes a `FailedToCreateRoute` Warning event on the Node the route leads to,
the event Kubernetes' route controller records.

Forwarding: pods reach other nodes and Services through the node, so
`net.ipv4.ip_forward` is switched on (in the kubelet's own network namespace,
which is the node's), and bridged pod-to-pod traffic is kept visible to the
Service proxy's NAT (`net.bridge.bridge-nf-call-iptables`, when br_netfilter
is loaded; kubeadm requires the same).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from kubeling.client import resources
from kubeling.client.events import EventRecorder
from kubeling.client.informer import Informer

Obj = dict[str, Any]
log = logging.getLogger(__name__)

SYSCTLS = (("net/ipv4/ip_forward", "1", True), ("net/bridge/bridge-nf-call-iptables", "1", False))
ROUTE_RETRY = 5.0  # seconds before a failed route sync is tried again


class RouteReport(Protocol):
    added: dict[str, str]
    errors: dict[str, str]


class RouteSyncer(Protocol):
    """What `NodeNetwork` needs of network.NodeRoutes (a recording double in tests)."""

    def desired(self, nodes: Iterable[Mapping[str, Any]]) -> dict[str, str]: ...
    async def sync(self, nodes: Iterable[Mapping[str, Any]]) -> RouteReport: ...


def pod_cidr_of(node: Obj | None) -> str:
    """The node's IPv4 podCIDR ('' until the node IPAM controller assigned one)."""
    spec = (node or {}).get("spec") or {}
    for cidr in spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else []):
        with contextlib.suppress(ValueError):
            if ipaddress.ip_network(cidr, strict=False).version == 4:
                return str(cidr)
    return ""


class NodeNetwork:
    """Waits for this node's podCIDR and keeps its host-gw routes in line with the Node list."""

    def __init__(self, client: Any, *, node_name: str, recorder: EventRecorder, routes: RouteSyncer,
                 sysctl_root: str = "/proc/sys", wait_log_interval: float = 30.0) -> None:
        self.node_name = node_name
        self.recorder = recorder
        self.routes = routes
        self.sysctl_root = sysctl_root
        self.wait_log_interval = wait_log_interval
        self.informer = Informer(client, resources.NODES)
        self.pod_cidr = ""
        self._changed = asyncio.Event()  # any Node changed: recheck the podCIDR / resync routes
        self._route_errors: dict[str, str] = {}  # podCIDR → the error last reported for its route
        self._task: asyncio.Task[None] | None = None

    def node(self) -> Obj | None:
        """This node's object from the informer cache."""
        return next((n for n in self.informer.list() if n["metadata"]["name"] == self.node_name), None)

    async def start(self, stopped: asyncio.Event) -> str:
        """Watch Nodes, wait for this node's podCIDR, start routing; '' when `stopped` came first."""
        self.informer.add_handler(on_add=self._on_change, on_update=lambda _old, new: self._on_change(new),
                                  on_delete=self._on_change)
        await self.informer.start()
        cidr = await self._wait_pod_cidr(stopped)
        if not cidr:
            return ""
        self.pod_cidr = cidr
        self.enable_forwarding()
        self._changed.set()
        self._task = asyncio.create_task(self._route_loop(), name=f"node-routes-{self.node_name}")
        return cidr

    async def stop(self) -> None:
        """Stop routing and the informer; the routes themselves stay (a restarted kubelet resyncs them)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.informer.stop()

    def _on_change(self, _node: Obj) -> None:
        self._changed.set()

    async def _wait_pod_cidr(self, stopped: asyncio.Event) -> str:
        log.info("node %s: waiting for spec.podCIDR from the node IPAM controller before starting pods",
                 self.node_name)
        loop = asyncio.get_running_loop()
        waited_since = loop.time()
        while not stopped.is_set():
            self._changed.clear()  # before reading, so a change during the read is not lost
            cidr = pod_cidr_of(self.node())
            if cidr:
                log.info("node %s: podCIDR %s", self.node_name, cidr)
                return cidr
            stop_waiter = asyncio.ensure_future(stopped.wait())
            change_waiter = asyncio.ensure_future(self._changed.wait())
            try:
                await asyncio.wait({stop_waiter, change_waiter}, timeout=self.wait_log_interval,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop_waiter.cancel()
                change_waiter.cancel()
            if not self._changed.is_set() and not stopped.is_set():
                log.warning("node %s: still waiting for spec.podCIDR after %.0fs (the controller manager's "
                            "node IPAM controller assigns it from the cluster CIDR)", self.node_name,
                            loop.time() - waited_since)
        return ""

    def enable_forwarding(self) -> None:
        """Write the node's forwarding sysctls; a missing required one is logged, never fatal."""
        for key, value, required in SYSCTLS:
            path = os.path.join(self.sysctl_root, key)
            try:
                with open(path) as f:
                    if f.read().strip() == value:
                        continue
                with open(path, "w") as f:
                    f.write(value)
                log.info("node %s: set %s=%s", self.node_name, key.replace("/", "."), value)
            except OSError as err:
                if required:
                    log.warning("node %s: cannot set %s=%s: %s", self.node_name, key.replace("/", "."), value, err)
                else:
                    log.info("node %s: %s not available (%s)", self.node_name, key.replace("/", "."), err)

    async def _route_loop(self) -> None:
        while True:
            await self._changed.wait()
            self._changed.clear()
            nodes = self.informer.list()
            try:
                report = await self.routes.sync(nodes)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # `ip` itself failing: try again later, never die
                log.warning("node %s: syncing pod routes failed (retrying in %.0fs): %s", self.node_name,
                            ROUTE_RETRY, err)
                await asyncio.sleep(ROUTE_RETRY)
                self._changed.set()
                continue
            await self._report(nodes, report)
            cidr = pod_cidr_of(self.node())
            if cidr and cidr != self.pod_cidr:
                log.warning("node %s: spec.podCIDR changed from %s to %s; restart the kubelet to use it",
                            self.node_name, self.pod_cidr, cidr)

    async def _report(self, nodes: list[Obj], report: RouteReport) -> None:
        """A Warning event for every route that newly failed (or failed differently)."""
        owners = {pod_cidr_of(n): n for n in nodes}
        # A failing route is retried on every sync, so one missing from the errors now works (or is gone).
        self._route_errors = {c: e for c, e in self._route_errors.items() if c in report.errors}
        for cidr, error in report.errors.items():
            if self._route_errors.get(cidr) == error:
                continue
            self._route_errors[cidr] = error
            node = owners.get(cidr) or {"metadata": {"name": self.node_name}}
            gateway = self.routes.desired(nodes).get(cidr, "")
            await self.recorder.event(
                {"apiVersion": "v1", "kind": "Node", "metadata": node.get("metadata") or {}}, "Warning",
                "FailedToCreateRoute",
                f"Could not create route {cidr} via {gateway} on node {self.node_name}: {error}")
