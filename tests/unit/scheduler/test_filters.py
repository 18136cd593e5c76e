"""Filter verdicts and the exact reason texts of each plugin (Kubernetes 1.33 wording)."""

from __future__ import annotations

from typing import Any

import pytest

from kubeling.scheduler.framework import Code

from .factories import node, pod, schedule

GPU_TAINT = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}


def _affinity(*terms: dict[str, Any]) -> dict[str, Any]:
    return {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": list(terms)}}}}


def _expr(key: str, op: str, *values: str) -> dict[str, Any]:
    return {"matchExpressions": [{"key": key, "operator": op, "values": list(values)}]}


CASES = [
    # (id, pod, node, expected plugin or None, expected reason, code)
    ("unschedulable-node", pod("p"), node("n", unschedulable=True), "NodeUnschedulable", "node(s) were unschedulable",
     Code.UNSCHEDULABLE_AND_UNRESOLVABLE),
    ("unschedulable-tolerated",
     pod("p", spec={"tolerations": [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists",
                                     "effect": "NoSchedule"}]}),
     node("n", unschedulable=True), None, "", None),
    ("node-name-mismatch", pod("p", spec={"nodeName": "other"}), node("n"), "NodeName",
     "node(s) didn't match the requested node name", Code.UNSCHEDULABLE_AND_UNRESOLVABLE),
    ("node-selector-mismatch", pod("p", spec={"nodeSelector": {"disk": "ssd"}}), node("n", labels={"disk": "hdd"}),
     "NodeAffinity", "node(s) didn't match Pod's node affinity/selector", Code.UNSCHEDULABLE_AND_UNRESOLVABLE),
    ("node-selector-match", pod("p", spec={"nodeSelector": {"disk": "ssd"}}), node("n", labels={"disk": "ssd"}),
     None, "", None),
    ("affinity-in", pod("p", spec=_affinity(_expr("zone", "In", "a", "b"))), node("n", labels={"zone": "b"}),
     None, "", None),
    ("affinity-notin", pod("p", spec=_affinity(_expr("zone", "NotIn", "b"))), node("n", labels={"zone": "b"}),
     "NodeAffinity", "node(s) didn't match Pod's node affinity/selector", Code.UNSCHEDULABLE_AND_UNRESOLVABLE),
    ("affinity-exists", pod("p", spec=_affinity(_expr("gpu", "Exists"))), node("n", labels={"gpu": ""}), None, "", None),
    ("affinity-doesnotexist", pod("p", spec=_affinity(_expr("gpu", "DoesNotExist"))), node("n", labels={"gpu": "x"}),
     "NodeAffinity", "node(s) didn't match Pod's node affinity/selector", Code.UNSCHEDULABLE_AND_UNRESOLVABLE),
    ("affinity-gt", pod("p", spec=_affinity(_expr("cores", "Gt", "8"))), node("n", labels={"cores": "16"}),
     None, "", None),
    ("affinity-lt-fails", pod("p", spec=_affinity(_expr("cores", "Lt", "8"))), node("n", labels={"cores": "16"}),
     "NodeAffinity", "node(s) didn't match Pod's node affinity/selector", Code.UNSCHEDULABLE_AND_UNRESOLVABLE),
    ("affinity-terms-ored", pod("p", spec=_affinity(_expr("zone", "In", "x"), _expr("zone", "In", "b"))),
     node("n", labels={"zone": "b"}), None, "", None),
    ("affinity-match-fields",
     pod("p", spec=_affinity({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["other"]}]})),
     node("n"), "NodeAffinity", "node(s) didn't match Pod's node affinity/selector",
     Code.UNSCHEDULABLE_AND_UNRESOLVABLE),
    ("taint-untolerated", pod("p"), node("n", taints=[GPU_TAINT]), "TaintToleration",
     "node(s) had untolerated taint {dedicated: gpu}", Code.UNSCHEDULABLE_AND_UNRESOLVABLE),
    ("taint-tolerated-equal",
     pod("p", spec={"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}]}),
     node("n", taints=[GPU_TAINT]), None, "", None),
    ("taint-tolerated-exists-any", pod("p", spec={"tolerations": [{"operator": "Exists"}]}),
     node("n", taints=[GPU_TAINT]), None, "", None),
    ("taint-wrong-value",
     pod("p", spec={"tolerations": [{"key": "dedicated", "value": "cpu", "effect": "NoSchedule"}]}),
     node("n", taints=[GPU_TAINT]), "TaintToleration", "node(s) had untolerated taint {dedicated: gpu}",
     Code.UNSCHEDULABLE_AND_UNRESOLVABLE),
    ("taint-noexecute-no-value", pod("p"), node("n", taints=[{"key": "maint", "effect": "NoExecute"}]),
     "TaintToleration", "node(s) had untolerated taint {maint: }", Code.UNSCHEDULABLE_AND_UNRESOLVABLE),
    ("taint-prefer-does-not-filter", pod("p"), node("n", taints=[{**GPU_TAINT, "effect": "PreferNoSchedule"}]),
     None, "", None),
    ("insufficient-cpu", pod("p", cpu="5"), node("n", cpu="4"), "NodeResourcesFit", "Insufficient cpu",
     Code.UNSCHEDULABLE),
    ("insufficient-memory", pod("p", memory="9Gi"), node("n", memory="8Gi"), "NodeResourcesFit",
     "Insufficient memory", Code.UNSCHEDULABLE),
    ("insufficient-ephemeral", pod("p", requests={"ephemeral-storage": "200Gi"}), node("n"), "NodeResourcesFit",
     "Insufficient ephemeral-storage", Code.UNSCHEDULABLE),
    ("insufficient-extended", pod("p", requests={"nvidia.com/gpu": "2"}), node("n", extra={"nvidia.com/gpu": "1"}),
     "NodeResourcesFit", "Insufficient nvidia.com/gpu", Code.UNSCHEDULABLE),
    ("extended-fits", pod("p", requests={"nvidia.com/gpu": "1"}), node("n", extra={"nvidia.com/gpu": "1"}),
     None, "", None),
    ("too-many-pods", pod("p"), node("n", pods="0"), "NodeResourcesFit", "Too many pods", Code.UNSCHEDULABLE),
    ("host-port-conflict",
     pod("p", spec={"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080}]}]}),
     node("n"), "NodePorts", "node(s) didn't have free ports for the requested pod ports", Code.UNSCHEDULABLE),
]


@pytest.mark.parametrize(("p", "n", "plugin", "reason", "code"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_single_node_filter(p: dict, n: dict, plugin: str | None, reason: str, code: Code | None) -> None:
    existing = []
    if plugin == "NodePorts":
        existing = [pod("web", node_name="n", spec={"containers": [
            {"name": "c", "ports": [{"containerPort": 80, "hostPort": 8080}]}]})]
    for memo in (True, False):
        r = schedule(p, [n], existing, memo=memo)
        if plugin is None:
            assert r.selected_node == "n", r.filter_statuses
            continue
        assert r.selected_node is None
        st = r.filter_statuses["n"]
        assert (st.plugin, st.reasons, st.code) == (plugin, [reason], code)


def test_all_insufficient_resources_reported() -> None:
    r = schedule(pod("p", cpu="5", memory="9Gi"), [node("n", cpu="4", memory="8Gi", pods="1")],
                 [pod("x", node_name="n")])
    assert r.filter_statuses["n"].reasons == ["Too many pods", "Insufficient cpu", "Insufficient memory"]


def test_requests_of_existing_pods_count() -> None:
    existing = [pod("a", cpu="3", node_name="n1"), pod("done", cpu="3", node_name="n2")]
    existing[1]["status"]["phase"] = "Succeeded"  # terminal pods free their resources
    r = schedule(pod("p", cpu="2"), [node("n1"), node("n2")], existing)
    assert r.selected_node == "n2"
    assert r.filter_statuses["n1"].reasons == ["Insufficient cpu"]


def test_host_ports_on_different_ips_do_not_conflict() -> None:
    def ports(ip: str) -> dict:
        return {"containers": [{"name": "c", "ports": [{"containerPort": 80, "hostPort": 80, "hostIP": ip}]}]}
    existing = [pod("a", node_name="n", spec=ports("10.0.0.1"))]
    assert schedule(pod("p", spec=ports("10.0.0.2")), [node("n")], existing).selected_node == "n"
    assert schedule(pod("p", spec=ports("0.0.0.0")), [node("n")], existing).selected_node is None


def test_zero_request_pod_fits_overcommitted_node() -> None:
    existing = [pod("static", cpu="6", node_name="n")]  # e.g. a static pod admitted beyond allocatable
    for memo in (True, False):
        assert schedule(pod("p"), [node("n", cpu="4")], existing, memo=memo).selected_node == "n"
