"""PodTopologySpread and InterPodAffinity: filters, messages and placement over many pods."""

from __future__ import annotations

from collections import Counter

import pytest

from kubeling.scheduler.snapshot import Snapshot

from .factories import node, place_all, pod, schedule

ZONE = "topology.kubernetes.io/zone"


def _zoned(n: int = 6, zones: int = 3) -> list[dict]:
    return [node(f"n{i}", labels={ZONE: f"z{i % zones}"}) for i in range(n)]


def _spread(max_skew: int = 1, when: str = "DoNotSchedule", key: str = ZONE, **extra: object) -> dict:
    return {"topologySpreadConstraints": [{"maxSkew": max_skew, "topologyKey": key, "whenUnsatisfiable": when,
                                           "labelSelector": {"matchLabels": {"app": "web"}}, **extra}]}


def _web(name: str, spec: dict | None = None, **kw: object) -> dict:
    return pod(name, labels={"app": "web"}, spec=spec, cpu="100m", **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("when", ["DoNotSchedule", "ScheduleAnyway"])
def test_spread_across_zones_max_skew_1(when: str) -> None:
    # MostAllocated would pack everything on one node without the constraint.
    from kubeling.scheduler.profile import parse_config
    prof = parse_config({"profiles": [{"pluginConfig": [
        {"name": "NodeResourcesFit", "args": {"scoringStrategy": {"type": "MostAllocated"}}}]}]})["default-scheduler"]
    snap = Snapshot.build(_zoned(), [])
    placed = place_all([_web(f"w{i}", _spread(when=when)) for i in range(9)], snap, prof)
    zones = Counter(f"z{int(n[1:]) % 3}" for n in placed if n)
    assert zones == {"z0": 3, "z1": 3, "z2": 3}


def test_spread_filter_messages() -> None:
    existing = [_web("a", node_name="n0"), _web("b", node_name="n3")]  # both in z0
    nodes = _zoned() + [node("nolabel")]
    r = schedule(_web("p", _spread()), nodes, existing)
    assert r.filter_statuses["n0"].reasons == ["node(s) didn't match pod topology spread constraints"]
    assert r.filter_statuses["nolabel"].reasons == [
        "node(s) didn't match pod topology spread constraints (missing required label)"]
    assert r.selected_node not in ("n0", "n3")


def test_spread_min_domains_keeps_global_minimum_at_zero() -> None:
    existing = [_web("a", node_name="n0"), _web("b", node_name="n1")]
    nodes = _zoned(2, 2)  # two domains, each with one pod
    assert schedule(_web("p", _spread()), nodes, existing).selected_node is not None
    r = schedule(_web("p", _spread(minDomains=3)), nodes, existing)
    assert r.selected_node is None  # 1 + 1 - 0 > 1 everywhere


def test_spread_honors_node_affinity_by_default() -> None:
    # z2 is excluded by the nodeSelector, so its emptiness does not pin the minimum at 0.
    existing = [_web("a", node_name="n0"), _web("b", node_name="n1")]
    spec = {**_spread(), "nodeSelector": {"pool": "main"}}
    nodes = [node("n0", labels={ZONE: "z0", "pool": "main"}), node("n1", labels={ZONE: "z1", "pool": "main"}),
             node("n2", labels={ZONE: "z2"})]
    assert schedule(_web("p", spec), nodes, existing).selected_node in ("n0", "n1")
    spec_ignore = {**_spread(nodeAffinityPolicy="Ignore"), "nodeSelector": {"pool": "main"}}
    assert schedule(_web("p", spec_ignore), nodes, existing).selected_node is None


def _anti(key: str = "kubernetes.io/hostname", required: bool = True) -> dict:
    term = {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": key}
    if required:
        return {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}}
    return {"affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 100, "podAffinityTerm": term}]}}}


def test_anti_affinity_one_per_node() -> None:
    snap = Snapshot.build([node(f"n{i}") for i in range(4)], [])
    placed = place_all([_web(f"w{i}", _anti()) for i in range(5)], snap)
    assert sorted(n for n in placed if n) == ["n0", "n1", "n2", "n3"]
    assert placed[-1] is None


def test_anti_affinity_messages() -> None:
    existing = [_web("a", _anti(), node_name="n0"), pod("other", labels={"app": "db"}, node_name="n1")]
    # The incoming pod carries app=web: n0's pod rejects it by its own anti-affinity.
    r = schedule(_web("p"), [node("n0"), node("n1")], existing)
    assert r.filter_statuses["n0"].reasons == ["node(s) didn't satisfy existing pods anti-affinity rules"]
    # A pod whose anti-affinity selects app=db avoids n1.
    spec = {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"}]}}}
    r = schedule(pod("q", spec=spec), [node("n0"), node("n1")], existing)
    assert r.filter_statuses["n1"].reasons == ["node(s) didn't match pod anti-affinity rules"]
    assert r.selected_node == "n0"


def _affinity_to(app: str, key: str = ZONE) -> dict:
    return {"affinity": {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key}]}}}


def test_affinity_co_locates_in_zone() -> None:
    existing = [pod("cache", labels={"app": "cache"}, node_name="n4")]  # zone z1
    r = schedule(pod("p", spec=_affinity_to("cache")), _zoned(), existing)
    assert r.selected_node in ("n1", "n4")
    assert r.filter_statuses["n0"].reasons == ["node(s) didn't match pod affinity rules"]


def test_affinity_without_matching_pods() -> None:
    r = schedule(pod("p", spec=_affinity_to("cache")), _zoned())
    assert r.selected_node is None
    assert r.message == "0/6 nodes are available: 6 node(s) didn't match pod affinity rules. " \
        "preemption: 0/6 nodes are available: 6 Preemption is not helpful for scheduling.."
    # ... unless the pod matches its own term: the first of a group may go anywhere.
    r = schedule(pod("p", labels={"app": "cache"}, spec=_affinity_to("cache")), _zoned())
    assert r.selected_node is not None


def test_self_affine_group_co_locates() -> None:
    snap = Snapshot.build(_zoned(), [])
    pods = [pod(f"c{i}", labels={"app": "cache"}, cpu="100m", spec=_affinity_to("cache")) for i in range(6)]
    placed = place_all(pods, snap)
    assert len({int(n[1:]) % 3 for n in placed if n}) == 1


def test_preferred_anti_affinity_spreads() -> None:
    snap = Snapshot.build([node(f"n{i}", cpu="64", memory="256Gi") for i in range(3)], [])
    from kubeling.scheduler.profile import parse_config
    prof = parse_config({"profiles": [{"pluginConfig": [
        {"name": "NodeResourcesFit", "args": {"scoringStrategy": {"type": "MostAllocated"}}}]}]})["default-scheduler"]
    placed = place_all([_web(f"w{i}", _anti(required=False)) for i in range(3)], snap, prof)
    assert sorted(placed) == ["n0", "n1", "n2"]  # type: ignore[type-var]
