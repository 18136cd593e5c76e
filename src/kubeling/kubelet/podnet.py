"""The pod network seam of the kubelet: where a pod's IP and network namespace come from.

DESIGN.md has two pod network modes and the pod worker must not care which
one runs; it asks a `PodNetworkProvider` for a pod's `(pod IP, netns path)`
when it creates the sandbox and gives it back when the sandbox goes (the
role of CRI's RunPodSandbox/StopPodSandbox network half):

* `HostPodNetwork` ("host", no root): pods share the node's network; each
  gets its own loopback address (podip.py). No namespace, nothing to wire.
* `CNIPodNetwork` ("cni", root, cninet.py): each pod gets its own network
  namespace wired by the CNI plugins, its IP from the node's podCIDR.

In both, a hostNetwork pod gets no namespace and the node's address as its
IP. `recover` and `retain_only` are the restart story: a restarted kubelet
gives the pods still bound here their network back, and releases what pods
deleted while it was down still hold.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Protocol

from kubeling.kubelet.podip import PodIPAllocator

if TYPE_CHECKING:
    from kubeling.client.events import EventRecorder
    from kubeling.kubelet.kubelet import KubeletOptions

Obj = dict[str, Any]
POD_NETWORK_MODES = ("host", "cni")


class PodNetworkProvider(Protocol):
    """Gives pods their network (see the module docstring)."""

    mode: str  # "host" or "cni"
    manages_pod_files: bool  # pods with their own network get the kubelet's /etc/hosts and resolv.conf

    @property
    def ready(self) -> bool:
        """Whether pods can get a network now (the node's NetworkReady)."""

    async def start(self, stopped: asyncio.Event) -> bool:
        """Node-level setup; False when `stopped` was set before the network became ready."""

    async def stop(self) -> None:
        """Stop background work (pods' networks are torn down by their workers first)."""

    async def setup(self, pod: Obj) -> tuple[str, str]:
        """The pod's (IP, netns path); the path is '' when the pod is on the node's network."""

    async def teardown(self, pod: Obj, *, final: bool = True) -> None:
        """The sandbox is gone. `final` = the pod is deleted (False on kubelet shutdown). Idempotent."""

    def recover(self, uid: str) -> tuple[str, str] | None:
        """The (IP, netns path) the pod already had before a kubelet restart, if it still holds."""

    async def retain_only(self, uids: set[str]) -> list[str]:
        """Release the network of every pod not in `uids`; returns their uids."""


def is_host_network(pod: Obj) -> bool:
    return bool((pod.get("spec") or {}).get("hostNetwork"))


class HostPodNetwork:
    """The no-root mode: the node's network, one loopback address per pod (kept across restarts)."""

    mode = "host"
    manages_pod_files = False  # pods share the node's network: its /etc/hosts and resolv.conf are theirs
    ready = True

    def __init__(self, allocator: PodIPAllocator, *, host_ip: str) -> None:
        self.allocator = allocator
        self.host_ip = host_ip

    async def start(self, stopped: asyncio.Event) -> bool:
        return True

    async def stop(self) -> None:
        pass

    async def setup(self, pod: Obj) -> tuple[str, str]:
        if is_host_network(pod):
            return self.host_ip, ""
        return self.allocator.allocate(pod["metadata"]["uid"]), ""

    async def teardown(self, pod: Obj, *, final: bool = True) -> None:
        # On shutdown the address stays reserved so the resumed pod gets the same one back.
        if final:
            self.allocator.release(pod["metadata"]["uid"])

    def recover(self, uid: str) -> tuple[str, str] | None:
        ip = self.allocator.get(uid)
        return (ip, "") if ip else None

    async def retain_only(self, uids: set[str]) -> list[str]:
        return self.allocator.retain_only(uids)


def new_pod_network(options: KubeletOptions, *, client: Any, node_name: str, root_dir: str, host_ip: str,
                    recorder: EventRecorder, ip_allocator: PodIPAllocator | None = None) -> PodNetworkProvider:
    """The provider `options.pod_network` names ("host" or "cni")."""
    if options.pod_network == "host":
        return HostPodNetwork(ip_allocator or PodIPAllocator(options.pod_ip_range, root_dir=root_dir),
                              host_ip=host_ip)
    if options.pod_network == "cni":
        from kubeling.kubelet.cninet import CNIPodNetwork  # root mode only: the default path stays light

        return CNIPodNetwork.build(options, client=client, node_name=node_name, root_dir=root_dir,
                                   host_ip=host_ip, recorder=recorder)
    raise ValueError(f"unknown pod network {options.pod_network!r} (known: {', '.join(POD_NETWORK_MODES)})")
