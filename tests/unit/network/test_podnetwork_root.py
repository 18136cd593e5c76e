"""PodNetwork against the real CNI plugins, on one "node" that is a test-created network namespace.

Every pod namespace is `kl-test-<random>-p-<uid>`; the node's bridge, veths and iptables
rules exist only in the node namespace, host-local writes to tmp_path.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from kubeling.network import CNIError, PodNetwork, port_mappings_for_pod
from kubeling.network.netns import exec_in_netns, netns_exists
from tests.unit.network.conftest import EchoServer, cleanup, ip, leftover, tcp_ask

POD_CIDR = "10.42.7.0/24"
NODE_IP = "10.250.7.1"


@pytest.fixture
async def node(make_node: Callable[[str], str], netns_prefix: str, plugin_dir: str,
               tmp_path: Path) -> AsyncIterator[tuple[str, PodNetwork]]:
    name = make_node("node")
    net = PodNetwork(POD_CIDR, bin_dirs=[plugin_dir], conf_dir=str(tmp_path / "conf"),
                     state_dir=str(tmp_path / "state"), node_netns=name, netns_prefix=netns_prefix + "p-")
    try:
        # The node's own address, on a veth inside the node namespace only (the kernel here
        # may lack the dummy driver; veth is needed by the bridge plugin anyway).
        ip("-n", name, "link", "add", "kl-nodeif", "type", "veth", "peer", "name", "kl-nodeif-p")
        ip("-n", name, "addr", "add", f"{NODE_IP}/24", "dev", "kl-nodeif")
        ip("-n", name, "link", "set", "kl-nodeif-p", "up")
        ip("-n", name, "link", "set", "kl-nodeif", "up")
        yield name, net
    finally:
        for n in [n for n in await leftover(netns_prefix + "p-")]:
            uid = n[len(netns_prefix + "p-"):]
            try:
                await net.teardown_pod(uid)
            except Exception:
                await cleanup(n)
        await cleanup(name)


def _exists(path: Path) -> bool:
    return path.exists()


def _read(path: str) -> str:
    return Path(path).read_text()


def _addrs(netns: str, dev: str) -> list[str]:
    doc = json.loads(ip("-n", netns, "-j", "addr", "show", "dev", dev))
    return [a["local"] for a in doc[0]["addr_info"] if a["family"] == "inet"]


async def test_pod_gets_eth0_in_pod_cidr_and_default_route(node: tuple[str, PodNetwork]) -> None:
    node_ns, net = node
    path, pod_ip = await net.setup_pod("uid1")
    pod_ns = os.path.basename(path)
    assert ipaddress.ip_address(pod_ip) in ipaddress.ip_network(POD_CIDR)
    assert _addrs(pod_ns, "eth0") == [pod_ip]
    assert _addrs(pod_ns, "lo") == ["127.0.0.1"]
    routes = json.loads(ip("-n", pod_ns, "-j", "route", "show", "default"))
    assert routes and routes[0]["gateway"] == net.gateway == "10.42.7.1"
    # The bridge lives in the node namespace (and only there) and holds the gateway address.
    assert _addrs(node_ns, "kubeling0") == ["10.42.7.1"]
    res = net.pod_result("uid1")
    assert res is not None and res.pod_ip() == pod_ip and res.cni_version == "1.0.0"
    assert any(i.name == "eth0" and i.sandbox == path for i in res.interfaces)
    await net.check_pod("uid1")
    conf = json.loads(_read(os.path.join(net.conf_dir, "10-kubeling.conflist")))
    assert [p["type"] for p in conf["plugins"]] == ["bridge", "portmap"]
    await net.teardown_pod("uid1")
    assert not netns_exists(pod_ns)


async def test_two_pods_on_one_node_reach_each_other(node: tuple[str, PodNetwork]) -> None:
    _, net = node
    path_a, ip_a = await net.setup_pod("a")
    path_b, ip_b = await net.setup_pod("b")
    assert ip_a != ip_b
    server = await EchoServer.start(path_b, ip_b, 8080)
    try:
        assert await tcp_ask(path_a, ip_b, 8080) == f"{ip_a}|hello"
    finally:
        await server.close()
    if shutil.which("ping"):  # optional: the TCP check above already proved reachability
        rc, out, err = await exec_in_netns(os.path.basename(path_a), "ping", "-c1", "-W1", ip_b, check=False)
        assert rc == 0, out + err
    await net.teardown_pod("a")
    await net.teardown_pod("b")


async def test_del_releases_ip_and_is_idempotent(node: tuple[str, PodNetwork], tmp_path: Path) -> None:
    _, net = node
    path, pod_ip = await net.setup_pod("rel")
    ipam_dir = tmp_path / "state" / "ipam" / "kubeling"
    assert _exists(ipam_dir / pod_ip)  # host-local's reservation file, in our tmp dir
    assert not _exists(Path("/var/lib/cni/networks/kubeling", pod_ip))
    await net.teardown_pod("rel")
    assert not _exists(ipam_dir / pod_ip)
    assert not netns_exists(os.path.basename(path))
    assert net.pod_result("rel") is None
    await net.teardown_pod("rel")  # a second DEL (kubelet retry) is fine
    with pytest.raises(CNIError):
        await net.check_pod("rel")


async def test_hostport_reachable_from_node(node: tuple[str, PodNetwork]) -> None:
    node_ns, net = node
    pod = {"spec": {"containers": [{"name": "web", "ports": [
        {"containerPort": 8080, "hostPort": 18080, "protocol": "TCP"}, {"containerPort": 9090}]}]}}
    mappings = port_mappings_for_pod(pod)
    assert mappings == [{"hostPort": 18080, "containerPort": 8080, "protocol": "tcp", "hostIP": ""}]
    path, pod_ip = await net.setup_pod("hp", mappings)
    server = await EchoServer.start(path, "0.0.0.0", 8080)
    try:
        node_path = f"/run/netns/{node_ns}"
        reply = await tcp_ask(node_path, NODE_IP, 18080, b"via-hostport")
        assert reply.endswith("|via-hostport")
        # Another "pod" reaches it through the node address too (hairpin through the bridge).
        path2, ip2 = await net.setup_pod("hp2")
        assert (await tcp_ask(path2, NODE_IP, 18080, b"x")).endswith("|x")
    finally:
        await server.close()
    _, rules, _ = await exec_in_netns(node_ns, "iptables-save", "-t", "nat")
    assert "18080" in rules
    await net.teardown_pod("hp")
    await net.teardown_pod("hp2")
    _, rules, _ = await exec_in_netns(node_ns, "iptables-save", "-t", "nat")
    assert "18080" not in rules  # portmap DEL removed the DNAT


async def test_known_pods_are_this_networks_own_leftovers(node: tuple[str, PodNetwork], netns_prefix: str,
                                                          plugin_dir: str, tmp_path: Path) -> None:
    node_ns, net = node
    await net.setup_pod("alive")
    await net.setup_pod("crashed")
    assert net.known_pods() == {"alive", "crashed"}
    # A second node on the same machine (same /run/netns, own state) does not claim them.
    other = PodNetwork("10.42.8.0/24", bin_dirs=[plugin_dir], conf_dir=str(tmp_path / "other"),
                       node_netns=node_ns, netns_prefix=netns_prefix + "p-")
    assert other.known_pods() == set()
    # What a kubelet restarted after a crash does for a pod deleted meanwhile: tear down what is known.
    net2 = PodNetwork(POD_CIDR, bin_dirs=[plugin_dir], conf_dir=str(tmp_path / "conf"),
                      state_dir=str(tmp_path / "state"), node_netns=node_ns, netns_prefix=netns_prefix + "p-")
    assert net2.known_pods() == {"alive", "crashed"}
    await net2.teardown_pod("crashed")
    assert net2.known_pods() == {"alive"} and not netns_exists(net.netns_name("crashed"))
    assert net2.pod_result("alive") is not None
    await net.teardown_pod("alive")
    assert net.known_pods() == set()
