"""Choosing the node's network mode (DESIGN.md, "Pod network modes") from flags and the host.

`--pod-network auto` (the default) takes the root mode — a network namespace
per pod wired by CNI, Services in nftables, cluster DNS on port 53 reachable
through each pod's resolv.conf — when the host allows it (root, iproute2, the
CNI plugins, iptables and nft), and otherwise the no-root mode: the host
network with a loopback address per pod and the userspace proxy. Asking for
`cni` on a host that cannot do it is one clear line, not a half-working node.
The Service range follows the mode unless given: a loopback range the
userspace proxy can bind without root, or 10.43.0.0/16 as in k3s.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from dataclasses import dataclass

from kubeling.apiserver.services import DEFAULT_SERVICE_CIDR, ROOT_SERVICE_CIDR

POD_NETWORKS = ("auto", "cni", "host")
PROXY_MODES = ("auto", "nftables", "userspace")
DEFAULT_CLUSTER_CIDR = "10.42.0.0/16"


class NetworkModeError(Exception):
    """The network mode asked for cannot work on this host."""


@dataclass
class NetworkMode:
    """The resolved modes: the pod network, the proxy, and why auto chose the no-root mode."""

    pod_network: str  # "cni" or "host"
    proxy_mode: str  # "nftables" or "userspace"
    reason: str = ""  # why "auto" fell back to the host network ('' when it did not)

    @property
    def root(self) -> bool:
        return self.pod_network == "cni"

    def default_service_cidr(self) -> str:
        return ROOT_SERVICE_CIDR if self.root else DEFAULT_SERVICE_CIDR


def cni_reason() -> str:
    """'' when the CNI pod network can run here, else why not."""
    from kubeling.network import cni_available
    return cni_available()


def nftables_reason() -> str:
    """'' when the nftables proxy can run here, else why not."""
    from kubeling.proxy.component import nftables_available
    return nftables_available()


def host_default_service_cidr() -> str:
    """The Service range `kubeling server` takes unless given: the one nodes on this host would use."""
    return DEFAULT_SERVICE_CIDR if cni_reason() else ROOT_SERVICE_CIDR


def resolve(pod_network: str = "auto", proxy_mode: str = "auto") -> NetworkMode:
    """The modes for these flags on this host; NetworkModeError when an explicit choice is impossible."""
    if pod_network not in POD_NETWORKS:
        raise NetworkModeError(f"--pod-network must be one of {', '.join(POD_NETWORKS)}, not {pod_network!r}")
    if proxy_mode not in PROXY_MODES:
        raise NetworkModeError(f"--proxy-mode must be one of {', '.join(PROXY_MODES)}, not {proxy_mode!r}")
    reason = ""
    if pod_network == "host":
        chosen = "host"
    else:
        reason = cni_reason()
        if reason and pod_network == "cni":
            raise NetworkModeError(f"--pod-network cni is not possible on this host: {reason}")
        chosen = "host" if reason else "cni"
    if proxy_mode == "auto":
        proxy = "nftables" if chosen == "cni" else "userspace"
    else:
        proxy = proxy_mode
    if proxy == "nftables":
        why = nftables_reason()
        if why:
            raise NetworkModeError(f"the nftables proxy is not possible on this host: {why}")
        if chosen == "host":
            raise NetworkModeError("--proxy-mode nftables needs the CNI pod network (--pod-network cni): "
                                   "pods on loopback addresses are served by the userspace proxy")
    return NetworkMode(chosen, proxy, reason)


def default_route_address() -> str:
    """The IPv4 address of the interface holding the default route (what the kubelet picks), or ''."""
    try:
        out = subprocess.run(["ip", "-j", "-4", "route", "show", "default"], capture_output=True, text=True,
                             timeout=5, check=False).stdout
        routes = json.loads(out or "[]")
        if not routes:
            return ""
        dev = routes[0].get("dev", "")
        out = subprocess.run(["ip", "-j", "-4", "addr", "show", "dev", dev], capture_output=True, text=True,
                             timeout=5, check=False).stdout
        for link in json.loads(out or "[]"):
            for info in link.get("addr_info") or []:
                if info.get("family") == "inet" and info.get("scope") == "global":
                    return str(info["local"])
    except (OSError, ValueError, subprocess.SubprocessError):
        return ""
    return ""


def node_address(requested: str, mode: NetworkMode) -> str:
    """The node's InternalIP: as given; in the no-root mode 127.0.0.1; in the root mode the address of the
    default-route interface (other nodes route pod traffic to it, so loopback will not do)."""
    if requested:
        try:
            ipaddress.ip_address(requested)
        except ValueError as exc:
            raise NetworkModeError(f"--node-address {requested!r} is not an IP address") from exc
        if mode.root and ipaddress.ip_address(requested).is_loopback:
            raise NetworkModeError("--node-address must not be a loopback address with --pod-network cni: "
                                   "other nodes and pods route to it")
        return requested
    if not mode.root:
        return "127.0.0.1"
    found = default_route_address()
    if not found:
        raise NetworkModeError("no default route to take the node address from; pass --node-address")
    return found


def resolve_node(pod_network: str = "auto", proxy_mode: str = "auto", address: str = "") -> tuple[
        NetworkMode, str]:
    """The modes and the node address together. Under `auto`, a host that could run the root mode
    but has no address to give its node (no default route, no --node-address) takes the no-root
    mode and says why, instead of refusing to start."""
    mode = resolve(pod_network, proxy_mode)
    try:
        return mode, node_address(address, mode)
    except NetworkModeError as exc:
        if pod_network != "auto" or address or not mode.root or proxy_mode == "nftables":
            raise
        return NetworkMode("host", "userspace", reason=str(exc)), "127.0.0.1"
