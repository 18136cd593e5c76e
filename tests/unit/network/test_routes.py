"""NodeRoutes' desired-state computation (no root; programming is covered by test_multinode_root)."""

from __future__ import annotations

from typing import Any

from kubeling.network.routes import NodeRoutes, node_route


def node(name: str, cidr: str | None, *addrs: tuple[str, str]) -> dict[str, Any]:
    spec = {"podCIDR": cidr, "podCIDRs": [cidr]} if cidr else {}
    return {"metadata": {"name": name}, "spec": spec,
            "status": {"addresses": [{"type": t, "address": a} for t, a in addrs]}}


def test_node_route_needs_cidr_and_internal_ip() -> None:
    assert node_route(node("a", "10.42.1.0/24", ("Hostname", "a"), ("InternalIP", "192.0.2.10"))) == (
        "a", "10.42.1.0/24", "192.0.2.10")
    assert node_route(node("a", None, ("InternalIP", "192.0.2.10"))) is None
    assert node_route(node("a", "10.42.1.0/24", ("ExternalIP", "192.0.2.10"))) is None
    assert node_route(node("a", "10.42.1.0/24", ("InternalIP", "fd00::1"))) is None
    assert node_route(node("a", "bogus", ("InternalIP", "192.0.2.10"))) is None


def test_desired_skips_self_and_incomplete_nodes() -> None:
    nodes = [node("a", "10.42.1.0/24", ("InternalIP", "192.0.2.1")),
             node("b", "10.42.2.0/24", ("InternalIP", "192.0.2.2")),
             node("c", None, ("InternalIP", "192.0.2.3")),
             node("d", "10.42.4.0/24")]
    assert NodeRoutes("a").desired(nodes) == {"10.42.2.0/24": "192.0.2.2"}
    assert NodeRoutes("b").desired(nodes) == {"10.42.1.0/24": "192.0.2.1"}
    # Another node claiming our podCIDR (stale object) must never steal our bridge's route.
    dup = [*nodes, node("e", "10.42.1.0/24", ("InternalIP", "192.0.2.5"))]
    assert NodeRoutes("a").desired(dup) == {"10.42.2.0/24": "192.0.2.2"}
