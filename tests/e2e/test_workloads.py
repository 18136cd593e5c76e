"""Workload controllers end to end: a real `kubeling server`, 3 simulated nodes, the real kubectl 1.33.

Deployments (rolling updates watched pod by pod, history, undo, pause/resume, restart, scale),
cascading deletion (background, foreground, orphan, namespaces), StatefulSet ordering, DaemonSet
node coverage, Job completion and CronJob firing. Each test works in its own namespace.
"""

from __future__ import annotations

import json
import threading
import time
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


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("workloads")
    # Pod GC force-deletes pods bound to a deleted node after 2 s instead of 20 s (the DaemonSet test);
    # the garbage collector rechecks a foreground deletion's dependents every 0.5 s instead of 5 s.
    server = ControlPlane(tmp / "data", ["--controller-option", "orphan_quarantine=2",
                                         "--controller-option", "foreground_recheck=0.5"])
    sims: list[Simulator] = []
    try:
        server.start()
        sims.append(Simulator(server.kubeconfig, tmp, nodes=len(NODES), prefix="sim").start())
        kubectl = make_kubectl(server, 33, tmp)
        # The CronJob is created first so that its once-a-minute firing happens while the other tests run.
        kubectl("create", "namespace", "cron")
        kubectl("create", "cronjob", "tick", "-n", "cron", "--image=busybox", "--schedule=*/1 * * * *",
                "--restart=Never", "--", "true")
        yield Cluster(server, kubectl, tmp)
    finally:
        for sim in sims:
            sim.stop()
        stop_server(server)


@pytest.fixture
def k(cluster: Cluster) -> Kubectl:
    return cluster.kubectl


def namespace(k: Kubectl, name: str) -> str:
    k("create", "namespace", name)
    return name


def image_of(k: Kubectl, ns: str, deployment: str) -> str:
    return k("get", "deployment", deployment, "-n", ns, "-o", "jsonpath={.spec.template.spec.containers[0].image}")


def replicasets(k: Kubectl, ns: str, selector: str) -> list[Obj]:
    return get_json(k, "replicasets", "-n", ns, "-l", selector)["items"]


def live_pods(k: Kubectl, ns: str, selector: str) -> list[Obj]:
    pods = get_json(k, "pods", "-n", ns, "-l", selector)["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def rollout_status(k: Kubectl, ns: str, what: str, timeout: str = "60s") -> None:
    out = k.run("rollout", "status", what, "-n", ns, f"--timeout={timeout}",
                timeout=float(timeout.rstrip("s")) + 10).stdout
    # Deployments/DaemonSets say "successfully rolled out"; a StatefulSet (partition defaults to 0)
    # "partitioned roll out complete", as on Kubernetes.
    assert "successfully rolled out" in out or "roll out complete" in out, out


def assert_all_pods_run(k: Kubectl, ns: str, selector: str, image: str, count: int) -> None:
    pods = live_pods(k, ns, selector)
    images = sorted(p["spec"]["containers"][0]["image"] for p in pods)
    assert images == [image] * count, images
    assert all(pod_ready(p) for p in pods)


# --- Deployments -----------------------------------------------------------------------------------


class RolloutBounds:
    """Checks, after every pod event, maxSurge and maxUnavailable of a 4-replica deployment (25% → 1 each)."""

    def __init__(self, replicas: int, max_surge: int, max_unavailable: int) -> None:
        self.replicas = replicas
        self.max_surge = max_surge
        self.max_unavailable = max_unavailable
        self.violations: list[str] = []
        self.max_seen = 0
        self.min_available = replicas
        self.hashes: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, pods: dict[str, Obj]) -> None:
        live = [p for p in pods.values() if not p["metadata"].get("deletionTimestamp")]
        available = sum(1 for p in live if pod_ready(p))
        with self._lock:
            self.hashes.update(p["metadata"]["labels"].get("pod-template-hash", "") for p in live)
            self.max_seen = max(self.max_seen, len(live))
            self.min_available = min(self.min_available, available)
            if len(live) > self.replicas + self.max_surge:
                self.violations.append(f"{len(live)} pods: {sorted(pods)}")
            if available < self.replicas - self.max_unavailable:
                self.violations.append(f"only {available} available: {sorted(pods)}")


def test_rolling_update_never_exceeds_max_surge_or_max_unavailable(cluster: Cluster, k: Kubectl) -> None:
    ns = namespace(k, "rollout")
    k("create", "deployment", "web", "-n", ns, "--image=nginx:1.25", "--replicas=4")
    rollout_status(k, ns, "deployment/web")
    manifest = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": ns, "labels": {"app": "web"},
                     "annotations": {"kubernetes.io/change-cause": "apply nginx 1.27"}},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]}}},
    }
    bounds = RolloutBounds(replicas=4, max_surge=1, max_unavailable=1)
    with PodWatch(cluster.server.url, ns, "app=web", bounds) as watch:
        k("set", "image", "deployment/web", "-n", ns, "nginx=nginx:1.26")
        rollout_status(k, ns, "deployment/web")
        assert_all_pods_run(k, ns, "app=web", "nginx:1.26", 4)
        k("apply", "-f", "-", input=json.dumps(manifest))
        rollout_status(k, ns, "deployment/web")
        assert_all_pods_run(k, ns, "app=web", "nginx:1.27", 4)
        wait_until("the watch to see the last pods go", lambda: len(watch.pods) == 4, timeout=20)
    assert not bounds.violations, bounds.violations[:5]
    # The watch really saw both rollouts: three template hashes and a surge pod at some point.
    assert len(bounds.hashes) == 3, bounds.hashes
    assert bounds.max_seen == 5
    assert watch.events >= 24  # 8 new pods created, run, and 8 old ones deleted, at the least

    history = k("rollout", "history", "deployment/web", "-n", ns).splitlines()
    rows = [line.split(None, 1) for line in history if line[:1].isdigit()]
    assert [r[0] for r in rows] == ["1", "2", "3"], history
    assert rows[2][1].strip() == "apply nginx 1.27", history
    assert "nginx:1.26" in k("rollout", "history", "deployment/web", "-n", ns, "--revision=2")


def test_rollout_undo_and_undo_to_revision(k: Kubectl) -> None:
    ns = namespace(k, "undo")
    k("create", "deployment", "web", "-n", ns, "--image=nginx:1.25", "--replicas=3")
    for image in ("nginx:1.26", "nginx:1.27"):
        rollout_status(k, ns, "deployment/web")
        k("set", "image", "deployment/web", "-n", ns, f"nginx={image}")
    rollout_status(k, ns, "deployment/web")

    k("rollout", "undo", "deployment/web", "-n", ns)
    rollout_status(k, ns, "deployment/web")
    assert image_of(k, ns, "web") == "nginx:1.26"
    assert_all_pods_run(k, ns, "app=web", "nginx:1.26", 3)
    # As on Kubernetes, the undone-to revision 2 becomes revision 4.
    revisions = sorted(int(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"])
                       for rs in replicasets(k, ns, "app=web"))
    assert revisions == [1, 3, 4]

    k("rollout", "undo", "deployment/web", "-n", ns, "--to-revision=1")
    rollout_status(k, ns, "deployment/web")
    assert image_of(k, ns, "web") == "nginx:1.25"
    assert_all_pods_run(k, ns, "app=web", "nginx:1.25", 3)
    assert len(replicasets(k, ns, "app=web")) == 3  # no new RS: the revision-1 RS was scaled back up

    missing = k.run("rollout", "undo", "deployment/web", "-n", ns, "--to-revision=9", check=False)
    assert missing.returncode != 0
    assert "unable to find specified revision 9 in history" in missing.stderr


def test_rollout_pause_and_resume(k: Kubectl) -> None:
    ns = namespace(k, "pause")
    k("create", "deployment", "web", "-n", ns, "--image=nginx:1.25", "--replicas=2")
    rollout_status(k, ns, "deployment/web")
    k("rollout", "pause", "deployment/web", "-n", ns)
    k("set", "image", "deployment/web", "-n", ns, "nginx=nginx:1.26")

    def observed() -> bool:
        d = get_json(k, "deployment", "web", "-n", ns)
        return d["status"].get("observedGeneration") == d["metadata"]["generation"]
    wait_until("the controller to observe the paused deployment", observed)
    assert len(replicasets(k, ns, "app=web")) == 1
    assert_all_pods_run(k, ns, "app=web", "nginx:1.25", 2)
    status = k.run("rollout", "status", "deployment/web", "-n", ns, "--timeout=2s", check=False)
    assert status.returncode != 0

    k("rollout", "resume", "deployment/web", "-n", ns)
    rollout_status(k, ns, "deployment/web")
    assert len(replicasets(k, ns, "app=web")) == 2
    assert_all_pods_run(k, ns, "app=web", "nginx:1.26", 2)


def test_rollout_restart_creates_a_new_replicaset(k: Kubectl) -> None:
    ns = namespace(k, "restart")
    k("create", "deployment", "web", "-n", ns, "--image=nginx:1.25", "--replicas=2")
    rollout_status(k, ns, "deployment/web")
    before = {p["metadata"]["name"] for p in live_pods(k, ns, "app=web")}
    k("rollout", "restart", "deployment/web", "-n", ns)
    rollout_status(k, ns, "deployment/web")
    assert len(replicasets(k, ns, "app=web")) == 2
    after = live_pods(k, ns, "app=web")
    assert len(after) == 2
    assert not before & {p["metadata"]["name"] for p in after}
    assert all("kubectl.kubernetes.io/restartedAt" in p["metadata"]["annotations"] for p in after)


def test_scale_up_and_down(k: Kubectl) -> None:
    ns = namespace(k, "scale")
    k("create", "deployment", "web", "-n", ns, "--image=nginx:1.25", "--replicas=2")
    rollout_status(k, ns, "deployment/web")
    k("scale", "deploy/web", "-n", ns, "--replicas=6")
    k("wait", "deployment/web", "-n", ns, "--for=jsonpath={.status.availableReplicas}=6", "--timeout=60s")
    assert len(live_pods(k, ns, "app=web")) == 6
    k("scale", "deploy/web", "-n", ns, "--replicas=2")
    k("wait", "deployment/web", "-n", ns, "--for=jsonpath={.status.replicas}=2", "--timeout=60s")
    wait_until("2 pods left", lambda: len(live_pods(k, ns, "app=web")) == 2)
    rollout_status(k, ns, "deployment/web")
    assert len(replicasets(k, ns, "app=web")) == 1


# --- Cascading deletion ----------------------------------------------------------------------------


def deploy(k: Kubectl, ns: str, name: str, replicas: int = 2) -> None:
    k("create", "deployment", name, "-n", ns, "--image=nginx:1.25", f"--replicas={replicas}")
    rollout_status(k, ns, f"deployment/{name}")


def test_background_deletion_removes_replicasets_and_pods(k: Kubectl) -> None:
    ns = namespace(k, "cascade-bg")
    deploy(k, ns, "x")
    assert len(replicasets(k, ns, "app=x")) == 1
    k("delete", "deployment", "x", "-n", ns)
    wait_until("the ReplicaSet to go", lambda: not replicasets(k, ns, "app=x"))
    wait_until("the pods to go", lambda: not get_json(k, "pods", "-n", ns, "-l", "app=x")["items"])


def test_foreground_deletion_waits_for_dependents(k: Kubectl) -> None:
    ns = namespace(k, "cascade-fg")
    deploy(k, ns, "x")
    blocked = live_pods(k, ns, "app=x")[0]["metadata"]["name"]
    # A finalizer keeps one pod, and with it (blockOwnerDeletion) its RS and Deployment.
    k("patch", "pod", blocked, "-n", ns, "--type=merge", "-p", '{"metadata":{"finalizers":["e2e.kubeling.io/hold"]}}')
    k("delete", "deployment", "x", "-n", ns, "--cascade=foreground", "--wait=false")

    def held() -> bool:
        pods = get_json(k, "pods", "-n", ns, "-l", "app=x")["items"]
        return [p["metadata"]["name"] for p in pods] == [blocked]
    wait_until("the other pod to go while the held one stays", held)
    # Deployment → RS → held pod all wait, however often the garbage collector rechecks (every 0.5 s).
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        d = k.run("get", "deployment", "x", "-n", ns, "-o", "json", check=False)
        assert d.returncode == 0, f"the deployment went while a blocking dependent remains: {d.stderr}"
        meta = json.loads(d.stdout)["metadata"]
        assert meta.get("deletionTimestamp") and "foregroundDeletion" in meta.get("finalizers", [])
        [rs] = replicasets(k, ns, "app=x")
        assert rs["metadata"].get("deletionTimestamp")
        assert rs["metadata"]["ownerReferences"][0].get("blockOwnerDeletion") is True, rs["metadata"]
        assert held()
        time.sleep(0.3)

    k("patch", "pod", blocked, "-n", ns, "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    k("wait", "--for=delete", "deployment/x", "-n", ns, "--timeout=30s")
    assert not replicasets(k, ns, "app=x")
    assert not get_json(k, "pods", "-n", ns, "-l", "app=x")["items"]


def test_orphan_deletion_keeps_replicaset_and_pods(k: Kubectl) -> None:
    ns = namespace(k, "cascade-orphan")
    deploy(k, ns, "x")
    pods_before = sorted(p["metadata"]["name"] for p in live_pods(k, ns, "app=x"))
    k("delete", "deployment", "x", "-n", ns, "--cascade=orphan")
    assert "NotFound" in k.run("get", "deployment", "x", "-n", ns, check=False).stderr
    [rs] = replicasets(k, ns, "app=x")
    assert not rs["metadata"].get("ownerReferences"), rs["metadata"]
    assert not rs["metadata"].get("deletionTimestamp")
    pods = live_pods(k, ns, "app=x")
    assert sorted(p["metadata"]["name"] for p in pods) == pods_before
    # The pods still belong to the (surviving) ReplicaSet, as on Kubernetes.
    assert all(p["metadata"]["ownerReferences"][0]["uid"] == rs["metadata"]["uid"] for p in pods)


def test_deleting_a_namespace_removes_everything_in_it(k: Kubectl) -> None:
    ns = namespace(k, "demo")
    deploy(k, ns, "web")
    k("create", "configmap", "settings", "-n", ns, "--from-literal=a=b")
    k("create", "service", "clusterip", "web", "-n", ns, "--tcp=80:80")
    k("create", "job", "once", "-n", ns, "--image=busybox", "--", "true")
    k("delete", "namespace", ns, "--timeout=60s")
    missing = k.run("get", "namespace", ns, check=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr
    for kind in ("pods", "replicasets", "deployments", "configmaps", "services", "jobs"):
        items = get_json(k, kind, "-A")["items"]
        assert not [i for i in items if i["metadata"]["namespace"] == ns], kind


# --- StatefulSet, DaemonSet, Job, CronJob ----------------------------------------------------------


def test_statefulset_pods_appear_in_order(cluster: Cluster, k: Kubectl) -> None:
    ns = namespace(k, "sts")
    created: list[tuple[str, list[str]]] = []  # (new pod, pods Ready at that moment)

    def record(pods: dict[str, Obj]) -> None:
        seen = {name for name, _ in created}
        for name in sorted(set(pods) - seen):
            created.append((name, sorted(n for n, p in pods.items() if pod_ready(p))))
    manifest = [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": ns},
         "spec": {"clusterIP": "None", "selector": {"app": "web"}, "ports": [{"port": 80}]}},
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web", "namespace": ns},
         "spec": {"serviceName": "web", "replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                  "template": {"metadata": {"labels": {"app": "web"}},
                               "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]}}}},
    ]
    with PodWatch(cluster.server.url, ns, "app=web", record):
        k("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": manifest}))
        rollout_status(k, ns, "statefulset/web")
    assert [name for name, _ in created] == ["web-0", "web-1", "web-2"]
    # OrderedReady: each pod is created only once its predecessors are Ready.
    assert [ready for _, ready in created] == [[], ["web-0"], ["web-0", "web-1"]]
    pods = live_pods(k, ns, "app=web")
    assert sorted(p["spec"]["hostname"] for p in pods) == ["web-0", "web-1", "web-2"]
    assert {p["spec"]["subdomain"] for p in pods} == {"web"}


def daemon_pod_nodes(k: Kubectl, ns: str) -> list[str]:
    return sorted(p["spec"].get("nodeName", "") for p in live_pods(k, ns, "app=agent"))


def test_daemonset_covers_eligible_nodes_and_follows_nodes(cluster: Cluster, k: Kubectl) -> None:
    ns = namespace(k, "ds")
    k("label", "node", "sim-0", "sim-1", "role=edge")
    extra = Simulator(cluster.server.kubeconfig, cluster.tmp, nodes=1, prefix="extra")
    try:
        k("apply", "-f", "-", input=json.dumps({
            "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent", "namespace": ns},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                     "template": {"metadata": {"labels": {"app": "agent"}},
                                  "spec": {"nodeSelector": {"role": "edge"},
                                           "containers": [{"name": "agent", "image": "busybox"}]}}}}))
        rollout_status(k, ns, "daemonset/agent")
        assert daemon_pod_nodes(k, ns) == ["sim-0", "sim-1"]  # sim-2 is not eligible

        extra.start()
        k("label", "node", "extra-0", "role=edge")
        wait_until("a daemon pod on extra-0", lambda: daemon_pod_nodes(k, ns) == ["extra-0", "sim-0", "sim-1"])
        rollout_status(k, ns, "daemonset/agent")
        ds = get_json(k, "daemonset", "agent", "-n", ns)["status"]
        assert (ds["desiredNumberScheduled"], ds["numberReady"]) == (3, 3)

        extra.stop()
        k("delete", "node", "extra-0")
        wait_until("the daemon pod on extra-0 to go", lambda: daemon_pod_nodes(k, ns) == ["sim-0", "sim-1"])
        k("wait", "daemonset/agent", "-n", ns, "--for=jsonpath={.status.desiredNumberScheduled}=2", "--timeout=30s")
    finally:
        extra.stop()
        k.run("label", "node", "sim-0", "sim-1", "role-", check=False)
        k.run("delete", "daemonset", "agent", "-n", ns, "--wait=false", check=False)


def test_job_runs_to_completion_within_parallelism(cluster: Cluster, k: Kubectl) -> None:
    ns = namespace(k, "jobs")
    most_running = 0

    def record(pods: dict[str, Obj]) -> None:
        nonlocal most_running
        active = [p for p in pods.values() if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
                  and not p["metadata"].get("deletionTimestamp")]
        most_running = max(most_running, len(active))
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "x", "namespace": ns},
           "spec": {"completions": 3, "parallelism": 2,
                    "template": {"spec": {"restartPolicy": "Never",
                                          "containers": [{"name": "work", "image": "busybox"}]}}}}
    with PodWatch(cluster.server.url, ns, "job-name=x", record):
        k("apply", "-f", "-", input=json.dumps(job))
        k("wait", "--for=condition=complete", "job/x", "-n", ns, "--timeout=60s")
    assert most_running == 2
    status = get_json(k, "job", "x", "-n", ns)["status"]
    assert status["succeeded"] == 3 and not status.get("failed")
    pods = get_json(k, "pods", "-n", ns, "-l", "job-name=x")["items"]
    assert [p["status"]["phase"] for p in pods] == ["Succeeded"] * 3
    terminated = pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")
    assert "Completed" in k("get", "pods", "-n", ns, "-l", "job-name=x")


def test_cronjob_fires_on_schedule(cluster: Cluster, k: Kubectl) -> None:
    ns = "cron"  # the CronJob was created with the cluster, a minute boundary is at most 60 s away
    k("create", "job", "manual", "-n", ns, "--from=cronjob/tick")
    k("wait", "--for=condition=complete", "job/manual", "-n", ns, "--timeout=30s")

    def scheduled_job() -> str:
        jobs = get_json(k, "jobs", "-n", ns)["items"]
        return next((j["metadata"]["name"] for j in jobs if j["metadata"]["name"] != "manual"
                     and any(o.get("kind") == "CronJob" for o in j["metadata"].get("ownerReferences") or [])), "")
    started = time.monotonic()
    name = wait_until("the CronJob to fire", scheduled_job, timeout=75, interval=1)
    assert name.startswith("tick-") and name[5:].isdigit()
    k("wait", "--for=condition=complete", f"job/{name}", "-n", ns, "--timeout=30s")
    cron = get_json(k, "cronjob", "tick", "-n", ns)["status"]
    assert cron.get("lastScheduleTime")
    wait_until("lastSuccessfulTime", lambda: get_json(k, "cronjob", "tick", "-n", ns)["status"]
               .get("lastSuccessfulTime"), timeout=10)
    assert time.monotonic() - started < 75
