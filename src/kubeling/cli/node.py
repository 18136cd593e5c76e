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


@dataclass
class NodeOptions:
    """Flags that shape the local node."""

    node_name: str = ""
    address: str = "127.0.0.1"
    kubelet_port: int = 10250
    pod_ip_range: str = ""
    kubelet: dict[str, Any] = field(default_factory=dict)  # KubeletOptions fields, for tests and tuning
    dns: DNSOptions = field(default_factory=DNSOptions)  # the cluster DNS add-on (`kubeling up`)

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
    runtime = ProcessRuntime(str(data_dir / "runtime"))
    kubelet = Kubelet(client, node_name=name, runtime=runtime, root_dir=str(data_dir / "kubelet"),
                      address=opts.address, node_server_port=free_port(opts.address, opts.kubelet_port),
                      options=kopts)
    return Component("kubelet", kubelet.run, stop=kubelet.shutdown), kubelet


def proxy_component(client: KubeClient, opts: NodeOptions) -> Component:
    """The node's Service proxy (userspace mode, no root needed) with ServiceLB, serving on the node address."""
    from kubeling.proxy import ServiceProxy

    proxy = ServiceProxy(client, node_name=opts.resolved_name(), node_address=opts.address)
    return Component("proxy", proxy.run, stop=proxy.stop)


def dns_component(client: KubeClient, opts: NodeOptions) -> Component:
    """The cluster DNS add-on (kube-system/kube-dns): records from the API server, other names forwarded."""
    from kubeling.dns.component import ClusterDNS, dns_service_ip

    d = opts.dns
    dns = ClusterDNS(client, listen_ip=d.listen_ip or dns_service_ip(d.service_cidr), port=d.port,
                     fallback_port=d.fallback_port, domain=d.domain, upstreams=d.upstreams,
                     service_cidr=d.service_cidr)
    return Component("dns", dns.run, stop=dns.stop)
