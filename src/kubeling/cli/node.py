"""The node side of `kubeling up` and `kubeling agent`: a kubelet on the
process runtime, as a supervised component with a graceful stop.

Stopping a node stops every pod process gracefully (preStop, SIGTERM, then
SIGKILL after the grace period): no orphan processes, ever.
"""

from __future__ import annotations

import errno
import socket
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeling.cli.supervisor import Component
from kubeling.client import KubeClient


@dataclass
class DNSOptions:
    """Cluster DNS settings: the .10 of the service range on port 53 (10053 when 53 cannot be bound)."""

    service_cidr: str = "127.43.0.0/16"
    listen_ip: str = ""  # default: the .10 of service_cidr, the kube-dns ClusterIP
    port: int = 53
    fallback_port: int | None = 10053
    domain: str = "cluster.local"
    upstreams: list[tuple[str, int]] | None = None  # default: the host's /etc/resolv.conf
    local_address: bool = False  # root mode: put listen_ip on the node's lo, one DNS server per node
    manage_service: bool = True  # create kube-system/kube-dns (the server's node does; agents do not)


@dataclass
class NodeOptions:
    """Flags that shape the local node."""

    node_name: str = ""
    address: str = "127.0.0.1"
    kubelet_port: int = 10250
    pod_ip_range: str = ""
    kubelet: dict[str, Any] = field(default_factory=dict)  # KubeletOptions fields, for tests and tuning
    dns: DNSOptions = field(default_factory=DNSOptions)  # the cluster DNS add-on (`kubeling up`)
    pod_network: str = "host"  # "cni" (root mode: a netns per pod) or "host" (loopback address per pod)
    proxy_mode: str = "userspace"  # "nftables" (root mode) or "userspace"
    cluster_cidr: str = "10.42.0.0/16"
    disable: set[str] = field(default_factory=set)  # components not to run: "proxy", "dns"
    mode_reason: str = ""  # why `--pod-network auto` chose the host network ('' otherwise)

    def describe_network(self) -> str:
        """One line for the start banner: which network mode this node runs, and why."""
        if self.pod_network == "cni":
            return (f"network: a network namespace per pod (CNI bridge, pods from {self.cluster_cidr}), "
                    f"Services via {self.proxy_mode}")
        why = f" ({self.mode_reason})" if self.mode_reason else ""
        return f"network: host network, a loopback address per pod, Services via the {self.proxy_mode} proxy{why}"

    def resolved_name(self) -> str:
        return self.node_name or socket.gethostname().split(".")[0].lower()


def default_pod_ip_range(node_name: str, *, first_node: bool) -> str:
    """No-root pod addresses: the first node takes 127.42.0.0/16, every other node its
    own /16 in 127/8 derived from its name, so nodes on one machine never collide."""
    if first_node:
        return "127.42.0.0/16"
    return f"127.{43 + zlib.crc32(node_name.encode()) % 200}.0.0/16"


def free_port(address: str, wanted: int) -> int:
    """`wanted` if it can be bound, else a free port chosen by the kernel (0 = always choose)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((address, wanted))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            s.bind((address, 0))
        return int(s.getsockname()[1])


def node_component(client: KubeClient, data_dir: Path, opts: NodeOptions, *, first_node: bool) -> tuple[
        Component, Any]:
    """A kubelet on the process runtime; returns (component, kubelet)."""
    from kubeling.kubelet.kubelet import Kubelet, KubeletOptions
    from kubeling.runtime.process import ProcessRuntime

    name = opts.resolved_name()
    kopts = KubeletOptions(**opts.kubelet)
    kopts.pod_ip_range = opts.pod_ip_range or default_pod_ip_range(name, first_node=first_node)
    kopts.pod_network = opts.pod_network
    kopts.cluster_cidr = opts.cluster_cidr
    runtime = ProcessRuntime(str(data_dir / "runtime"))
    kubelet = Kubelet(client, node_name=name, runtime=runtime, root_dir=str(data_dir / "kubelet"),
                      address=opts.address, node_server_port=free_port(opts.address, opts.kubelet_port),
                      options=kopts)
    return Component("kubelet", kubelet.run, stop=kubelet.shutdown), kubelet


def proxy_component(client: KubeClient, opts: NodeOptions, *, service_lb: bool = True) -> Component:
    """The node's Service proxy (nftables in the root mode, userspace without root) with ServiceLB."""
    from kubeling.proxy import ServiceProxy

    proxy = ServiceProxy(client, node_name=opts.resolved_name(), node_address=opts.address,
                         mode=opts.proxy_mode, cluster_cidr=opts.cluster_cidr, service_lb=service_lb)
    return Component("proxy", proxy.run, stop=proxy.stop)


def node_components(client: KubeClient, data_dir: Path, opts: NodeOptions, *, first_node: bool) -> tuple[
        list[Component], Any]:
    """The kubelet plus the proxy and cluster DNS this node runs (unless disabled); returns (components, kubelet).

    Cluster DNS runs on the first node in the no-root mode (it binds a loopback address of the
    machine) and on every node in the root mode (each node serves the kube-dns address locally)."""
    component, kubelet = node_component(client, data_dir, opts, first_node=first_node)
    components = [component]
    if "proxy" not in opts.disable:
        components.append(proxy_component(client, opts))
    if "dns" not in opts.disable and (first_node or opts.pod_network == "cni"):
        components.append(dns_component(client, opts))
    return components, kubelet


def dns_component(client: KubeClient, opts: NodeOptions) -> Component:
    """The cluster DNS add-on (kube-system/kube-dns): records from the API server, other names forwarded."""
    from kubeling.dns.component import ClusterDNS, dns_service_ip

    d = opts.dns
    dns = ClusterDNS(client, listen_ip=d.listen_ip or dns_service_ip(d.service_cidr), port=d.port,
                     fallback_port=d.fallback_port, domain=d.domain, upstreams=d.upstreams,
                     service_cidr=d.service_cidr, local_address=d.local_address,
                     manage_service=d.manage_service)
    return Component("dns", dns.run, stop=dns.stop)
