"""The Service proxy as a supervised node component (`kubeling up`, `kubeling agent`).

One object owns the two informers (Services, EndpointSlices) and shares them
between the proxy and ServiceLB, so the node keeps one watch per resource no
matter how many parts read it. `run()` returns only when `stop()` was called;
if one of its parts dies, `run()` raises and the supervisor stops the process
loudly, as for every other component. `stop()` closes every listener and every
proxied connection: nothing bound survives the component.

Two modes, as in DESIGN.md: "userspace" (the no-root network mode: asyncio
listeners on loopback addresses) and "nftables" (the root mode: kernel rules in
table `ip kubeling-proxy`, see `nftables.py`; `nftables_available()` says whether
this machine can run it). ServiceLB is the same in both: it only writes the
ingress status; with nftables the rules serve the ingress IP (the node address).
In the nftables mode `stop()` leaves the rules in place, as kube-proxy does, so a
restart does not interrupt traffic; `cleanup()` removes them. Asking for an
unknown mode fails at construction with a clear message instead of silently
serving nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
from typing import Any

from kubeling.client import EventRecorder, Informer, KubeClient
from kubeling.client.resources import ENDPOINTSLICES, SERVICES
from kubeling.proxy.nftables import NftablesProxy
from kubeling.proxy.nftables_exec import nftables_available
from kubeling.proxy.servicelb import ServiceLB
from kubeling.proxy.userspace import SLICE_INDEX, UserspaceProxy, slice_service_index

log = logging.getLogger(__name__)

MODES = ("userspace", "nftables")
__all__ = ["MODES", "ServiceProxy", "nftables_available"]


def raise_open_files_limit() -> None:
    """One socket per frontend plus two per connection: lift the soft fd limit to the hard one."""
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 1 << 20, hard))


class ServiceProxy:
    """Serves every Service on this node (ClusterIP, NodePort, externalIPs, LoadBalancer) plus ServiceLB."""

    def __init__(self, client: KubeClient, *, node_name: str, node_address: str = "127.0.0.1",
                 mode: str = "userspace", cluster_cidr: str | None = None, service_lb: bool = True,
                 masquerade_all: bool | None = None, netns: str | None = None,
                 sync_period: float = 30.0, min_sync_period: float = 0.05) -> None:
        """`cluster_cidr`, `masquerade_all` (None: only without br_netfilter), `netns` (run nft in that
        named network namespace), `sync_period` and `min_sync_period` apply to the nftables mode."""
        if mode not in MODES:
            raise ValueError(f"proxy mode {mode!r} is not implemented (available: {', '.join(MODES)})")
        self.client = client
        self.node_name = node_name
        self.node_address = node_address
        self.mode = mode
        self.services = Informer(client, SERVICES)
        self.slices = Informer(client, ENDPOINTSLICES, indexers={SLICE_INDEX: slice_service_index})
        recorder = EventRecorder(client, component="kubeling-proxy", host=node_name)
        self.proxy: UserspaceProxy | NftablesProxy
        if mode == "nftables":
            self.proxy = NftablesProxy(self.services, self.slices, node_name=node_name, node_address=node_address,
                                       recorder=recorder, cluster_cidr=cluster_cidr, masquerade_all=masquerade_all,
                                       netns=netns, sync_period=sync_period, min_sync_period=min_sync_period)
        else:
            self.proxy = UserspaceProxy(self.services, self.slices, node_name=node_name,
                                        node_address=node_address, recorder=recorder)
        self.service_lb = (ServiceLB(client, self.services, node_address=node_address,
                                     recorder=EventRecorder(client, component="service-lb-controller",
                                                            host=node_name))
                           if service_lb else None)
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []

    @property
    def synced(self) -> bool:
        """Whether every Service known at start has been programmed once."""
        return self.proxy.synced.is_set()

    async def wait_synced(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109 (informer API shape)
        try:
            await asyncio.wait_for(self.proxy.synced.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def run(self) -> None:
        """Watch, program and serve until `stop()`; raises if a part of the proxy dies."""
        if self.mode == "userspace":
            raise_open_files_limit()
        self._stopping.clear()
        await self.services.start()
        await self.slices.start()
        self._tasks = [asyncio.create_task(self.proxy.run(), name="proxy-sync")]
        if self.service_lb is not None:
            self._tasks.append(asyncio.create_task(self.service_lb.run(), name="service-lb"))
        stopping = asyncio.create_task(self._stopping.wait(), name="proxy-stop")
        try:
            done, _ = await asyncio.wait([*self._tasks, stopping], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopping:
                    exc = task.exception() if not task.cancelled() else None
                    raise RuntimeError(f"service proxy part {task.get_name()} ended: {exc!r}") from exc
        finally:
            stopping.cancel()
            await self._shutdown()

    async def stop(self) -> None:
        """Stop: close every listener and connection (userspace) — nftables rules stay —, stop the informers."""
        self._stopping.set()
        await self._shutdown()

    async def _shutdown(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.proxy.close()
        await self.services.stop()
        await self.slices.stop()

    async def cleanup(self) -> None:
        """Remove what the proxy left in the kernel (the nftables table); nothing to do in userspace mode."""
        if isinstance(self.proxy, NftablesProxy):
            await self.proxy.cleanup()
