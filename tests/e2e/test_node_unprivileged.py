"""The no-root mode: `kubeling up` as an unprivileged user (as root, the test drops to `nobody`).

The examples run (web 3/3 on per-pod loopback addresses, the Job, ConfigMap/Secret env and files),
exec and logs work, the pods' processes belong to the unprivileged user, and stopping leaves none
behind.
"""

from __future__ import annotations

import os
import pwd
import random
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .cluster import Up, describe, kill_pids, pod_host_processes, wait_available
from .conftest import ROOT, Kubectl, make_kubectl
from .simcluster import get_json, pod_ready, wait_until

pytestmark = pytest.mark.e2e

NODE = "unprivileged-node"
SITE = sysconfig.get_paths()["purelib"]


def unprivileged_python(uid: int) -> list[str] | None:
    """An interpreter `uid` can run that imports kubeling (the venv's own may sit under /root)."""
    env = {"PYTHONPATH": f"{ROOT / 'src'}:{SITE}", "PATH": os.environ.get("PATH", "")}
    for candidate in (sys.executable, shutil.which("python3.11"), "/usr/bin/python3"):
        if not candidate:
            continue
        try:
            res = subprocess.run([candidate, "-c", "import sys, kubeling; print(sys.version_info[:2])"], env=env,
                                 user=uid, group=uid, extra_groups=[], cwd="/", capture_output=True, text=True,
                                 timeout=30)
        except OSError:
            continue
        if res.returncode == 0 and res.stdout.strip() == str(tuple(sys.version_info[:2])):
            return [candidate]
    return None


class Env:
    def __init__(self, up: Up, k: Kubectl, uid: int) -> None:
        self.up = up
        self.k = k
        self.uid = uid
        self.names: set[str] = set()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("unprivileged")
    base = Path(tempfile.mkdtemp(prefix="kubeling-e2e-unpriv-"))  # pytest's tmp dirs are private to root
    if os.geteuid() == 0:
        uid = pwd.getpwnam("nobody").pw_uid
        python = unprivileged_python(uid)
        if python is None:
            shutil.rmtree(base, ignore_errors=True)
            pytest.skip("no Python 3.11 interpreter that user nobody can run")
        os.chown(base, uid, uid)
    else:
        uid, python = os.geteuid(), [sys.executable]
    # a service range of its own, so other clusters on this host never answer in its place
    up = Up(base / "data", node_name=NODE, extra_args=["--service-cidr", f"127.{random.randint(91, 99)}.0.0/16"])
    if os.geteuid() == 0:
        up.user = uid
        up.python = python
        up.extra_env = {"PYTHONPATH": f"{ROOT / 'src'}:{SITE}", "HOME": str(base)}
    e: Env | None = None
    try:
        up.start()
        e = Env(up, make_kubectl(up, 33, tmp), uid)  # type: ignore[arg-type]
        yield e
    finally:
        up.stop()
        kill_pids(up.survivors())
        if e is not None:
            kill_pids(pod_host_processes(e.names))
        if up.log.exists():
            shutil.copy(up.log, tmp / up.log.name)  # keep the log after the data dir goes
        shutil.rmtree(base, ignore_errors=True)


def test_kubeling_runs_unprivileged(env: Env) -> None:
    assert env.up.proc is not None
    status = Path(f"/proc/{env.up.pid}/status").read_text()
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert uid_line.split()[1] == str(env.uid), uid_line


def test_examples_run_unprivileged(env: Env) -> None:
    k = env.k
    k("apply", "-f", str(ROOT / "examples"))
    wait_available(k, "web", 3)
    pods = [p for p in get_json(k, "pods", "-l", "app=web")["items"] if pod_ready(p)]
    assert len(pods) == 3
    for p in pods:
        with urllib.request.urlopen(f"http://{p['status']['podIP']}:8080/", timeout=5) as resp:
            assert resp.status == 200
    k("wait", "--for=condition=Complete", "job/squares", "--timeout=60s")
    k("wait", "--for=condition=Ready", "pod/config-demo", "--timeout=60s")
    wait_until("config-demo logs", lambda: "PASSWORD" in k("logs", "config-demo"), timeout=15)
    assert k("logs", "config-demo").splitlines() == ["hello s3cr3t", "color=blue", "size=large", "PASSWORD"]
    assert k("exec", "config-demo", "--", "cat", "/etc/secret/PASSWORD") == "s3cr3t"
    res = k.run("exec", "config-demo", "--", "sh", "-c", "exit 3", check=False)
    assert res.returncode == 3, res
    env.names |= {p["metadata"]["name"] for p in pods} | {"config-demo"}
    procs = pod_host_processes(env.names, under=env.up.pid)
    assert len(procs) >= 4, describe(procs)
    for pid in procs:
        assert os.stat(f"/proc/{pid}").st_uid == env.uid, f"{describe([pid])} does not run as uid {env.uid}"


def test_services_through_the_userspace_proxy(env: Env) -> None:
    """ClusterIP and NodePort answer from the host; a port below 1024 is reported, not silently dropped."""
    k = env.k
    wait_available(k, "web", 3)
    names = {p["metadata"]["name"] for p in get_json(k, "pods", "-l", "app=web")["items"]}
    k("expose", "deployment", "web", "--name", "web-cip", "--port", "8080")
    k("expose", "deployment", "web", "--name", "web-np", "--type", "NodePort", "--port", "8080")
    k("expose", "deployment", "web", "--name", "web-80", "--port", "80", "--target-port", "8080")
    cluster_ip = get_json(k, "service", "web-cip")["spec"]["clusterIP"]
    node_port = get_json(k, "service", "web-np")["spec"]["ports"][0]["nodePort"]
    for url in (f"http://{cluster_ip}:8080/", f"http://127.0.0.1:{node_port}/"):
        def answers(url: str = url) -> bool:
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    return resp.status == 200
            except OSError:
                return False

        wait_until(f"{url} answers", answers, timeout=15, interval=0.2)
        for _ in range(30):
            with urllib.request.urlopen(url, timeout=5) as resp:
                assert resp.status == 200
    assert len(names) == 3

    def port_80_reported() -> bool:
        events = get_json(k, "events", "--field-selector", "involvedObject.name=web-80")["items"]
        return any("below 1024" in (e.get("message") or "") for e in events)

    wait_until("a FailedToListen event for port 80", port_80_reported, timeout=15, interval=0.3)


def test_stop_leaves_no_pod_process(env: Env) -> None:
    env.up.remember_pod_processes()
    code = env.up.stop()
    assert code == 0, f"kubeling up exited {code}:\n{env.up.log_tail()}"
    assert env.up.survivors() == [], describe(env.up.survivors())
    assert pod_host_processes(env.names) == [], describe(pod_host_processes(env.names))
