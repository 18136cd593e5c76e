"""`kubectl apply -f examples/` on a real `kubeling up` (process runtime, real pods), kubectl 1.33.

Every example reaches its expected state; the ConfigMap and Secret reach the pod as env and files;
stopping `kubeling up` leaves no pod process behind and exits 0; a second `kubeling up` on the same
data dir resumes the cluster and its workloads.
"""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .cluster import Up, cmdline, describe, kill_pids, pod_host_processes, wait_available, wait_gone
from .conftest import ROOT, Kubectl, make_kubectl
from .simcluster import get_json, pod_ready, wait_until

pytestmark = pytest.mark.e2e

EXAMPLES = ROOT / "examples"
NODE = "examples-node"


class Env:
    def __init__(self, up: Up, kubectl: Kubectl, tmp: Path) -> None:
        self.up = up
        self.k = kubectl
        self.tmp = tmp
        self.pod_names: set[str] = set()  # every pod name seen, for the HOSTNAME check of the process table


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("examples")
    up = Up(tmp / "data", node_name=NODE)
    up.start()
    e: Env | None = None
    try:
        e = Env(up, make_kubectl(up, 33, tmp), tmp)  # type: ignore[arg-type]
        yield e
    finally:
        up.stop()
        kill_pids(up.survivors())
        if e is not None:
            kill_pids(pod_host_processes(e.pod_names))


def web_pods(k: Kubectl) -> list[dict]:
    return [p for p in get_json(k, "pods", "-l", "app=web")["items"] if not p["metadata"].get("deletionTimestamp")]


def test_apply_examples(env: Env) -> None:
    k = env.k
    out = k("apply", "-f", str(EXAMPLES))
    for line in ("deployment.apps/web created", "job.batch/squares created", "pod/config-demo created",
                 "configmap/app-config created", "secret/app-secret created"):
        assert line in out


def test_web_deployment_available(env: Env) -> None:
    k = env.k
    wait_available(k, "web", 3)
    k("rollout", "status", "deployment/web", "--timeout=30s")
    pods = web_pods(k)
    assert len(pods) == 3 and all(pod_ready(p) for p in pods)
    ips = {p["status"]["podIP"] for p in pods}
    assert len(ips) == 3, f"each replica has its own IP: {ips}"
    for p in pods:
        assert p["spec"]["nodeName"] == NODE
        assert p["status"]["phase"] == "Running"
        # $(POD_IP) was expanded: the server answers on the pod's own address
        with urllib.request.urlopen(f"http://{p['status']['podIP']}:8080/", timeout=5) as resp:
            assert resp.status == 200
    env.pod_names |= {p["metadata"]["name"] for p in pods}
    env.up.remember_pod_processes()


def test_job_completes(env: Env) -> None:
    k = env.k
    k("wait", "--for=condition=Complete", "job/squares", "--timeout=60s")
    job = get_json(k, "job", "squares")
    assert job["status"]["succeeded"] == 3
    assert "3/3" in k("get", "job", "squares")
    pods = get_json(k, "pods", "-l", "job-name=squares")["items"]
    succeeded = [p for p in pods if p["status"]["phase"] == "Succeeded"]
    assert len(succeeded) == 3
    for p in succeeded:
        name = p["metadata"]["name"]
        assert k("logs", name).strip() == f"square of 12 is 144 from {name}"


def test_config_demo_sees_configmap_and_secret(env: Env) -> None:
    k = env.k
    k("wait", "--for=condition=Ready", "pod/config-demo", "--timeout=60s")
    pod = get_json(k, "pod", "config-demo")
    assert pod["status"]["phase"] == "Running"
    env.pod_names.add("config-demo")
    logs = wait_until("config-demo logs", lambda: k("logs", "config-demo") if "PASSWORD" in k("logs", "config-demo")
                      else None, timeout=15)
    assert logs.splitlines() == ["hello s3cr3t", "color=blue", "size=large", "PASSWORD"]
    # env from configMapKeyRef and envFrom secretRef; files from configMap and secret volumes
    assert k("exec", "config-demo", "--", "sh", "-c", "echo $GREETING:$PASSWORD") == "hello:s3cr3t\n"
    assert k("exec", "config-demo", "--", "cat", "/etc/secret/PASSWORD") == "s3cr3t"
    assert k("exec", "config-demo", "--", "cat", "/etc/app/GREETING") == "hello"
    assert k("exec", "config-demo", "--", "cat", "/etc/app/app.properties") == "color=blue\nsize=large\n"
    # the volumes are read-only
    res = k.run("exec", "config-demo", "--", "sh", "-c", "echo x > /etc/app/new", check=False)
    assert res.returncode != 0, res


def test_stop_leaves_no_pod_process_and_exits_0(env: Env) -> None:
    up = env.up
    up.remember_pod_processes()
    names = set(env.pod_names)
    before = pod_host_processes(names, under=up.pid)
    commands = [cmdline(p) for p in before]
    code = up.stop()
    assert len(before) >= 4, f"expected the web and config-demo processes, found {commands}"
    assert all("kubeling" not in c for c in commands)
    assert code == 0, f"kubeling up exited {code}:\n{up.log_tail()}"
    assert up.survivors() == [], f"pod processes left behind: {describe(up.survivors())}"
    left = pod_host_processes(names)
    assert left == [], f"pod processes left behind: {describe(left)}"
    # the web servers' command lines (no marker of ours in the examples) are gone too
    prefix = ".".join(up.pod_ip_range.split(".")[:2]) + "."
    assert wait_gone(f"--bind {prefix}", 1) == []


def test_second_up_resumes_workloads(env: Env) -> None:
    up = env.up
    up.start()
    k = env.k
    node = wait_until("node Ready after resume", lambda: _node_ready(k), timeout=30)
    assert node
    wait_available(k, "web", 3)
    wait_until("3 web pods Running and Ready after resume",
               lambda: sum(1 for p in web_pods(k) if p["status"]["phase"] == "Running" and pod_ready(p)) == 3,
               timeout=30)
    pods = web_pods(k)
    env.pod_names |= {p["metadata"]["name"] for p in pods}
    running = pod_host_processes({p["metadata"]["name"] for p in pods}, under=up.pid)
    assert len(running) >= 3, f"the web pods run again on the host: {describe(running)}"
    assert all(re.search(r"http\.server 8080 --bind 127\.", cmdline(p)) for p in running), describe(running)
    # the other workloads came back as they were
    assert get_json(k, "job", "squares")["status"]["succeeded"] == 3
    k("wait", "--for=condition=Ready", "pod/config-demo", "--timeout=30s")
    assert json.loads(k("get", "configmap", "app-config", "-o", "json"))["data"]["GREETING"] == "hello"
    code = up.stop()
    assert code == 0, f"kubeling up exited {code}:\n{up.log_tail()}"
    left = pod_host_processes(env.pod_names)
    assert left == [], f"pod processes left behind: {describe(left)}"


def _node_ready(k: Kubectl) -> bool:
    node = get_json(k, "node", NODE)
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])
