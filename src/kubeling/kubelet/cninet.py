"""The root-mode pod network provider: one network namespace per pod, wired by CNI.

The kubelet side of docs/networking.md. At start it waits for the node's
podCIDR (nodenet.py), builds the node's `PodNetwork` on it (bridge +
host-local + portmap, loopback) and programs the node once (`ensure_node`).
Per pod, `setup` is CRI's RunPodSandbox network step: create
`/run/netns/kl-pod-<uid>`, CNI ADD, and the pod IP from the ADD result;
`teardown` is StopPodSandbox's: CNI DEL with the cached result, then the
namespace goes. Both are idempotent, so a crash between them is repaired by
repeating them.

A kubelet that crashed left its pods' namespaces and cached ADD results
behind; `setup` then recovers a pod's network instead of wiring a new one
(after a CNI CHECK proves it still works), so the pod keeps its IP — what a
kubelet restart looks like on Kubernetes, where the sandboxes keep running.
`retain_only` tears down whatever belongs to pods deleted meanwhile.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from kubeling.kubelet.nodenet import NodeNetwork
from kubeling.kubelet.podnet import is_host_network
from kubeling.network.netns import netns_exists, netns_path
from kubeling.network.podnetwork import port_mappings_for_pod

if TYPE_CHECKING:
    from kubeling.client.events import EventRecorder
    from kubeling.kubelet.kubelet import KubeletOptions

Obj = dict[str, Any]
log = logging.getLogger(__name__)

NODE_SETUP_RETRY_MAX = 30.0  # seconds between attempts to program the node (nft missing, …)


class SandboxResult(Protocol):
    def pod_ip(self) -> str: ...


class PodNetworkBackend(Protocol):
    """What the provider needs of network.PodNetwork (a recording double in pure tests)."""

    pod_cidr: str

    def netns_name(self, pod_uid: str) -> str: ...
    async def ensure_node(self) -> None: ...
    async def setup_pod(self, pod_uid: str, port_mappings: Iterable[Mapping[str, Any]] | None = None, *,
                        pod_name: str = "", pod_namespace: str = "") -> tuple[str, str]: ...
    async def teardown_pod(self, pod_uid: str, *, pod_name: str = "", pod_namespace: str = "") -> None: ...
    async def check_pod(self, pod_uid: str) -> None: ...
    def pod_result(self, pod_uid: str) -> SandboxResult | None: ...
    def known_pods(self) -> set[str]: ...


class NetworkNotReady(Exception):
    """A pod asked for a network before the node's pod network was set up."""


class CNIPodNetwork:
    """Pods in their own network namespaces on the node's podCIDR (see the module docstring)."""

    mode = "cni"
    manages_pod_files = True

    def __init__(self, *, node: NodeNetwork, backend: Callable[[str], PodNetworkBackend], host_ip: str,
                 netns_exists: Callable[[str], bool] = netns_exists) -> None:
        self.node = node
        self._make_backend = backend
        self.host_ip = host_ip
        self._netns_exists = netns_exists
        self.backend: PodNetworkBackend | None = None

    @classmethod
    def build(cls, options: KubeletOptions, *, client: Any, node_name: str, root_dir: str, host_ip: str,
              recorder: EventRecorder) -> CNIPodNetwork:
        """The provider on the real CNI plugins, `ip` and nft, with its files under `<root_dir>/cni`."""
        from kubeling.network.podnetwork import PodNetwork
        from kubeling.network.routes import NodeRoutes

        cni_dir = os.path.join(root_dir, "cni")

        def backend(pod_cidr: str) -> PodNetwork:
            return PodNetwork(pod_cidr, cluster_cidr=options.cluster_cidr, bin_dirs=options.cni_bin_dirs,
                              conf_dir=cni_dir, state_dir=os.path.join(cni_dir, "state"),
                              netns_prefix=options.pod_netns_prefix)

        node = NodeNetwork(client, node_name=node_name, recorder=recorder, routes=NodeRoutes(node_name))
        return cls(node=node, backend=backend, host_ip=host_ip)

    @property
    def ready(self) -> bool:
        return self.backend is not None

    async def start(self, stopped: asyncio.Event) -> bool:
        cidr = await self.node.start(stopped)
        if not cidr:
            return False
        backend = self._make_backend(cidr)
        delay = 1.0
        while not stopped.is_set():
            try:
                await backend.ensure_node()
            except Exception as err:  # e.g. nft refused the masquerade rule: say so, keep trying
                log.warning("node %s: setting up the pod network on %s failed (retrying in %.0fs): %s",
                            self.node.node_name, cidr, delay, err)
                stopper = asyncio.ensure_future(stopped.wait())
                await asyncio.wait({stopper}, timeout=delay)
                stopper.cancel()
                delay = min(delay * 2, NODE_SETUP_RETRY_MAX)
                continue
            self.backend = backend
            log.info("node %s: pod network ready on %s", self.node.node_name, cidr)
            return True
        return False

    async def stop(self) -> None:
        await self.node.stop()

    def _ready_backend(self) -> PodNetworkBackend:
        if self.backend is None:
            raise NetworkNotReady("network is not ready: the node's pod network is not set up yet")
        return self.backend

    async def setup(self, pod: Obj) -> tuple[str, str]:
        if is_host_network(pod):
            return self.host_ip, ""
        backend = self._ready_backend()
        meta = pod["metadata"]
        uid, name, ns = meta["uid"], meta.get("name", ""), meta.get("namespace") or "default"
        recovered = self.recover(uid)
        if recovered is not None:
            try:
                await backend.check_pod(uid)
                log.info("pod %s/%s: kept its network from before the restart (%s)", ns, name, recovered[0])
                return recovered
            except Exception as err:
                log.info("pod %s/%s: network from before the restart fails CNI CHECK, recreating it: %s",
                         ns, name, err)
        if recovered is not None or self._netns_exists(backend.netns_name(uid)) or backend.pod_result(uid):
            await self._teardown(backend, uid, name, ns)  # a stale half: ADD wants a clean namespace
        netns, ip = await backend.setup_pod(uid, port_mappings_for_pod(pod), pod_name=name, pod_namespace=ns)
        return ip, netns

    async def teardown(self, pod: Obj, *, final: bool = True) -> None:
        # The namespace goes on kubelet shutdown too (`final` or not): nothing of a pod outlives the node.
        if is_host_network(pod) or self.backend is None:
            return
        meta = pod["metadata"]
        if not self._netns_exists(self.backend.netns_name(meta["uid"])) and not self.backend.pod_result(meta["uid"]):
            return  # nothing left (torn down when the pod finished, or never set up)
        await self._teardown(self.backend, meta["uid"], meta.get("name", ""), meta.get("namespace") or "default")

    async def _teardown(self, backend: PodNetworkBackend, uid: str, name: str, ns: str) -> None:
        try:
            await backend.teardown_pod(uid, pod_name=name, pod_namespace=ns)
        except Exception as err:  # what is left is retried by retain_only on the next start
            log.warning("pod %s/%s: tearing down its network failed: %s", ns, name or uid, err)

    def recover(self, uid: str) -> tuple[str, str] | None:
        backend = self.backend
        if backend is None:
            return None
        name = backend.netns_name(uid)
        result = backend.pod_result(uid)
        ip = result.pod_ip() if result is not None else ""
        if not ip or not self._netns_exists(name):
            return None
        if ipaddress.ip_address(ip) not in ipaddress.ip_network(backend.pod_cidr):
            return None  # the node got another podCIDR meanwhile: the old address routes nowhere
        return ip, netns_path(name)

    async def retain_only(self, uids: set[str]) -> list[str]:
        backend = self.backend
        if backend is None:
            return []
        gone = sorted(backend.known_pods() - uids)
        for uid in gone:
            log.info("tearing down the network of pod %s, deleted while the kubelet was down", uid)
            await self._teardown(backend, uid, "", "")
        return gone
