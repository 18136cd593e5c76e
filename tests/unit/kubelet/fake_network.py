"""Doubles for the CNI mode's outside world: the node's PodNetwork and NodeRoutes.

`FakeBackend` behaves like network.PodNetwork (setup/teardown/check, the cached
result, the leftovers it knows) without namespaces or plugins, and records every
call; `FakeRoutes` records the Node lists it is asked to route. With them the
kubelet's CNI provider runs for real against a real API server, and nothing on
the machine changes (sysctls go to a test directory).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubeling.client.events import EventRecorder
from kubeling.kubelet.cninet import CNIPodNetwork
from kubeling.kubelet.nodenet import NodeNetwork
from kubeling.network.cni import CNIError
from kubeling.network.routes import NodeRoutes


@dataclass
class FakeResult:
    ip: str

    def pod_ip(self) -> str:
        return self.ip


class FakeBackend:
    """network.PodNetwork's interface over dicts."""

    def __init__(self, pod_cidr: str) -> None:
        self.pod_cidr = pod_cidr
        self.ips: dict[str, str] = {}  # uid → IP (the cached ADD result)
        self.namespaces: set[str] = set()  # netns names that exist
        self.fail_adds: list[CNIError] = []  # raised by the next setups, in order
        self.calls: list[tuple[str, str]] = []  # (operation, uid)
        self._next = 2  # host-local's first address: .1 is the bridge

    def netns_name(self, pod_uid: str) -> str:
        return f"fake-{pod_uid}"

    async def ensure_node(self) -> None:
        self.calls.append(("ensure_node", ""))

    async def setup_pod(self, pod_uid: str, port_mappings: Iterable[Mapping[str, Any]] | None = None, *,
                        pod_name: str = "", pod_namespace: str = "") -> tuple[str, str]:
        self.calls.append(("setup", pod_uid))
        if self.fail_adds:
            raise self.fail_adds.pop(0)
        assert self.netns_name(pod_uid) not in self.namespaces, "ADD on a namespace that was not cleaned"
        ip = str(ipaddress.ip_network(self.pod_cidr).network_address + self._next)
        self._next += 1
        self.ips[pod_uid] = ip
        self.namespaces.add(self.netns_name(pod_uid))
        return f"/run/netns/{self.netns_name(pod_uid)}", ip

    async def teardown_pod(self, pod_uid: str, *, pod_name: str = "", pod_namespace: str = "") -> None:
        self.calls.append(("teardown", pod_uid))
        self.ips.pop(pod_uid, None)
        self.namespaces.discard(self.netns_name(pod_uid))

    async def check_pod(self, pod_uid: str) -> None:
        self.calls.append(("check", pod_uid))
        if pod_uid not in self.ips:
            raise CNIError(3, f"no cached ADD result for {pod_uid}/eth0")

    def pod_result(self, pod_uid: str) -> FakeResult | None:
        return FakeResult(self.ips[pod_uid]) if pod_uid in self.ips else None

    def known_pods(self) -> set[str]:
        return set(self.ips) | {n.removeprefix("fake-") for n in self.namespaces}

    def ops(self, uid: str) -> list[str]:
        return [op for op, u in self.calls if u == uid]


@dataclass
class FakeRoutes:
    """Records each sync; `errors` maps a podCIDR to the error its route gets."""

    node_name: str
    synced: list[list[str]] = field(default_factory=list)  # node names per sync
    errors: dict[str, str] = field(default_factory=dict)

    def desired(self, nodes: Iterable[Mapping[str, Any]]) -> dict[str, str]:
        return NodeRoutes(self.node_name).desired(nodes)

    async def sync(self, nodes: Iterable[Mapping[str, Any]]) -> Any:
        nodes = list(nodes)
        self.synced.append(sorted(n["metadata"]["name"] for n in nodes))
        want = self.desired(nodes)

        @dataclass
        class Report:
            added: dict[str, str]
            errors: dict[str, str]

        return Report({c: g for c, g in want.items() if c not in self.errors},
                      {c: e for c, e in self.errors.items() if c in want})


def fake_cni_network(client: Any, *, node_name: str, host_ip: str, backend: FakeBackend, routes: FakeRoutes,
                     sysctl_root: Path) -> CNIPodNetwork:
    """A CNIPodNetwork on the fakes; `backend.pod_cidr` is replaced by the node's real podCIDR."""

    def make(pod_cidr: str) -> FakeBackend:
        backend.pod_cidr = pod_cidr
        return backend

    node = NodeNetwork(client, node_name=node_name, recorder=EventRecorder(client, component="kubelet"),
                       routes=routes, sysctl_root=str(sysctl_root))
    return CNIPodNetwork(node=node, backend=make, host_ip=host_ip,
                         netns_exists=lambda name: name in backend.namespaces)


def sysctl_dir(root: Path) -> Path:
    """A stand-in for /proc/sys with the two files the node network writes."""
    (root / "net" / "ipv4").mkdir(parents=True)
    (root / "net" / "ipv4" / "ip_forward").write_text("0\n")
    return root
