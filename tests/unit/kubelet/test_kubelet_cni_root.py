"""A real kubelet in CNI mode with the real plugins, in a test-created node network namespace.

The kubelet process must live in the node's namespace, so the cluster runs as a subprocess
(`ip netns exec <node ns> python -m tests.unit.kubelet.cni_node`, see that module) and this test
checks what it observed. Every namespace is `kl-test-<random>-…` and is deleted afterwards, also on
failure; the bridge, veths, routes and iptables/nft rules exist only inside the node namespace.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubeling.network.preflight import cni_available, plugin_dir

REPO = Path(__file__).resolve().parents[3]
NODE_IP = "10.250.42.1"


def _netns_of(prefix: str) -> list[str]:
    return sorted(n for n in os.listdir("/run/netns") if n.startswith(prefix)) if os.path.isdir("/run/netns") else []


@pytest.fixture
def node_ns() -> Iterator[tuple[str, str]]:
    """(node namespace, prefix of the pod namespaces); everything with the prefix is deleted afterwards."""
    reason = cni_available()
    if reason:
        pytest.skip(reason)
    prefix = f"kl-test-{secrets.token_hex(3)}-"
    node = prefix + "node"
    r = subprocess.run(["ip", "netns", "add", node], capture_output=True, text=True, timeout=10)
    if r.returncode != 0:
        pytest.skip(f"ip netns add failed: {r.stderr.strip()}")
    try:
        for args in (["link", "set", "lo", "up"],
                     ["link", "add", "kl-nodeif", "type", "veth", "peer", "name", "kl-nodeif-p"],
                     ["addr", "add", f"{NODE_IP}/24", "dev", "kl-nodeif"],
                     ["link", "set", "kl-nodeif-p", "up"], ["link", "set", "kl-nodeif", "up"]):
            subprocess.run(["ip", "-n", node, *args], check=True, capture_output=True, timeout=10)
        yield node, prefix + "p-"
    finally:
        for name in _netns_of(prefix):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
        assert _netns_of(prefix) == [], "network namespaces left behind"


def test_kubelet_runs_pods_in_their_own_network(node_ns: tuple[str, str], tmp_path: Path) -> None:
    node, pod_prefix = node_ns
    plugins = plugin_dir()
    assert plugins is not None
    proc = subprocess.run(["ip", "netns", "exec", node, sys.executable, "-m", "tests.unit.kubelet.cni_node",
                           str(tmp_path), pod_prefix, plugins, NODE_IP],
                          cwd=REPO, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-6000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    cidr = ipaddress.ip_network(seen["pod_cidr"])
    assert cidr.subnet_of(ipaddress.ip_network("10.42.0.0/16")) and seen["ready_condition"] == "True"

    # The web pod: an IP from the node's podCIDR, its own namespace, Ready through a probe from the node.
    web = seen["web"]
    assert ipaddress.ip_address(web["ip"]) in cidr and web["host_ip"] == NODE_IP
    assert len(web["netns"]) == 1 and web["netns"][0].startswith(pod_prefix)

    # The client pod: its own namespace, the kubelet's resolv.conf and hosts, the web pod over the bridge.
    client = seen["client"]
    assert client["phase"] == "Succeeded", client["log"]
    ns_line, hostname, rest = client["log"].split("\n", 2)
    resolv, hosts, fetched = rest.split("---\n")
    assert ns_line.startswith("net:[") and ns_line != seen["node_netns"]
    assert hostname == "client"
    assert resolv.startswith("search default.svc.cluster.local svc.cluster.local cluster.local")
    assert "nameserver 10.43.0.10\n" in resolv and "options ndots:5" in resolv
    assert hosts.startswith("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n")
    assert f"{client['ip']}\tclient.sub.default.svc.cluster.local\tclient\n" in hosts
    assert fetched.strip() == "200"
    assert seen["after_client_finished"] == web["netns"]  # a finished pod's network is released

    # hostNetwork: the node's namespace and address.
    assert seen["hostnet"] == {"phase": "Succeeded", "ip": NODE_IP, "log": seen["node_netns"]}

    # Deleting a pod runs CNI DEL and removes its namespace.
    assert seen["after_web_deleted"] == [] and seen["results_after_web_deleted"] == []

    # A graceful node stop leaves no pod network behind; after the restart the pod has a fresh one.
    assert len(seen["again_before"]["netns"]) == 1 and seen["after_stop"] == []
    assert len(seen["again_after"]["netns"]) == 1 and ipaddress.ip_address(seen["again_after"]["ip"]) in cidr
    assert seen["after_final_stop"] == [] and seen["ipam_left"] == []
