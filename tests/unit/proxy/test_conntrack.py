"""Stale UDP conntrack entries, without root: what to delete after a change, the conntrack command, the cleaner."""

from __future__ import annotations

import asyncio
import logging
import stat
from pathlib import Path
from typing import Any

import pytest

from kubeling.proxy.conntrack import (
    Conntrack,
    ConntrackCleaner,
    ConntrackError,
    ConntrackMissing,
    Served,
    StaleFlows,
    served_flows,
    serving_endpoints,
    stale_flows,
)
from kubeling.proxy.rules import plan_service
from tests.unit.proxy.nftnet import endpoint_slice, service

CIP = ("UDP", "10.43.0.5", 53)
EXT = ("UDP", "192.0.2.10", 53)
NP = ("UDP", "", 30053)
A, B = ("10.42.0.2", 8080), ("10.42.0.3", 8080)


def eps(*endpoints: tuple[str, int]) -> frozenset[tuple[str, int]]:
    return frozenset(endpoints)


def every(target: tuple[str, str, int]) -> StaleFlows:
    return StaleFlows(*target)


def via(target: tuple[str, str, int], endpoint: tuple[str, int]) -> StaleFlows:
    return StaleFlows(*target, endpoint=endpoint[0], endpoint_port=endpoint[1])


@pytest.mark.parametrize(("old", "new", "expected"), [
    ({CIP: eps(A, B)}, {CIP: eps(A, B)}, []),
    ({CIP: eps(A)}, {CIP: eps(A, B)}, []),
    ({CIP: eps(A, B), EXT: eps(A, B), NP: eps(A, B)}, {CIP: eps(A), EXT: eps(A), NP: eps(A)},
     [via(CIP, B), via(EXT, B), via(NP, B)]),
    ({CIP: eps(A)}, {CIP: eps(B)}, [via(CIP, A)]),
    ({CIP: eps(A)}, {CIP: eps(("10.42.0.2", 9090))}, [via(CIP, A)]),
    ({CIP: eps(A), NP: eps(A)}, {CIP: eps(), NP: eps()}, [via(CIP, A), via(NP, A)]),
    ({CIP: eps(), NP: eps()}, {CIP: eps(A), NP: eps(A)}, [every(CIP), every(NP)]),
    ({}, {CIP: eps(A), NP: eps(A)}, [every(CIP), every(NP)]),
    ({}, {CIP: eps()}, []),
    ({CIP: eps(A), EXT: eps(A)}, {CIP: eps(A)}, [every(EXT)]),
    ({CIP: eps(A, B)}, {}, [every(CIP)]),
    ({CIP: eps()}, {}, []),
], ids=["unchanged", "endpoint-added", "endpoint-removed-from-every-frontend", "endpoint-replaced",
        "endpoint-port-changed", "last-endpoint-removed", "newly-active", "new-frontend-with-endpoints-or-first-sync",
        "new-frontend-without-endpoints", "frontend-removed", "service-deleted",
        "service-without-endpoints-deleted"])
def test_stale_flows(old: Served, new: Served, expected: list[StaleFlows]) -> None:
    assert stale_flows(old, new) == sorted(expected)


def test_a_frontend_cleared_entirely_needs_no_endpoint_filters() -> None:
    # The ClusterIP moves to a new address while its endpoint is replaced: the old frontend is
    # cleared entirely, the new one is newly active; no per-endpoint filter duplicates them.
    moved = ("UDP", "10.43.0.6", 53)
    assert stale_flows({CIP: eps(A)}, {moved: eps(B)}) == [every(CIP), every(moved)]


@pytest.mark.parametrize(("flows", "args"), [
    (via(CIP, A), ("-D", "-p", "udp", "--orig-dst", "10.43.0.5", "--orig-port-dst", "53", "--dst-nat", "10.42.0.2",
                   "--reply-port-src", "8080")),
    (via(NP, A), ("-D", "-p", "udp", "--orig-port-dst", "30053", "--dst-nat", "10.42.0.2", "--reply-port-src", "8080")),
    (every(CIP), ("-D", "-p", "udp", "--orig-dst", "10.43.0.5", "--orig-port-dst", "53")),
    (every(NP), ("-D", "-p", "udp", "--orig-port-dst", "30053")),
    (every(("SCTP", "10.43.0.5", 9)), ("-D", "-p", "sctp", "--orig-dst", "10.43.0.5", "--orig-port-dst", "9")),
], ids=["endpoint-via-address", "endpoint-via-nodeport", "address", "nodeport", "sctp"])
def test_conntrack_filters(flows: StaleFlows, args: tuple[str, ...]) -> None:
    assert flows.args == args


def _endpoint(ip: str, **conditions: Any) -> dict[str, Any]:
    return {"addresses": [ip], "nodeName": "node-b", "conditions": conditions}


def test_serving_endpoints_follow_kube_proxy() -> None:
    slice_ = endpoint_slice("dns", {}, protocol="UDP")
    slice_["endpoints"] = [
        _endpoint("10.42.0.2", ready=True),
        _endpoint("10.42.0.3"),  # no conditions: ready
        _endpoint("10.42.0.4", ready=False),  # not ready, not serving
        _endpoint("10.42.0.5", ready=False, serving=True, terminating=True),  # terminating, still serving
        _endpoint("10.42.0.6", ready=False, serving=False, terminating=True),
        _endpoint("10.42.0.7", terminating=True),  # serving unknown: as ready, which terminating is not
        _endpoint("fd00::7", ready=True),  # the proxy serves IPv4 only
    ]
    assert serving_endpoints([slice_], "p", "UDP") == eps(("10.42.0.2", 8080), ("10.42.0.3", 8080), ("10.42.0.5", 8080))
    assert serving_endpoints([slice_], "p", "TCP") == eps()
    assert serving_endpoints([slice_], "other", "UDP") == eps()


def test_served_flows_of_a_service() -> None:
    svc = service("dns", "10.43.0.5", 53, protocol="UDP", stype="LoadBalancer", node_port=30053,
                  externalIPs=["192.0.2.10"], externalTrafficPolicy="Local")
    svc["spec"]["ports"].append({"name": "tcp", "port": 53, "protocol": "TCP", "targetPort": 8080})
    svc["status"] = {"loadBalancer": {"ingress": [{"ip": "198.51.100.7"}]}}
    ready = endpoint_slice("dns", {A[0]: "node-a", B[0]: "node-b"}, protocol="UDP")
    leaving = endpoint_slice("dns", {}, protocol="UDP", suffix="2")
    leaving["endpoints"] = [_endpoint("10.42.0.9", ready=False, serving=True, terminating=True)]
    slices = [ready, leaving, endpoint_slice("dns", {"10.42.0.4": "node-a"}, port_name="tcp")]
    plan = plan_service(svc, slices, node_name="node-a", node_address="10.250.0.1", any_address=True)
    # Every endpoint that serves, whatever the policy: traffic from pods goes to all of them.
    served = eps(A, B, ("10.42.0.9", 8080))
    assert served_flows(plan.frontends.values(), slices) == {
        ("UDP", "10.43.0.5", 53): served, ("UDP", "192.0.2.10", 53): served,
        ("UDP", "198.51.100.7", 53): served, ("UDP", "", 30053): served}
    assert served_flows(plan.frontends.values(), []) == dict.fromkeys(served_flows(plan.frontends.values(), slices),
                                                                      eps())


# -- the conntrack command --------------------------------------------------------------------------

def fake_conntrack(tmp_path: Path, *, exit_code: int, stderr: str) -> Conntrack:
    """A `conntrack` that records its arguments and answers like the real one."""
    script = tmp_path / "conntrack"
    script.write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path}/calls\necho '{stderr}' >&2\nexit {exit_code}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return Conntrack(binary=str(script))


async def test_conntrack_reports_how_many_entries_it_deleted(tmp_path: Path) -> None:
    ct = fake_conntrack(tmp_path, exit_code=0, stderr="conntrack v1.4.7 (conntrack-tools): 3 flow entries have "
                                                      "been deleted.")
    assert await ct.delete(via(CIP, A)) == 3
    assert (tmp_path / "calls").read_text().split() == list(via(CIP, A).args)


async def test_nothing_to_delete_is_no_error(tmp_path: Path) -> None:
    ct = fake_conntrack(tmp_path, exit_code=1, stderr="conntrack v1.4.7 (conntrack-tools): 0 flow entries have "
                                                      "been deleted.")
    assert await ct.delete(every(NP)) == 0


async def test_a_real_failure_is_an_error(tmp_path: Path) -> None:
    ct = fake_conntrack(tmp_path, exit_code=1, stderr="conntrack v1.4.7 (conntrack-tools): Operation failed: "
                                                      "invalid parameters")
    with pytest.raises(ConntrackError, match="invalid parameters"):
        await ct.delete(every(NP))


async def test_a_missing_conntrack_is_told_apart(tmp_path: Path) -> None:
    with pytest.raises(ConntrackMissing, match="apt-get install conntrack"):
        await Conntrack(binary=str(tmp_path / "nowhere" / "conntrack")).delete(every(NP))


def test_conntrack_runs_in_the_proxy_namespace() -> None:
    assert Conntrack("kl-node").argv("-D", "-p", "udp") == ["ip", "netns", "exec", "kl-node", "conntrack", "-D",
                                                            "-p", "udp"]
    assert Conntrack().argv("-L") == ["conntrack", "-L"]


# -- the cleaner ------------------------------------------------------------------------------------

class BlockingRunner:
    """Deletes one entry per filter once `go` is set; records how many ran at once."""

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.running = 0
        self.most = 0
        self.calls: list[StaleFlows] = []

    async def delete(self, flows: StaleFlows) -> int:
        self.calls.append(flows)
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await self.go.wait()
        finally:
            self.running -= 1
        return 1


async def test_cleaner_runs_a_few_at_a_time_and_deduplicates_what_waits() -> None:
    runner = BlockingRunner()
    cleaner = ConntrackCleaner(runner, limit=3)
    flows = [every(("UDP", "10.43.0.5", port)) for port in range(1, 11)]
    cleaner.clear(flows)
    await asyncio.sleep(0)
    cleaner.clear(flows[5:])  # still waiting: not queued twice
    waiting = asyncio.create_task(cleaner.wait_idle())
    await asyncio.sleep(0.01)
    assert runner.running == 3 and not waiting.done()
    runner.go.set()
    await asyncio.wait_for(waiting, 5)
    assert runner.most == 3 and sorted(runner.calls) == flows and cleaner.deleted == 10


async def test_cleaner_logs_failures_and_carries_on(caplog: pytest.LogCaptureFixture) -> None:
    class Failing:
        async def delete(self, flows: StaleFlows) -> int:
            if flows.port == 2:
                raise ConntrackError("Operation failed: such and such")
            return 2

    cleaner = ConntrackCleaner(Failing())
    cleaner.clear([every(("UDP", "10.43.0.5", p)) for p in (1, 2, 3)])
    await asyncio.wait_for(cleaner.wait_idle(), 5)
    assert (cleaner.deleted, cleaner.failed) == (4, 1)
    assert "UDP 10.43.0.5:2" in caplog.text and "such and such" in caplog.text


async def test_without_conntrack_one_warning_and_nothing_else(caplog: pytest.LogCaptureFixture) -> None:
    class Missing:
        calls = 0

        async def delete(self, flows: StaleFlows) -> int:
            self.calls += 1
            raise ConntrackMissing("conntrack not found (apt-get install conntrack)")

    runner = Missing()
    cleaner = ConntrackCleaner(runner, limit=1)
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            cleaner.clear([every(("UDP", "10.43.0.5", p)) for p in (1, 2, 3)])
            await asyncio.wait_for(cleaner.wait_idle(), 5)
    warnings = [r for r in caplog.records if "apt-get install conntrack" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert runner.calls == 2  # the rest of each batch is dropped, not tried one by one
    assert cleaner.failed == 0


async def test_close_drops_what_is_queued() -> None:
    runner = BlockingRunner()
    cleaner = ConntrackCleaner(runner, limit=1)
    cleaner.clear([every(("UDP", "10.43.0.5", p)) for p in (1, 2, 3)])
    await asyncio.sleep(0.01)
    await cleaner.close()
    await asyncio.wait_for(cleaner.wait_idle(), 5)
    assert len(runner.calls) == 1 and cleaner.deleted == 0

