"""Scoring: strategies, weights, preferred affinity and taints, and memoized vs full path."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from kubeling.scheduler.core import schedule_one
from kubeling.scheduler.profile import parse_config
from kubeling.scheduler.snapshot import Snapshot

from .factories import default_profile, node, place_all, pod, schedule


def _fit_profile(strategy: dict) -> object:
    cfg = {"profiles": [{"schedulerName": "s", "pluginConfig": [
        {"name": "NodeResourcesFit", "args": {"scoringStrategy": strategy}}]}]}
    return parse_config(cfg)["s"]


@pytest.mark.parametrize("memo", [True, False], ids=["memo", "full"])
def test_least_allocated_spreads_evenly(memo: bool) -> None:
    snap = Snapshot.build([node(f"n{i}") for i in range(5)], [])
    placed = place_all([pod(f"p{i}", cpu="100m", memory="100Mi") for i in range(10)], snap, memo=memo)
    assert Counter(placed) == {f"n{i}": 2 for i in range(5)}


@pytest.mark.parametrize("memo", [True, False], ids=["memo", "full"])
def test_most_allocated_packs(memo: bool) -> None:
    prof = _fit_profile({"type": "MostAllocated"})
    snap = Snapshot.build([node(f"n{i}", cpu="1", memory="1Gi") for i in range(5)], [])
    placed = place_all([pod(f"p{i}", cpu="250m", memory="256Mi") for i in range(8)], snap, prof, memo=memo)
    assert len(set(placed)) == 2
    assert sorted(Counter(placed).values()) == [4, 4]


def test_requested_to_capacity_ratio_shape() -> None:
    # Score rises with utilization: behaves like bin-packing.
    prof = _fit_profile({"type": "RequestedToCapacityRatio", "resources": [{"name": "cpu", "weight": 1}],
                         "requestedToCapacityRatio": {"shape": [{"utilization": 0, "score": 0},
                                                                {"utilization": 100, "score": 10}]}})
    r = schedule(pod("p", cpu="1"), [node("a"), node("b")], [pod("x", cpu="2", node_name="b")], profile=prof)
    assert r.selected_node == "b"
    assert r.node_scores("a")["NodeResourcesFit"] == 25
    assert r.node_scores("b")["NodeResourcesFit"] == 75


def test_least_allocated_score_values_and_non_zero_defaults() -> None:
    r = schedule(pod("p"), [node("a", cpu="1", memory="1000Mi"), node("b", cpu="2", memory="2000Mi")])
    # best-effort pod: scored as 100m / 200Mi; BalancedAllocation skips best-effort pods
    assert r.node_scores("a")["NodeResourcesFit"] == (90 + 80) // 2
    assert r.node_scores("b")["NodeResourcesFit"] == (95 + 90) // 2
    assert "NodeResourcesBalancedAllocation" in r.skipped_score_plugins
    assert r.selected_node == "b"


def test_balanced_allocation_prefers_even_use() -> None:
    nodes = [node("cpu-heavy", cpu="4", memory="8Gi"), node("even", cpu="4", memory="8Gi")]
    existing = [pod("x", cpu="3", memory="1Gi", node_name="cpu-heavy"), pod("y", cpu="1", memory="2Gi", node_name="even")]
    r = schedule(pod("p", cpu="500m", memory="1Gi"), nodes, existing)
    assert r.node_scores("even")["NodeResourcesBalancedAllocation"] > r.node_scores("cpu-heavy")[
        "NodeResourcesBalancedAllocation"]


def test_preferred_node_affinity_by_weight() -> None:
    spec = {"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 20, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}},
        {"weight": 80, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["b"]}]}},
    ]}}}
    nodes = [node("ssd", labels={"disk": "ssd"}), node("zone-b", labels={"zone": "b"}), node("plain")]
    r = schedule(pod("p", spec=spec), nodes)
    assert r.selected_node == "zone-b"
    assert [r.node_scores(n)["NodeAffinity"] for n in ("ssd", "zone-b", "plain")] == [25, 100, 0]


def test_prefer_no_schedule_taints_score_lower() -> None:
    soft = {"key": "spot", "value": "true", "effect": "PreferNoSchedule"}
    nodes = [node("spot", taints=[soft]), node("plain")]
    r = schedule(pod("p"), nodes)
    assert r.selected_node == "plain"
    assert (r.node_scores("spot")["TaintToleration"], r.node_scores("plain")["TaintToleration"]) == (0, 100)
    tolerating = pod("t", spec={"tolerations": [{"key": "spot", "operator": "Exists", "effect": "PreferNoSchedule"}]})
    r = schedule(tolerating, nodes)
    assert r.node_scores("spot")["TaintToleration"] == 100


def test_weights_apply_to_totals() -> None:
    soft = {"key": "spot", "value": "true", "effect": "PreferNoSchedule"}
    r = schedule(pod("p", cpu="1"), [node("spot", taints=[soft]), node("plain")])
    assert r.weights["TaintToleration"] == 3
    s = r.node_scores("plain")
    assert r.total("plain") == 3 * s["TaintToleration"] + s["NodeResourcesFit"] + s["NodeResourcesBalancedAllocation"]


def test_tie_break_is_seeded() -> None:
    nodes = [node(f"n{i}") for i in range(10)]
    snap = Snapshot.build(nodes, [])
    picks = {schedule_one(pod("p", cpu="1"), snap, default_profile(), seed=s).selected_node for s in range(30)}
    assert len(picks) > 1
    again = {schedule_one(pod("p", cpu="1"), snap, default_profile(), seed=3).selected_node for _ in range(5)}
    assert len(again) == 1


def test_memoized_and_full_paths_agree() -> None:
    rng = random.Random(42)
    nodes = [node(f"n{i:02d}", cpu=str(rng.choice([2, 4, 8])), memory=f"{rng.choice([4, 8, 16])}Gi",
                  taints=[{"key": "t", "effect": "NoSchedule"}] if i % 7 == 0 else None) for i in range(30)]
    shapes = [("100m", "128Mi"), ("500m", "1Gi"), ("1", "2Gi"), (None, None)]
    pods = []
    for i in range(120):
        cpu, mem = rng.choice(shapes)
        pods.append(pod(f"p{i}", cpu=cpu, memory=mem))
    a, b = Snapshot.build(nodes, []), Snapshot.build(nodes, [])
    prof = default_profile()
    for p in pods:
        ra, rb = schedule_one(p, a, prof, seed=5), schedule_one(p, b, prof, seed=5, memo=False)
        assert ra.selected_node == rb.selected_node
        assert ra.totals == rb.totals and ra.scores == rb.scores
        assert {k: v.reasons for k, v in ra.filter_statuses.items()} == {
            k: v.reasons for k, v in rb.filter_statuses.items()}
        if ra.selected_node:
            a.assume(p, ra.selected_node)
            b.assume(p, rb.selected_node)
        # forgetting a pod must invalidate memoized verdicts too
        if p["metadata"]["name"] == "p60":
            for q in pods[:30]:
                a.forget(f"default/{q['metadata']['name']}")
                b.forget(f"default/{q['metadata']['name']}")
