"""The scheduler end to end: a real `kubeling server`, 5 simulated nodes (4 CPU / 8Gi), the real kubectl.

The server runs with a KubeSchedulerConfiguration holding two profiles, the default
(LeastAllocated: spread) and `bin-packing` (MostAllocated), so one cluster shows both.
Each test works in its own namespace and force-deletes its pods at the end so the next
one starts from empty nodes.
"""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import Kubectl, Server, make_kubectl

pytestmark = pytest.mark.e2e

NODES = [f"sim-{i}" for i in range(5)]
ZONES = {"sim-0": "zone-a", "sim-1": "zone-a", "sim-2": "zone-b", "sim-3": "zone-b", "sim-4": "zone-c"}
SCHEDULER_CONFIG = """\
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- schedulerName: default-scheduler
- schedulerName: bin-packing
  pluginConfig:
  - name: NodeResourcesFit
    args: {scoringStrategy: {type: MostAllocated}}
"""


class ConfiguredServer(Server):
    """`kubeling server --scheduler-config F`: the shared fixture's Server with one more flag."""

    def __init__(self, data_dir: Path, scheduler_config: Path) -> None:
        super().__init__(data_dir, extra_args=["--scheduler-config", str(scheduler_config)])
        self.scheduler_config = scheduler_config


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConfiguredServer]:
    tmp = tmp_path_factory.mktemp("sched")
    config = tmp / "scheduler.yaml"
    config.write_text(SCHEDULER_CONFIG)
    srv = ConfiguredServer(tmp / "data", config)
    srv.start()
    sim: subprocess.Popen[str] | None = None
    try:
        sim = subprocess.Popen([sys.executable, "-m", "kubeling", "simulate", "--kubeconfig", str(srv.kubeconfig),
                                "--nodes", "5", "--cpu", "4", "--memory", "8Gi", "--name-prefix", "sim"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        assert sim.stdout is not None
        line = sim.stdout.readline()
        assert "registered" in line, line
        yield srv
    finally:
        if sim is not None:
            sim.terminate()
            try:
                sim.wait(10)
            except subprocess.TimeoutExpired:
                sim.kill()
                sim.wait()
            if sim.stdout:
                sim.stdout.close()
        srv.stop()


@pytest.fixture(scope="module")
def kubectl(cluster: ConfiguredServer, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    k = make_kubectl(cluster, None, tmp_path_factory.mktemp("kubectl"))
    for node, zone in ZONES.items():
        k("label", "node", node, f"topology.kubernetes.io/zone={zone}", "--overwrite")
    return k


@pytest.fixture
def ns(kubectl: Kubectl, request: pytest.FixtureRequest) -> Iterator[str]:
    name = request.node.name.replace("_", "-").lower()[:40]
    kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        kubectl("delete", "pods", "--all", "-n", name, "--grace-period=0", "--force", "--wait=true")


def pod(name: str, *, cpu: str = "500m", memory: str = "1Gi", labels: dict[str, str] | None = None,
        **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels or {}},
            "spec": {"containers": [{"name": "c", "image": "busybox",
                                     "resources": {"requests": {"cpu": cpu, "memory": memory}}}], **spec}}


def apply(kubectl: Kubectl, ns: str, *pods: dict[str, Any]) -> None:
    kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump({"apiVersion": "v1", "kind": "List",
                                                                 "items": list(pods)}))


def placement(kubectl: Kubectl, ns: str, count: int, timeout: float = 20.0) -> dict[str, str]:
    """pod → node once `count` pods are bound."""
    deadline = time.monotonic() + timeout
    while True:
        items = json.loads(kubectl("get", "pods", "-n", ns, "-o", "json"))["items"]
        bound = {p["metadata"]["name"]: p["spec"]["nodeName"] for p in items if p["spec"].get("nodeName")}
        if len(bound) >= count:
            return bound
        if time.monotonic() > deadline:
            raise AssertionError(f"only {len(bound)}/{count} pods bound: {bound}")
        time.sleep(0.2)


def pod_condition(kubectl: Kubectl, ns: str, name: str, timeout: float = 15.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        raw = kubectl("get", "pod", name, "-n", ns, "-o", "jsonpath={.status.conditions}")
        conds = [c for c in json.loads(raw or "[]") if c["type"] == "PodScheduled"]
        if conds or time.monotonic() > deadline:
            assert conds, f"no PodScheduled condition on {name}"
            return conds[0]
        time.sleep(0.2)


def test_spread_by_requests(kubectl: Kubectl, ns: str) -> None:
    apply(kubectl, ns, *(pod(f"web-{i}") for i in range(10)))
    per_node = collections.Counter(placement(kubectl, ns, 10).values())
    assert per_node == {n: 2 for n in NODES}  # LeastAllocated: always the emptiest node


def test_most_allocated_packs(kubectl: Kubectl, ns: str) -> None:
    apply(kubectl, ns, *(pod(f"pack-{i}", schedulerName="bin-packing") for i in range(10)))
    per_node = sorted(collections.Counter(placement(kubectl, ns, 10).values()).values())
    assert per_node == [2, 8]  # 8 × 500m/1Gi fill a 4 CPU / 8Gi node exactly


def test_node_selector_and_required_affinity(kubectl: Kubectl, ns: str) -> None:
    kubectl("label", "node", "sim-3", "disk=ssd", "--overwrite")
    try:
        affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["zone-c"]}]}]}}}
        apply(kubectl, ns, pod("ssd", nodeSelector={"disk": "ssd"}), pod("zone-c", affinity=affinity))
        assert placement(kubectl, ns, 2) == {"ssd": "sim-3", "zone-c": "sim-4"}
    finally:
        kubectl("label", "node", "sim-3", "disk-")


def test_pod_anti_affinity_one_per_node(kubectl: Kubectl, ns: str) -> None:
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "solo"}}, "topologyKey": "kubernetes.io/hostname"}]}}
    apply(kubectl, ns, *(pod(f"solo-{i}", cpu="100m", memory="64Mi", labels={"app": "solo"}, affinity=anti)
                         for i in range(6)))
    bound = placement(kubectl, ns, 5)
    assert sorted(bound.values()) == NODES
    time.sleep(0.5)
    assert len(placement(kubectl, ns, 5)) == 5  # the sixth has nowhere to go
    pending = next(f"solo-{i}" for i in range(6) if f"solo-{i}" not in bound)
    assert "didn't match pod anti-affinity rules" in pod_condition(kubectl, ns, pending)["message"]


def test_taints_and_tolerations(kubectl: Kubectl, ns: str) -> None:
    tainted = [n for n in NODES if n != "sim-2"]
    kubectl("taint", "node", *tainted, "dedicated=infra:NoSchedule")
    try:
        toleration = [{"key": "dedicated", "operator": "Equal", "value": "infra", "effect": "NoSchedule"}]
        apply(kubectl, ns, *(pod(f"plain-{i}", cpu="100m", memory="64Mi") for i in range(3)),
              pod("tolerant", cpu="100m", memory="64Mi", tolerations=toleration,
                  nodeSelector={"kubernetes.io/hostname": "sim-0"}))
        bound = placement(kubectl, ns, 4)
        assert bound == {"plain-0": "sim-2", "plain-1": "sim-2", "plain-2": "sim-2", "tolerant": "sim-0"}
    finally:
        kubectl("taint", "node", *tainted, "dedicated-")


def test_topology_spread_across_zones(kubectl: Kubectl, ns: str) -> None:
    spread = [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
               "labelSelector": {"matchLabels": {"app": "spread"}}}]
    apply(kubectl, ns, *(pod(f"z-{i}", cpu="100m", memory="64Mi", labels={"app": "spread"},
                             topologySpreadConstraints=spread) for i in range(6)))
    zones = collections.Counter(ZONES[n] for n in placement(kubectl, ns, 6).values())
    assert zones == {"zone-a": 2, "zone-b": 2, "zone-c": 2}


def test_oversize_pod_stays_pending_and_is_explained(kubectl: Kubectl, ns: str, cluster: ConfiguredServer) -> None:
    apply(kubectl, ns, pod("huge", cpu="8"))
    cond = pod_condition(kubectl, ns, "huge")
    assert (cond["status"], cond["reason"]) == ("False", "Unschedulable")
    assert cond["message"] == ("0/5 nodes are available: 5 Insufficient cpu. preemption: 0/5 nodes are available: "
                               "5 No preemption victims found for incoming pod..")
    deadline = time.monotonic() + 10
    while "FailedScheduling" not in (out := kubectl("describe", "pod", "huge", "-n", ns)):
        assert time.monotonic() < deadline, out
        time.sleep(0.2)
    assert "0/5 nodes are available: 5 Insufficient cpu." in out
    assert kubectl("get", "pod", "huge", "-n", ns, "-o", "jsonpath={.status.phase}") == "Pending"
    res = subprocess.run([sys.executable, "-m", "kubeling", "explain", "pod", "huge", "-n", ns,
                          "--kubeconfig", str(cluster.kubeconfig)], capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    assert "Unschedulable" in res.stdout and "Node:      <none>" in res.stdout
    for node in NODES:
        assert any(line.split()[:1] == [node] and "rejected by NodeResourcesFit: Insufficient cpu" in line
                   for line in res.stdout.splitlines()), res.stdout
    missing = subprocess.run([sys.executable, "-m", "kubeling", "explain", "pod", "nope", "-n", ns,
                              "--kubeconfig", str(cluster.kubeconfig)], capture_output=True, text=True, timeout=30)
    assert missing.returncode == 1 and missing.stderr.strip() == f'Error: pod "nope" not found in namespace "{ns}"'


def test_priority_preemption(kubectl: Kubectl, ns: str) -> None:
    kubectl("apply", "-f", "-", input=yaml.safe_dump({
        "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "e2e-high"},
        "value": 100000, "description": "preempts"}))
    apply(kubectl, ns, *(pod(f"low-{i}", cpu="3500m") for i in range(5)))  # one per node: every node full
    low = placement(kubectl, ns, 5)
    apply(kubectl, ns, pod("urgent", cpu="1", priorityClassName="e2e-high"))
    deadline = time.monotonic() + 20
    while True:
        items = {p["metadata"]["name"]: p for p in json.loads(kubectl("get", "pods", "-n", ns, "-o", "json"))["items"]}
        node = items.get("urgent", {}).get("spec", {}).get("nodeName")
        if node:
            break
        assert time.monotonic() < deadline, "urgent was never bound"
        time.sleep(0.2)
    victims = [n for n, where in low.items() if where == node]
    assert len(victims) == 1 and victims[0] not in items  # the low pod on that node was evicted
    assert len([n for n in items if n.startswith("low-")]) == 4
    events = kubectl("get", "events", "-n", ns, "--field-selector", f"involvedObject.name={victims[0]}")
    assert "Preempted" in events
