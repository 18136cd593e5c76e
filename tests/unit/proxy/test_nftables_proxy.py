"""The nftables proxy's sync loop against a recording fake of nft (no root needed): batching, incremental
transactions, conflicts, problems as events, failures and the full resync that repairs them, and the
stale UDP flows it has deleted after each transaction."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from kubeling.proxy import nftables as nftables_module
from kubeling.proxy.conntrack import StaleFlows
from kubeling.proxy.nftables import NftablesProxy
from kubeling.proxy.nftables_exec import NftError
from tests.unit.proxy.nftnet import CLUSTER_CIDR, FakeInformer, endpoint_slice, running, service, settled

PODS = {"10.42.0.2": "node-a", "10.42.0.3": "node-a"}


class FakeNft:
    """Records every transaction; `fail` makes the next N applies fail as the kernel would."""

    def __init__(self) -> None:
        self.transactions: list[str] = []
        self.chains: set[str] = set()
        self.sets: set[str] = set()
        self.fail = 0
        self.cleaned = 0

    async def apply(self, transaction: str) -> None:
        if self.fail:
            self.fail -= 1
            raise NftError("transaction of 3 commands: Error: No such file or directory")
        self.transactions.append(transaction)

    async def existing(self) -> tuple[set[str], set[str], list[str]]:
        return set(self.chains), set(self.sets), ["inet filter forward"]

    async def cleanup(self) -> None:
        self.cleaned += 1


class FakeConntrack:
    """Records each deletion with the number of transactions the kernel held at that moment."""

    def __init__(self, nft: FakeNft) -> None:
        self.nft = nft
        self.calls: list[tuple[int, StaleFlows]] = []

    async def delete(self, flows: StaleFlows) -> int:
        self.calls.append((len(self.nft.transactions), flows))
        return 1

    def take(self) -> list[tuple[int, str]]:
        calls, self.calls = self.calls, []
        return sorted((n, str(f)) for n, f in calls)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    async def event(self, obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        self.events.append((obj["metadata"]["name"], reason, message))


class Setup:
    def __init__(self, *objs: dict[str, Any]) -> None:
        self.services = FakeInformer([o for o in objs if o["kind"] == "Service"])
        self.slices = FakeInformer([o for o in objs if o["kind"] == "EndpointSlice"])
        self.nft = FakeNft()
        self.conntrack = FakeConntrack(self.nft)
        self.recorder = Recorder()
        self.proxy = NftablesProxy(self.services, self.slices, node_name="node-a", node_address="10.250.0.1",
                                   recorder=self.recorder, cluster_cidr=CLUSTER_CIDR,  # type: ignore[arg-type]
                                   nft=self.nft, manage_sysctls=False, min_sync_period=0.01,
                                   conntrack=self.conntrack)
        self.proxy.initial_backoff = 0.01


@pytest.fixture
async def web() -> AsyncIterator[Setup]:
    setup = Setup(service("web", "10.43.0.5"), endpoint_slice("web", PODS),
                  service("api", "10.43.0.6"), endpoint_slice("api", PODS))
    async with running(setup.proxy):
        yield setup


async def test_first_sync_is_full_and_programs_every_service(web: Setup) -> None:
    assert web.proxy.stats == {"full": 1, "incremental": 0, "failed": 0}
    (text,) = web.nft.transactions
    assert "10.43.0.5 . tcp . 80" in text and "10.43.0.6 . tcp . 80" in text
    assert web.proxy.serving("TCP", "10.43.0.5", 80) and web.proxy.serving("TCP", "10.43.0.6", 80)


async def test_changes_coalesce_into_one_incremental_transaction_of_only_those_services(web: Setup) -> None:
    web.slices.apply(endpoint_slice("web", {"10.42.0.2": "node-a"}))
    web.services.apply(service("new", "10.43.0.7"))
    web.slices.apply(endpoint_slice("new", PODS))
    await settled(web.proxy)
    assert web.proxy.stats["incremental"] == 1 and len(web.nft.transactions) == 2
    text = web.nft.transactions[-1]
    assert "default/web/" in text and "default/new/" in text and "default/api/" not in text
    assert "delete chain" in text and "10.42.0.3" in text  # web lost an endpoint: its chain goes
    assert "add element ip kubeling-proxy service-ips { 10.43.0.7 . tcp . 80" in text


async def test_deleted_service_is_removed(web: Setup) -> None:
    web.services.delete(service("api", "10.43.0.6"))
    await settled(web.proxy)
    text = web.nft.transactions[-1]
    assert "delete element ip kubeling-proxy service-ips { 10.43.0.6 . tcp . 80 }" in text
    assert "default/web/" not in text
    assert not web.proxy.serving("TCP", "10.43.0.6", 80) and "default/api" not in web.proxy.applied


async def test_nft_failure_is_retried_as_a_full_sync(web: Setup) -> None:
    web.nft.fail = 1
    web.slices.apply(endpoint_slice("web", {"10.42.0.3": "node-a"}))
    await settled(web.proxy)
    assert web.proxy.stats["failed"] == 1 and web.proxy.stats["full"] == 2
    assert web.nft.transactions[-1].startswith("add table ip kubeling-proxy {")  # the full rewrite
    assert "web/tcp/p__10.42.0.3/" in web.nft.transactions[-1] and "web/tcp/p__10.42.0.2/" not in web.nft.transactions[-1]


async def test_refused_full_sync_replaces_the_table() -> None:
    setup = Setup(service("web", "10.43.0.5"), endpoint_slice("web", PODS))
    setup.nft.fail = 1  # e.g. a chain of an older version with another hook priority
    async with running(setup.proxy):
        assert setup.proxy.stats == {"full": 1, "incremental": 0, "failed": 0}
        assert setup.nft.transactions[0].startswith("add table ip kubeling-proxy\ndelete table ip kubeling-proxy\n")


async def test_stale_objects_of_a_previous_run_are_deleted_on_start() -> None:
    setup = Setup(service("web", "10.43.0.5"), endpoint_slice("web", PODS))
    setup.nft.chains = {"service-AAAAAAAA-default/gone/tcp/p", "services"}
    setup.nft.sets = {"affinity-BBBBBBBB-default/gone/tcp/p__10.42.0.9/80"}
    async with running(setup.proxy):
        text = setup.nft.transactions[0]
    assert "delete chain ip kubeling-proxy service-AAAAAAAA-default/gone/tcp/p" in text
    assert "delete set ip kubeling-proxy affinity-BBBBBBBB-default/gone/tcp/p__10.42.0.9/80" in text
    assert "delete chain ip kubeling-proxy services" not in text


async def test_conflicting_external_ip_goes_to_the_oldest_and_moves_when_it_leaves() -> None:
    old = service("old", "10.43.0.5", externalIPs=["192.0.2.10"], created="2025-01-01T00:00:00Z")
    young = service("young", "10.43.0.6", externalIPs=["192.0.2.10"], created="2025-02-01T00:00:00Z")
    setup = Setup(young, old, endpoint_slice("old", PODS), endpoint_slice("young", PODS))
    async with running(setup.proxy) as proxy:
        await settled(proxy)
        assert proxy.applied["default/old"].elements[("service-ips", "192.0.2.10 . tcp . 80")]
        assert ("service-ips", "192.0.2.10 . tcp . 80") not in proxy.applied["default/young"].elements
        assert [(n, r) for n, r, _ in setup.recorder.events] == [("young", "PortConflict")]
        assert "ExternalIP TCP 192.0.2.10:80 is already served for Service default/old" in setup.recorder.events[0][2]
        setup.services.delete(old)
        await settled(proxy)
        assert ("service-ips", "192.0.2.10 . tcp . 80") in proxy.applied["default/young"].elements
        assert proxy.stats["failed"] == 0


async def test_plan_problems_are_events_once() -> None:
    svc = service("sctp", "10.43.0.5", protocol="SCTP")
    setup = Setup(svc)
    setup.proxy.sync_period = 0.05  # several full syncs during the test
    async with running(setup.proxy) as proxy:
        await asyncio.sleep(0.3)
        assert proxy.stats["full"] >= 3
    assert [(n, r) for n, r, _ in setup.recorder.events] == [("sctp", "UnsupportedProtocol")]
    assert "the nftables proxy serves TCP and UDP" in setup.recorder.events[0][2]


async def test_close_leaves_the_rules_and_cleanup_removes_them(web: Setup) -> None:
    await web.proxy.close()
    assert web.nft.cleaned == 0
    await web.proxy.cleanup()
    assert web.nft.cleaned == 1 and not web.proxy.applied


async def test_without_bridge_netfilter_all_service_traffic_is_masqueraded(monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_bridge_netfilter(netns: str | None = None) -> bool:
        return False

    monkeypatch.setattr(nftables_module, "prepare_node", no_bridge_netfilter)
    setup = Setup(service("web", "10.43.0.5"), endpoint_slice("web", PODS))
    setup.proxy.manage_sysctls = True
    async with running(setup.proxy):
        assert setup.proxy.settings.masquerade_all
        assert "ip daddr 10.43.0.5 tcp dport 80 jump mark-for-masquerade" in setup.nft.transactions[0]
    explicit = Setup(service("web", "10.43.0.5"), endpoint_slice("web", PODS))
    explicit.proxy = NftablesProxy(explicit.services, explicit.slices, node_name="node-a",  # type: ignore[arg-type]
                                   node_address="10.250.0.1", nft=explicit.nft, masquerade_all=False,
                                   conntrack=explicit.conntrack)
    await explicit.proxy.prepare()
    assert not explicit.proxy.settings.masquerade_all  # asked for explicitly: left alone


# -- stale UDP flows ------------------------------------------------------------------------------

def udp_dns(**spec: Any) -> dict[str, Any]:
    return service("dns", "10.43.0.10", 53, protocol="UDP", stype="NodePort", node_port=30053, **spec)


async def test_stale_udp_flows_are_deleted_after_the_transaction() -> None:
    setup = Setup(udp_dns(), endpoint_slice("dns", PODS, protocol="UDP"), service("web", "10.43.0.5"),
                  endpoint_slice("web", PODS))
    async with running(setup.proxy) as proxy:
        await settled(proxy)
        # Nothing is known of the flows before the start: every UDP frontend with endpoints, once.
        assert setup.conntrack.take() == [(1, "UDP 10.43.0.10:53"), (1, "UDP NodePort 30053")]
        setup.slices.apply(endpoint_slice("dns", {"10.42.0.2": "node-a"}, protocol="UDP"))
        setup.slices.apply(endpoint_slice("web", {"10.42.0.2": "node-a"}))  # TCP: never
        await settled(proxy)
        assert setup.conntrack.take() == [(2, "UDP 10.43.0.10:53 DNATed to 10.42.0.3:8080"),
                                          (2, "UDP NodePort 30053 DNATed to 10.42.0.3:8080")]
        setup.slices.apply(endpoint_slice("dns", {}, protocol="UDP"))
        await settled(proxy)
        assert setup.conntrack.take() == [(3, "UDP 10.43.0.10:53 DNATed to 10.42.0.2:8080"),
                                          (3, "UDP NodePort 30053 DNATed to 10.42.0.2:8080")]
        setup.slices.apply(endpoint_slice("dns", {"10.42.0.3": "node-b"}, protocol="UDP"))  # 0 -> 1
        await settled(proxy)
        assert setup.conntrack.take() == [(4, "UDP 10.43.0.10:53"), (4, "UDP NodePort 30053")]
        setup.services.delete(udp_dns())
        await settled(proxy)
        assert setup.conntrack.take() == [(5, "UDP 10.43.0.10:53"), (5, "UDP NodePort 30053")]
        assert proxy.served == {}


async def test_a_resync_without_changes_deletes_nothing() -> None:
    setup = Setup(udp_dns(externalIPs=["192.0.2.10"]), endpoint_slice("dns", PODS, protocol="UDP"))
    async with running(setup.proxy) as proxy:
        await settled(proxy)
        assert len(setup.conntrack.take()) == 3
        for _ in range(2):
            proxy.request_full_sync()
            await settled(proxy)
        assert proxy.stats["full"] == 3 and setup.conntrack.take() == []


async def test_a_refused_transaction_deletes_nothing_until_a_sync_succeeds() -> None:
    setup = Setup(udp_dns(), endpoint_slice("dns", PODS, protocol="UDP"))
    async with running(setup.proxy) as proxy:
        await settled(proxy)
        setup.conntrack.take()
        setup.nft.fail = 1
        setup.slices.apply(endpoint_slice("dns", {"10.42.0.2": "node-a"}, protocol="UDP"))
        await settled(proxy)
        assert proxy.stats["failed"] == 1
        # Only once the full resync is in the kernel (the second transaction applied).
        assert setup.conntrack.take() == [(2, "UDP 10.43.0.10:53 DNATed to 10.42.0.3:8080"),
                                          (2, "UDP NodePort 30053 DNATed to 10.42.0.3:8080")]


async def test_a_terminating_endpoint_keeps_its_flows_until_it_stops_serving() -> None:
    def slice_(**leaving: Any) -> dict[str, Any]:
        made = endpoint_slice("dns", {"10.42.0.2": "node-a", "10.42.0.3": "node-a"}, protocol="UDP")
        made["endpoints"][1]["conditions"] = {"ready": False, "terminating": True, **leaving}
        return made

    setup = Setup(udp_dns(), endpoint_slice("dns", PODS, protocol="UDP"))
    async with running(setup.proxy) as proxy:
        await settled(proxy)
        setup.conntrack.take()
        setup.slices.apply(slice_(serving=True))  # no new flows go there; the existing ones stay
        await settled(proxy)
        assert setup.conntrack.take() == []
        setup.slices.apply(slice_(serving=False))  # the rules do not change, the flows go
        await settled(proxy)
        assert setup.conntrack.take() == [(2, "UDP 10.43.0.10:53 DNATed to 10.42.0.3:8080"),
                                          (2, "UDP NodePort 30053 DNATed to 10.42.0.3:8080")]
