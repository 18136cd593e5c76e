"""The algorithm end to end: FitError messages, preemption, PreFilter/Skip behaviour, assume."""

from __future__ import annotations

import pytest

from kubeling.scheduler.core import schedule_one
from kubeling.scheduler.snapshot import Snapshot

from .factories import default_profile, node, pod, schedule

GPU_TAINT = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}


def test_fit_error_message_format() -> None:
    nodes = [node(f"small{i}", cpu="1") for i in range(3)] + [node(f"gpu{i}", taints=[GPU_TAINT]) for i in range(2)]
    r = schedule(pod("p", cpu="2"), nodes)
    # Reasons are "<count> <reason>" sorted as strings (Go's sort.Strings), so "2 node(s)..." comes first;
    # the preemption suffix ends with ".." because the inner FitError already ends with a period.
    assert r.message == (
        "0/5 nodes are available: 2 node(s) had untolerated taint {dedicated: gpu}, 3 Insufficient cpu. "
        "preemption: 0/5 nodes are available: 2 Preemption is not helpful for scheduling, "
        "3 No preemption victims found for incoming pod.."
    )


def test_fit_error_counts_every_reason_of_a_node() -> None:
    r = schedule(pod("p", cpu="8", memory="64Gi"), [node("a"), node("b")])
    assert r.message.startswith("0/2 nodes are available: 2 Insufficient cpu, 2 Insufficient memory. ")


def test_no_nodes() -> None:
    r = schedule(pod("p"), [])
    assert (r.selected_node, r.message) == (None, "no nodes available to schedule pods")


def test_preemption_picks_lowest_priority_victims_on_one_node() -> None:
    nodes = [node("a", cpu="2"), node("b", cpu="2")]
    existing = [
        pod("a-low", cpu="1", priority=1, node_name="a"), pod("a-mid", cpu="1", priority=5, node_name="a"),
        pod("b-mid1", cpu="1", priority=5, node_name="b"), pod("b-mid2", cpu="1", priority=5, node_name="b"),
    ]
    r = schedule(pod("vip", cpu="1", priority=10), nodes, existing)
    assert r.selected_node is None
    assert r.nominated_node == "a"
    assert [v.key for v in r.victims] == ["default/a-low"]
    assert r.message == "0/2 nodes are available: 2 Insufficient cpu."


def test_preemption_evicts_only_what_is_needed() -> None:
    existing = [pod(f"low{i}", cpu="1", priority=i, node_name="a") for i in range(4)]
    r = schedule(pod("vip", cpu="2", priority=100), [node("a", cpu="4")], existing)
    assert r.nominated_node == "a"
    assert sorted(v.key for v in r.victims) == ["default/low0", "default/low1"]


@pytest.mark.parametrize(("preemptor", "message_tail"), [
    (pod("same", cpu="1", priority=5), "preemption: 0/1 nodes are available: 1 No preemption victims found for "
                                       "incoming pod.."),
    (pod("never", cpu="1", priority=10, spec={"preemptionPolicy": "Never"}),
     "preemption: not eligible due to preemptionPolicy=Never.."),
    (pod("huge", cpu="8", priority=10), "preemption: 0/1 nodes are available: 1 Insufficient cpu.."),
], ids=["equal-priority-not-a-victim", "policy-never", "does-not-fit-even-empty"])
def test_no_preemption(preemptor: dict, message_tail: str) -> None:
    existing = [pod("x", cpu="2", priority=5, node_name="a")]
    r = schedule(preemptor, [node("a", cpu="2")], existing)
    assert r.nominated_node is None and r.victims == []
    assert r.message.endswith(message_tail), r.message


def test_preemption_ignores_unresolvable_nodes() -> None:
    existing = [pod("x", cpu="2", priority=0, node_name="t")]
    r = schedule(pod("vip", cpu="1", priority=10), [node("t", cpu="2", taints=[GPU_TAINT])], existing)
    assert r.nominated_node is None
    assert "1 Preemption is not helpful for scheduling" in r.message


def test_preemption_with_anti_affinity_victim() -> None:
    term = {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}
    spec = {"affinity": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}}
    existing = [pod("old", labels={"app": "web"}, priority=0, node_name="a")]
    r = schedule(pod("new", labels={"app": "web"}, priority=10, spec=spec), [node("a")], existing)
    assert r.filter_statuses["a"].reasons == ["node(s) didn't match pod anti-affinity rules"]
    assert r.nominated_node == "a" and [v.key for v in r.victims] == ["default/old"]


def test_assume_and_forget_account_resources() -> None:
    snap = Snapshot.build([node("a", cpu="1")], [])
    prof = default_profile()
    p = pod("p", cpu="600m")
    assert schedule_one(p, snap, prof).selected_node == "a"
    snap.assume(p, "a")
    assert snap.get("a").req_cpu == 600  # type: ignore[union-attr]
    assert p["spec"].get("nodeName") is None  # the wire object is not mutated
    assert schedule_one(pod("q", cpu="600m"), snap, prof).selected_node is None
    snap.forget("default/p")
    assert schedule_one(pod("q", cpu="600m"), snap, prof).selected_node == "a"


def test_single_feasible_node_skips_scoring() -> None:
    r = schedule(pod("p", cpu="3"), [node("a"), node("b", cpu="1")])
    assert r.selected_node == "a" and r.scores == {}


def test_pods_without_node_or_on_unknown_nodes_are_ignored() -> None:
    existing = [pod("pending", cpu="4"), pod("ghost", cpu="4", node_name="gone")]
    assert schedule(pod("p", cpu="4"), [node("a")], existing).selected_node == "a"


@pytest.mark.parametrize(("percentage", "nodes", "want"), [
    (100, 5000, 5000), (0, 5000, 500), (0, 50, 50), (0, 100000, 5000), (10, 500, 100), (30, 1000, 300),
], ids=["all", "adaptive-5000", "small-cluster", "adaptive-floor-5pct", "min-100", "explicit"])
def test_num_feasible_nodes_to_find(percentage: int, nodes: int, want: int) -> None:
    from kubeling.scheduler.core import num_feasible_nodes_to_find
    assert num_feasible_nodes_to_find(percentage, nodes) == want


def test_percentage_of_nodes_to_score_samples_round_robin() -> None:
    from kubeling.scheduler.profile import parse_config
    prof = parse_config({"percentageOfNodesToScore": 10})["default-scheduler"]
    # memo=False: the equivalence cache always looks at every node (it is cheap enough to).
    snap = Snapshot.build([node(f"n{i:03d}") for i in range(300)], [])
    r = schedule_one(pod("a"), snap, prof, memo=False)
    assert len(r.feasible) == 100 and prof.next_start_index == 100
    r = schedule_one(pod("b"), snap, prof, memo=False)
    assert r.feasible[0].name == "n100"
    # an unschedulable pod still evaluates every node for its FitError
    r = schedule_one(pod("c", cpu="64"), snap, prof, memo=False)
    assert r.message.startswith("0/300 nodes are available: 300 Insufficient cpu.")


def test_snapshot_follows_node_and_pod_updates() -> None:
    snap = Snapshot.build([node("b")], [])
    prof = default_profile()
    for p in (pod("x1", cpu="100m"), pod("x2", cpu="100m")):  # warm the equivalence cache
        snap.assume(p, schedule_one(p, snap, prof).selected_node or "")
    snap.update_node(node("a", cpu="16"))
    assert [n.name for n in snap.node_list] == ["a", "b"]
    assert schedule_one(pod("p", cpu="100m"), snap, prof).selected_node == "a"
    snap.update_node(node("a", cpu="16", taints=[GPU_TAINT]))
    assert snap.has_hard_taints
    assert schedule_one(pod("p", cpu="100m"), snap, prof).selected_node == "b"
    assert snap.add_pod(pod("bound", cpu="3", node_name="b")) is not None
    assert snap.get("b").req_cpu == 3200  # type: ignore[union-attr]
    done = pod("bound", cpu="3", node_name="b")
    done["status"]["phase"] = "Succeeded"
    assert snap.add_pod(done) is None and snap.get("b").req_cpu == 200  # type: ignore[union-attr]
    snap.remove_node("b")
    assert schedule_one(pod("p", cpu="100m"), snap, prof).message.startswith("0/1 nodes are available: 1 node(s) had")
