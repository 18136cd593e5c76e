"""A multi-node cluster in the root network mode, each node in a network namespace the test creates.

Topology (all of it inside namespaces named `kl-test-<random>-…`, deleted at the end, also on
failure; nothing with a private address ever exists in the machine's own namespace):

    <prefix>-lan: bridge br0 (172.31.250.254/24, the nodes' default gateway; no uplink)
    <prefix>-n1:  eth0 172.31.250.1/24 — `kubeling up` (API server, control plane, node 1)
    <prefix>-n2:  eth0 172.31.250.2/24 — `kubeling agent` (node 2)

Node processes run under `nsenter --net=…`: only their network stack is the node's, their mount
namespace stays the machine's, so the pod namespaces their kubelets create under /run/netns and
the cgroups under /sys/fs/cgroup are the real ones. The test process reaches the API server
through `ApiForwarder`: a listener on the machine's 127.0.0.1 whose connections are opened from
inside node 1's namespace (setns on a helper thread), so the real kubectl and the `kubernetes`
client on the host drive the cluster without any route into the namespaces.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterable
from pathlib import Path

from kubeling.network.netns import call_in_netns_sync

from .cluster import FAST_KUBELET, Agent, Up

LAN_PREFIX = "172.31.250"
GATEWAY = f"{LAN_PREFIX}.254"


def root_network_skip_reason() -> str:
    """'' when the root network mode can be tested here, else what is missing."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, CNI, nftables)"
    for tool in ("ip", "nsenter", "nft", "iptables"):
        if not shutil.which(tool):
            return f"needs {tool} (apt-get install iproute2 util-linux nftables iptables)"
    from kubeling.network import cni_available
    reason = cni_available()
    if reason:
        return reason
    probe = f"kl-test-probe-{secrets.token_hex(3)}"
    r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, timeout=10)
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=10)
    return "" if r.returncode == 0 else f"ip netns add failed: {r.stderr.strip()}"


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=20)


def netns_names() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


class Topology:
    """The LAN namespace and one namespace per node, wired as in the module doc."""

    def __init__(self, nodes: int = 2) -> None:
        self.prefix = f"kl-test-{secrets.token_hex(3)}"
        self.lan = f"{self.prefix}-lan"
        self.nodes = [f"{self.prefix}-n{i}" for i in range(1, nodes + 1)]
        self.before = netns_names()

    def address(self, index: int) -> str:
        """Node `index` (0-based) address on the LAN."""
        return f"{LAN_PREFIX}.{index + 1}"

    def create(self) -> None:
        ip("netns", "add", self.lan)
        ip("-n", self.lan, "link", "set", "lo", "up")
        ip("-n", self.lan, "link", "add", "br0", "type", "bridge")
        ip("-n", self.lan, "addr", "add", f"{GATEWAY}/24", "dev", "br0")
        ip("-n", self.lan, "link", "set", "br0", "up")
        for i, ns in enumerate(self.nodes):
            ip("netns", "add", ns)
            ip("-n", ns, "link", "set", "lo", "up")
            ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", f"v{i + 1}", "netns", self.lan)
            ip("-n", self.lan, "link", "set", f"v{i + 1}", "master", "br0")
            ip("-n", self.lan, "link", "set", f"v{i + 1}", "up")
            ip("-n", ns, "addr", "add", f"{self.address(i)}/24", "dev", "eth0")
            ip("-n", ns, "link", "set", "eth0", "up")
            ip("-n", ns, "route", "add", "default", "via", GATEWAY)

    def delete(self) -> None:
        """Delete the node and LAN namespaces and every pod namespace that appeared meanwhile."""
        for name in sorted(netns_names() - self.before):
            if name.startswith(self.prefix):
                subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20)

    def path(self, ns: str) -> str:
        return f"/run/netns/{ns}"

    def run(self, ns: str, *argv: str, timeout: float = 60, check: bool = True,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run a command in node namespace `ns` (network only, as the node processes run)."""
        return subprocess.run(["nsenter", f"--net={self.path(ns)}", *argv], capture_output=True, text=True,
                              timeout=timeout, check=check, input=input)


class InNetns:
    """Mixin: start the kubeling process inside a node's network namespace."""

    def enter(self, topology: Topology, ns: str) -> None:
        self.python = ["nsenter", f"--net={topology.path(ns)}", *self.python]  # type: ignore[attr-defined]


def node_kubelet_options(topology: Topology, options: Iterable[str]) -> list[str]:
    """The kubelet's pod namespaces carry the test's prefix too, so they are the test's to delete."""
    return [*options, f"pod_netns_prefix={topology.prefix}-pod-"]


class NetUp(InNetns, Up):
    """`kubeling up --pod-network cni` in node 1's namespace, the API server on all its addresses."""

    def __init__(self, topology: Topology, data_dir: Path, *, node_name: str,
                 kubelet_options: Iterable[str] = FAST_KUBELET, extra_args: Iterable[str] = ()) -> None:
        super().__init__(data_dir, node_name=node_name,
                         kubelet_options=node_kubelet_options(topology, kubelet_options),
                         extra_args=["--pod-network", "cni", "--bind", "0.0.0.0",
                                     "--node-address", topology.address(0), *extra_args])
        self.enter(topology, topology.nodes[0])
        self.lan_url = f"http://{topology.address(0)}:{self.port}"


class NetAgent(InNetns, Agent):
    """`kubeling agent --pod-network cni` in node `index`'s namespace, joined over the LAN."""

    def __init__(self, topology: Topology, index: int, data_dir: Path, *, up: NetUp, node_name: str,
                 kubelet_options: Iterable[str] = FAST_KUBELET, extra_args: Iterable[str] = ()) -> None:
        super().__init__(data_dir, server=up.lan_url, token=up.token, node_name=node_name,
                         kubelet_options=node_kubelet_options(topology, kubelet_options),
                         extra_args=["--pod-network", "cni", "--node-address", topology.address(index),
                                     *extra_args])
        self.enter(topology, topology.nodes[index])


class ApiForwarder:
    """127.0.0.1:<port> on the machine → 127.0.0.1:<target> inside a node's network namespace."""

    def __init__(self, netns_path: str, target_port: int) -> None:
        self.netns_path = netns_path
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._closed = False
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="api-forwarder", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = call_in_netns_sync(self.netns_path, socket.create_connection,
                                              ("127.0.0.1", self.target_port), 10)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)
            with self._lock:
                self._sockets.discard(src)
            with contextlib.suppress(OSError):
                src.close()

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self.listener.close()
        with self._lock:
            for s in list(self._sockets):
                with contextlib.suppress(OSError):
                    s.close()


def forwarded_kubeconfig(source: Path, target: Path, port: int) -> Path:
    """A copy of `source` whose server is the forwarder on the machine's loopback."""
    import yaml
    doc = yaml.safe_load(source.read_text())
    for cluster in doc.get("clusters") or []:
        cluster["cluster"]["server"] = f"http://127.0.0.1:{port}"
    target.write_text(yaml.safe_dump(doc))
    return target
