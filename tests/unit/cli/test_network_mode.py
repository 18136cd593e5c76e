"""Choosing the network mode from --pod-network/--proxy-mode and what the host allows."""

from __future__ import annotations

import pytest

from kubeling.cli import network
from kubeling.cli.network import NetworkModeError, node_address, resolve


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """What the host lacks for each mode ('' = it can)."""
    reasons = {"cni": "", "nftables": ""}
    monkeypatch.setattr(network, "cni_reason", lambda: reasons["cni"])
    monkeypatch.setattr(network, "nftables_reason", lambda: reasons["nftables"])
    return reasons


def test_auto_takes_the_root_mode_when_the_host_allows_it(host: dict[str, str]) -> None:
    mode = resolve("auto", "auto")
    assert (mode.pod_network, mode.proxy_mode, mode.reason) == ("cni", "nftables", "")
    assert mode.default_service_cidr() == "10.43.0.0/16"


def test_auto_falls_back_to_the_host_network_and_says_why(host: dict[str, str]) -> None:
    host["cni"] = "needs root"
    mode = resolve("auto", "auto")
    assert (mode.pod_network, mode.proxy_mode, mode.reason) == ("host", "userspace", "needs root")
    assert mode.default_service_cidr() == "127.43.0.0/16"


def test_explicit_cni_on_a_host_without_it_is_one_clear_error(host: dict[str, str]) -> None:
    host["cni"] = "needs the CNI plugins"
    with pytest.raises(NetworkModeError, match="--pod-network cni is not possible on this host: needs the CNI"):
        resolve("cni", "auto")


def test_host_network_never_probes_cni(host: dict[str, str]) -> None:
    host["cni"] = "would fail"
    assert resolve("host", "auto").pod_network == "host"


def test_nftables_proxy_needs_the_cni_network_and_nft(host: dict[str, str]) -> None:
    with pytest.raises(NetworkModeError, match="needs the CNI pod network"):
        resolve("host", "nftables")
    host["nftables"] = "nft is not installed"
    with pytest.raises(NetworkModeError, match="nft is not installed"):
        resolve("cni", "nftables")
    assert resolve("cni", "userspace").proxy_mode == "userspace"


def test_bad_choices_are_refused(host: dict[str, str]) -> None:
    with pytest.raises(NetworkModeError, match="--pod-network must be one of"):
        resolve("bridge", "auto")
    with pytest.raises(NetworkModeError, match="--proxy-mode must be one of"):
        resolve("auto", "ipvs")


def test_node_address(host: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    root, noroot = resolve("cni"), resolve("host")
    assert node_address("", noroot) == "127.0.0.1"
    assert node_address("192.0.2.7", root) == "192.0.2.7"
    with pytest.raises(NetworkModeError, match="not an IP address"):
        node_address("node-1", root)
    with pytest.raises(NetworkModeError, match="must not be a loopback address"):
        node_address("127.0.0.1", root)
    monkeypatch.setattr(network, "default_route_address", lambda: "192.0.2.9")
    assert node_address("", root) == "192.0.2.9"
    monkeypatch.setattr(network, "default_route_address", lambda: "")
    with pytest.raises(NetworkModeError, match="pass --node-address"):
        node_address("", root)


def test_auto_without_a_node_address_takes_the_no_root_mode(host: dict[str, str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(network, "default_route_address", lambda: "")
    mode, address = network.resolve_node("auto", "auto", "")
    assert (mode.pod_network, mode.proxy_mode, address) == ("host", "userspace", "127.0.0.1")
    assert "no default route" in mode.reason
    # asked for explicitly, or with an address given, there is no silent fallback
    with pytest.raises(NetworkModeError, match="pass --node-address"):
        network.resolve_node("cni", "auto", "")
    assert network.resolve_node("auto", "auto", "192.0.2.4") == (resolve("cni"), "192.0.2.4")


def test_server_alone_takes_the_range_of_this_hosts_nodes(host: dict[str, str]) -> None:
    assert network.host_default_service_cidr() == "10.43.0.0/16"
    host["cni"] = "needs root"
    assert network.host_default_service_cidr() == "127.43.0.0/16"
