"""No-root pod IPs: unique, stable per uid, persisted, never special addresses, and really bindable."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import pytest

from kubeling.kubelet.podip import PodIPAllocator, PodIPExhausted


def test_unique_and_stable(tmp_path: Path) -> None:
    alloc = PodIPAllocator(root_dir=str(tmp_path))
    ips = [alloc.allocate(f"uid-{i}") for i in range(50)]
    assert len(set(ips)) == 50
    assert all(ipaddress.ip_address(ip) in ipaddress.ip_network("127.42.0.0/16") for ip in ips)
    assert "127.42.0.0" not in ips
    assert alloc.allocate("uid-3") == ips[3]


def test_persisted_across_restarts(tmp_path: Path) -> None:
    first = PodIPAllocator(root_dir=str(tmp_path))
    a, b = first.allocate("a"), first.allocate("b")
    first.release("a")
    again = PodIPAllocator(root_dir=str(tmp_path))
    assert again.get("b") == b and again.get("a") is None
    assert again.allocate("b") == b
    c = again.allocate("c")
    assert c not in (a, b)  # round robin: a released address is not reused at once
    assert again.retain_only({"c"}) == ["b"]
    assert PodIPAllocator(root_dir=str(tmp_path)).allocations() == {"c": c}


def test_changed_range_discards_state(tmp_path: Path) -> None:
    PodIPAllocator("127.42.0.0/16", root_dir=str(tmp_path)).allocate("a")
    assert PodIPAllocator("127.43.0.0/24", root_dir=str(tmp_path)).allocations() == {}


@pytest.mark.parametrize(("cidr", "usable"), [
    ("127.42.0.0/29", {f"127.42.0.{i}" for i in range(1, 7)}),
    ("127.0.0.0/29", {f"127.0.0.{i}" for i in range(2, 7)}),  # never 127.0.0.1
])
def test_special_addresses_and_exhaustion(cidr: str, usable: set[str]) -> None:
    alloc = PodIPAllocator(cidr)
    got = {alloc.allocate(f"p{i}") for i in range(len(usable))}
    assert got == usable
    with pytest.raises(PodIPExhausted):
        alloc.allocate("one-too-many")
    alloc.release("p0")
    assert alloc.allocate("again") in usable


def test_real_bind_same_port_on_two_pod_ips() -> None:
    alloc = PodIPAllocator("127.42.7.0/24")
    ip1, ip2 = alloc.allocate("x"), alloc.allocate("y")
    with socket.socket() as s1, socket.socket() as s2:
        s1.bind((ip1, 0))
        port = s1.getsockname()[1]
        s2.bind((ip2, port))  # same port, different pod IP: works without any configuration
        s1.listen()
        with socket.create_connection((ip1, port), timeout=2):
            pass
