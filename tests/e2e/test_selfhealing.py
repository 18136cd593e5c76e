"""Self-healing end to end: a real `kubeling server` with shortened node timeouts, simulated nodes, kubectl 1.33.

Deleted pods are replaced; a node whose simulator stops goes NotReady and its pods are evicted and
recreated elsewhere; restarting the control plane in the middle of a rollout creates no duplicates.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import Kubectl, make_kubectl
from .simcluster import (
    Cluster,
    ControlPlane,
    PodWatch,
    Simulator,
    get_json,
    pod_ready,
    stop_server,
    wait_until,
)

pytestmark = pytest.mark.e2e

Obj = dict[str, Any]
NODES = ["sim-0", "sim-1", "sim-2"]
# Simulated nodes renew their Lease every 8–10 s, so the grace period must stay above 10 s.
GRACE_PERIOD = 15
EVICTION_TIMEOUT = 2


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("selfhealing")
    server = ControlPlane(tmp / "data", [
        "--controller-option", f"node_monitor_grace_period={GRACE_PERIOD}",
        "--controller-option", f"pod_eviction_timeout={EVICTION_TIMEOUT}"])
    sim = Simulator(server.kubeconfig, tmp, nodes=len(NODES), prefix="sim")
    try:
        server.start()
        sim.start()
        yield Cluster(server, make_kubectl(server, 33, tmp), tmp)
    finally:
        sim.stop()
        stop_server(server)


@pytest.fixture
def k(cluster: Cluster) -> Kubectl:
    return cluster.kubectl


def live_pods(k: Kubectl, ns: str, selector: str) -> list[Obj]:
    pods = get_json(k, "pods", "-n", ns, "-l", selector)["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def rollout_status(k: Kubectl, ns: str, what: str, timeout: str = "60s") -> None:
    out = k.run("rollout", "status", what, "-n", ns, f"--timeout={timeout}",
                timeout=float(timeout.rstrip("s")) + 10).stdout
    assert "successfully rolled out" in out, out


def test_deleted_pod_is_replaced(k: Kubectl) -> None:
    k("create", "namespace", "heal")
    k("create", "deployment", "web", "-n", "heal", "--image=nginx:1.25", "--replicas=3")
    rollout_status(k, "heal", "deployment/web")
    before = {p["metadata"]["name"] for p in live_pods(k, "heal", "app=web")}
    victim = sorted(before)[0]
    k("delete", "pod", victim, "-n", "heal")
    rollout_status(k, "heal", "deployment/web")
    after = wait_until("3 ready pods", lambda: (pods := live_pods(k, "heal", "app=web")) and len(pods) == 3
                       and all(pod_ready(p) for p in pods) and pods)
    names = {p["metadata"]["name"] for p in after}
    assert victim not in names
    assert len(names - before) == 1
    k("wait", "deployment/web", "-n", "heal", "--for=condition=Available", "--timeout=30s")


def node_ready(k: Kubectl, name: str) -> str:
    node = get_json(k, "node", name)
    return next(c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready")


def test_pods_of_a_silent_node_are_evicted_and_recreated_elsewhere(cluster: Cluster, k: Kubectl) -> None:
    ns = "evict"
    k("create", "namespace", ns)
    gone = Simulator(cluster.server.kubeconfig, cluster.tmp, nodes=1, prefix="gone")
    try:
        gone.start()
        # Every pod lands on gone-0 while the other nodes are cordoned.
        k("cordon", *NODES)
        k("create", "deployment", "web", "-n", ns, "--image=nginx:1.25", "--replicas=3")
        rollout_status(k, ns, "deployment/web")
        k("uncordon", *NODES)
        originals = {p["metadata"]["name"] for p in live_pods(k, ns, "app=web")}
        assert {p["spec"]["nodeName"] for p in live_pods(k, ns, "app=web")} == {"gone-0"}

        gone.stop()
        stopped = time.monotonic()
        wait_until("gone-0 to be NotReady", lambda: "NotReady" in k("get", "node", "gone-0"),
                   timeout=GRACE_PERIOD + 15, interval=0.5)
        assert node_ready(k, "gone-0") == "Unknown"
        taints = {t["key"]: t["effect"] for t in get_json(k, "node", "gone-0")["spec"].get("taints") or []}
        assert taints.get("node.kubernetes.io/unreachable") in ("NoExecute", "NoSchedule"), taints

        def recreated() -> list[Obj] | None:
            pods = live_pods(k, ns, "app=web")
            names = {p["metadata"]["name"] for p in pods}
            ok = len(pods) == 3 and not names & originals and all(pod_ready(p) for p in pods)
            return pods if ok else None
        pods = wait_until("the pods to be recreated on live nodes", recreated, timeout=EVICTION_TIMEOUT + 30)
        assert time.monotonic() - stopped >= GRACE_PERIOD  # not before the grace period ran out
        assert {p["spec"]["nodeName"] for p in pods} <= set(NODES)
        rollout_status(k, ns, "deployment/web")
        # The evicted pods are Terminating on the unreachable node, as on Kubernetes.
        stuck = get_json(k, "pods", "-n", ns, "-l", "app=web", "--field-selector=spec.nodeName=gone-0")["items"]
        assert stuck and all(p["metadata"].get("deletionTimestamp") for p in stuck)
    finally:
        gone.stop()
        k.run("uncordon", *NODES, check=False)
        k.run("delete", "node", "gone-0", "--wait=false", check=False)


def test_scale_up_and_down(k: Kubectl) -> None:
    k("create", "namespace", "scaling")
    k("create", "deployment", "web", "-n", "scaling", "--image=nginx:1.25", "--replicas=2")
    rollout_status(k, "scaling", "deployment/web")
    k("scale", "deploy/web", "-n", "scaling", "--replicas=6")
    rollout_status(k, "scaling", "deployment/web")
    assert len(live_pods(k, "scaling", "app=web")) == 6
    k("scale", "deploy/web", "-n", "scaling", "--replicas=2")
    rollout_status(k, "scaling", "deployment/web")
    wait_until("2 pods left", lambda: len(live_pods(k, "scaling", "app=web")) == 2)


class SurgeBound:
    """Records the most non-terminating pods seen at any moment of the watch."""

    def __init__(self) -> None:
        self.most = 0
        self.lock = threading.Lock()

    def __call__(self, pods: dict[str, Obj]) -> None:
        live = sum(1 for p in pods.values() if not p["metadata"].get("deletionTimestamp"))
        with self.lock:
            self.most = max(self.most, live)


def test_restarting_the_control_plane_mid_rollout_creates_no_duplicates(cluster: Cluster, k: Kubectl) -> None:
    ns = "restart"
    k("create", "namespace", ns)
    replicas, surge = 10, 3  # maxSurge 25% of 10 rounds up to 3
    k("create", "deployment", "big", "-n", ns, "--image=nginx:1.25", f"--replicas={replicas}")
    # minReadySeconds makes each batch take 2 s, so the rollout is still going when the server stops.
    k("patch", "deployment", "big", "-n", ns, "-p", '{"spec":{"minReadySeconds":2}}')
    rollout_status(k, ns, "deployment/big")
    bound = SurgeBound()
    with PodWatch(cluster.server.url, ns, "app=big", bound) as watch:
        k("set", "image", "deployment/big", "-n", ns, "nginx=nginx:1.26")

        def mid_rollout() -> bool:
            status = get_json(k, "deployment", "big", "-n", ns)["status"]
            return 1 <= status.get("updatedReplicas", 0) < replicas
        wait_until("the rollout to start", mid_rollout, interval=0.1)
        cluster.server.stop()
        assert cluster.server.proc is None
        cluster.server.start()
        rollout_status(k, ns, "deployment/big", timeout="90s")
        wait_until("the watch to see the last old pods go", lambda: len(watch.pods) == replicas, timeout=30)
    assert bound.most <= replicas + surge, bound.most
    assert bound.most > replicas  # the watch did see the surge

    pods = live_pods(k, ns, "app=big")
    assert len(pods) == replicas
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {"nginx:1.26"}
    per_hash = Counter(p["metadata"]["labels"]["pod-template-hash"] for p in pods)
    rs_replicas = {rs["metadata"]["labels"]["pod-template-hash"]: rs["spec"]["replicas"]
                   for rs in get_json(k, "replicasets", "-n", ns, "-l", "app=big")["items"]}
    assert {h: n for h, n in rs_replicas.items() if n} == dict(per_hash)
    assert sorted(rs_replicas.values()) == [0, replicas]
    d = get_json(k, "deployment", "big", "-n", ns)
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    assert json.dumps(d["status"].get("conditions", [])).count("ProgressDeadlineExceeded") == 0
