"""The `kubeling explain pod` table."""

from __future__ import annotations

from kubeling.scheduler.explain import format_explanation

from .factories import node, pod, schedule


def test_explanation_lists_verdicts_scores_and_choice() -> None:
    nodes = [node("a"), node("b", cpu="1"), node("c", taints=[{"key": "dedicated", "value": "gpu",
                                                                   "effect": "NoSchedule"}]), node("d", cpu="8")]
    r = schedule(pod("web", cpu="2", memory="1Gi"), nodes)
    text = format_explanation(r)
    lines = text.splitlines()
    assert lines[0] == "Pod default/web: scheduled to d (2/4 nodes feasible)"
    assert "Score weights: NodeResourcesFit×1, NodeResourcesBalancedAllocation×1" in text
    row_d = next(line for line in lines if line.startswith("*"))
    assert row_d.split()[1:] == ["d", "81", "93", "174", "fits"]
    assert any(line.split()[:1] == ["b"] and line.endswith("rejected by NodeResourcesFit: Insufficient cpu")
               for line in lines)
    assert any(line.endswith("rejected by TaintToleration: node(s) had untolerated taint {dedicated: gpu}")
               for line in lines)


def test_explanation_of_unschedulable_pod_and_row_limit() -> None:
    r = schedule(pod("big", cpu="64"), [node(f"n{i}") for i in range(5)])
    text = format_explanation(r, max_nodes=2)
    assert "Pod default/big: unschedulable" in text
    assert "0/5 nodes are available: 5 Insufficient cpu." in text
    assert text.rstrip().endswith("... and 3 more node(s)")
