"""Real pods on a real `kubeling up` (process runtime, fast kubelet back-off), driven by the real kubectl.

logs (plain, -f, --previous, --tail, --timestamps); exec with exit codes, stdin and a TTY (kubectl
1.27 SPDY, 1.30 and 1.33 WebSocket); port-forward (1.27, 1.30, 1.33); a SIGKILLed container
restarting; liveness failures into CrashLoopBackOff with a growing delay; readiness failure;
OOMKilled (as root); graceful deletion of a Deployment's pod; and, last, stopping `kubeling up`
leaves no pod process behind.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from .cluster import Up, cmdline, describe, kill_pids, pids_with_marker, wait_gone
from .conftest import Kubectl, free_port, make_kubectl
from .simcluster import get_json, pod_ready, wait_until

pytestmark = pytest.mark.e2e

Obj = dict[str, Any]
NODE = "node-e2e"
MARKER = f"kle2e-{uuid.uuid4().hex[:12]}"
SLEEP = "import time; time.sleep(3600)"
VERSIONS = [27, 30, 33]


class Env:
    def __init__(self, up: Up, tmp: Path) -> None:
        self.up = up
        self.tmp = tmp
        self.k = self.kubectl(33)

    def kubectl(self, minor: int) -> Kubectl:
        return make_kubectl(self.up, minor, self.tmp)  # type: ignore[arg-type]

    def apply(self, obj: Obj) -> None:
        self.k("apply", "-f", "-", input=json.dumps(obj))

    def pod(self, name: str) -> Obj:
        return self.up.pod(name)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("node")
    up = Up(tmp / "data", node_name=NODE)
    up.start()
    try:
        yield Env(up, tmp)
    finally:
        up.stop()
        kill_pids(pids_with_marker(MARKER))
        kill_pids(up.survivors())


def container(command: list[str], **extra: Any) -> Obj:
    """A container whose process carries MARKER in its environment (and, by the caller, in its args)."""
    return {"name": "main", "image": "host", "command": command,
            "env": [{"name": "E2E_MARKER", "value": MARKER}], **extra}


def pod(name: str, command: list[str], *, restart: str = "Always", grace: int = 1,
        volumes: list[Obj] | None = None, **extra: Any) -> Obj:
    spec: Obj = {"restartPolicy": restart, "terminationGracePeriodSeconds": grace,
                 "containers": [container(command, **extra)]}
    if volumes:
        spec["volumes"] = volumes
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"e2e": MARKER}}, "spec": spec}


def sh(script: str, tag: str = "") -> list[str]:
    return ["sh", "-c", script, f"{MARKER}{tag}"]


def py(code: str, tag: str = "") -> list[str]:
    return ["python3", "-c", code, f"{MARKER}{tag}"]


def status(p: Obj) -> Obj:
    return (p.get("status", {}).get("containerStatuses") or [{}])[0]


def wait_pod(env: Env, name: str, what: str, pred: Any, timeout: float = 30) -> Obj:
    """Poll the pod until `pred(pod)`; return that pod object."""
    def check() -> Obj | None:
        p = env.pod(name)
        return p if pred(p) else None
    return wait_until(f"pod {name}: {what}", check, timeout=timeout)


def wait_ready(env: Env, name: str, timeout: float = 30) -> Obj:
    return wait_pod(env, name, "Ready", pod_ready, timeout)


def read_lines(proc: subprocess.Popen[bytes], enough: Any, timeout: float) -> list[str]:
    """Read `proc`'s stdout line by line until `enough(lines)` or the timeout."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buf = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = buf.decode(errors="replace").splitlines()
        if enough(lines):
            return lines
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            data = os.read(fd, 65536)
            if not data:
                break
            buf += data
    return buf.decode(errors="replace").splitlines()


def stop_group(proc: subprocess.Popen[Any]) -> str:
    """Stop a kubectl started with `popen` and return what it wrote on stderr."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    err = ""
    if proc.stderr and not proc.stderr.closed:
        err = proc.stderr.read()
    for stream in (proc.stdout, proc.stderr):
        if stream:
            stream.close()
    return err


def numbers(lines: list[str]) -> list[int]:
    return [int(m.group(1)) for line in lines if (m := re.search(r"line-(\d+)$", line))]


def consecutive(nums: list[int]) -> bool:
    return bool(nums) and nums == list(range(nums[0], nums[0] + len(nums)))


# --- logs ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def logger(env: Env) -> str:
    env.apply(pod("logger", sh("i=0; while true; do echo line-$i; i=$((i+1)); sleep 0.2; done")))
    wait_ready(env, "logger")
    wait_until("a few log lines", lambda: len(env.k("logs", "logger").splitlines()) >= 5, timeout=15)
    return "logger"


def test_logs(env: Env, logger: str) -> None:
    nums = numbers(env.k("logs", logger).splitlines())
    assert nums[:5] == [0, 1, 2, 3, 4] and consecutive(nums), nums


def test_logs_tail(env: Env, logger: str) -> None:
    before = numbers(env.k("logs", logger).splitlines())[-1]
    lines = env.k("logs", logger, "--tail=2").splitlines()
    assert len(lines) == 2, lines
    nums = numbers(lines)
    assert consecutive(nums) and nums[0] >= before - 1, (before, lines)


def test_logs_timestamps(env: Env, logger: str) -> None:
    lines = env.k("logs", logger, "--timestamps").splitlines()
    assert len(lines) >= 5
    now = datetime.now(UTC)
    stamps = []
    for line in lines:
        m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z line-\d+", line)
        assert m, f"not `<RFC3339 timestamp> <line>`: {line!r}"
        stamps.append(datetime.fromisoformat(m.group(1) + (m.group(2) or "")[:7]).replace(tzinfo=UTC))
    assert stamps == sorted(stamps)
    assert abs((now - stamps[-1]).total_seconds()) < 60, (now, stamps[-1])
    assert consecutive(numbers(lines))


def test_logs_follow(env: Env, logger: str) -> None:
    last = numbers(env.k("logs", logger).splitlines())[-1]
    proc = env.k.popen("logs", "-f", logger)
    proc_b: subprocess.Popen[bytes] = proc  # type: ignore[assignment]
    try:
        # binary reads through the fd; lines written after the call started must keep arriving
        lines = read_lines(proc_b, lambda ls: bool(numbers(ls)) and numbers(ls)[-1] >= last + 5, timeout=15)
        nums = numbers(lines)
        assert nums and nums[-1] >= last + 5, f"logs -f stopped following at {nums[-1:]} (last before: {last})"
        assert consecutive(nums), nums
        assert proc.poll() is None, "logs -f ended while the container still runs"
    finally:
        stop_group(proc)


def test_logs_previous(env: Env) -> None:
    script = ("n=$(cat /state/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /state/n; echo attempt-$n; "
              "if [ $n -ge 2 ]; then sleep 3600; fi; echo bye-$n; exit 1")
    env.apply(pod("restarter", sh(script), volumes=[{"name": "state", "emptyDir": {}}],
                  volumeMounts=[{"name": "state", "mountPath": "/state"}]))
    p = wait_pod(env, "restarter", "restarted once and running",
                 lambda p: status(p).get("restartCount") == 1 and "running" in status(p).get("state", {}))
    assert status(p)["lastState"]["terminated"]["exitCode"] == 1
    wait_until("current logs", lambda: env.k("logs", "restarter").strip(), timeout=10)
    assert env.k("logs", "restarter").splitlines() == ["attempt-2"]
    assert env.k("logs", "restarter", "--previous").splitlines() == ["attempt-1", "bye-1"]
    assert env.k("logs", "restarter", "-p", "--tail=1").splitlines() == ["bye-1"]


def test_logs_of_missing_previous_is_an_error(env: Env, logger: str) -> None:
    res = env.k.run("logs", logger, "--previous", check=False)
    assert res.returncode != 0 and "previous terminated container" in res.stderr, res


# --- exec ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sleeper(env: Env) -> str:
    env.apply(pod("sleeper", py(SLEEP)))
    wait_ready(env, "sleeper")
    return "sleeper"


@pytest.mark.parametrize("minor", VERSIONS)
def test_exec_exit_code_and_output(env: Env, sleeper: str, minor: int) -> None:
    k = env.kubectl(minor)
    res = k.run("exec", sleeper, "--", "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert res.returncode == 3, res
    assert res.stdout == "out\n"
    assert "err\n" in res.stderr
    assert "command terminated with exit code 3" in res.stderr
    ok = k.run("exec", sleeper, "--", "sh", "-c", "echo $HOSTNAME; echo $E2E_MARKER", check=False)
    assert (ok.returncode, ok.stdout) == (0, f"{sleeper}\n{MARKER}\n"), ok


@pytest.mark.parametrize("minor", VERSIONS)
def test_exec_stdin(env: Env, sleeper: str, minor: int) -> None:
    k = env.kubectl(minor)
    res = k.run("exec", "-i", sleeper, "--", "sh", "-c", "tr a-z A-Z; echo done", input="hello\nworld\n",
                check=False, timeout=30)
    assert (res.returncode, res.stdout) == (0, "HELLO\nWORLD\ndone\n"), res


@pytest.mark.parametrize("minor", VERSIONS)
def test_exec_tty_shell(env: Env, sleeper: str, minor: int) -> None:
    k = env.kubectl(minor)
    argv = [k.binary, "--kubeconfig", str(k.kubeconfig), "--cache-dir", str(k.cache_dir),
            "exec", "-it", sleeper, "--", "sh"]
    master, slave = os.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    out = b""

    def pump(until: Any, timeout: float) -> None:
        nonlocal out
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not until():
            ready, _, _ = select.select([master], [], [], 0.1)
            if not ready:
                continue
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: kubectl closed the terminal
                return
            if not data:
                return
            out += data

    try:
        pump(lambda: b"#" in out or b"$" in out, 5)  # the shell's prompt, if any
        os.write(master, b"echo $((6*7)); exit\n")
        pump(lambda: proc.poll() is not None, 20)
        code = proc.wait(10)
    finally:
        os.close(master)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = out.decode(errors="replace")
    assert re.search(r"(^|\n)42\r?\n", text), f"no 42 in the terminal output: {text!r}"
    assert code == 0, f"kubectl exec -it exited {code}: {text!r}"


# --- port-forward -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def web(env: Env) -> tuple[str, str]:
    token = uuid.uuid4().hex
    script = (f"echo {token} > /srv/token.txt; "
              "python3 -m http.server 8080 --bind $POD_IP --directory /srv")
    manifest = pod("pf-web", sh(script), volumes=[{"name": "srv", "emptyDir": {}}],
                   volumeMounts=[{"name": "srv", "mountPath": "/srv"}],
                   readinessProbe={"httpGet": {"path": "/token.txt", "port": 8080}, "periodSeconds": 1})
    manifest["spec"]["containers"][0]["env"].append(
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}})
    env.apply(manifest)
    wait_ready(env, "pf-web")
    return "pf-web", token


@pytest.mark.parametrize("minor", VERSIONS)
def test_port_forward(env: Env, web: tuple[str, str], minor: int) -> None:
    name, token = web
    k = env.kubectl(minor)
    local = free_port()
    proc = k.popen("port-forward", f"pod/{name}", f"{local}:8080")
    try:
        lines = read_lines(proc, lambda ls: any("Forwarding from 127.0.0.1" in line for line in ls), 15)  # type: ignore[arg-type]
        if not any(f"Forwarding from 127.0.0.1:{local} -> 8080" in line for line in lines):
            pytest.fail(f"kubectl 1.{minor} port-forward did not start: {lines}; stderr: {stop_group(proc)}")
        bodies = []
        for _ in range(3):  # several connections through one port-forward
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{local}/token.txt", timeout=10) as resp:
                    bodies.append((resp.status, resp.read().decode().strip()))
            except OSError as exc:
                pytest.fail(f"kubectl 1.{minor} port-forward: request failed ({exc}); "
                            f"kubectl stderr: {stop_group(proc)}")
        assert bodies == [(200, token)] * 3
        assert proc.poll() is None
    finally:
        stop_group(proc)


# --- restarts and probes ------------------------------------------------------------------------

def test_sigkill_restarts_container(env: Env) -> None:
    tag = "-victim"
    env.apply(pod("victim", py(SLEEP, tag), readinessProbe={"exec": {"command": ["true"]}, "periodSeconds": 1}))
    wait_ready(env, "victim")
    pids = [p for p in pids_with_marker(MARKER + tag) if (MARKER + tag) in cmdline(p)]
    assert len(pids) == 1, f"one host process for the container: {describe(pids)}"
    os.kill(pids[0], signal.SIGKILL)
    p = wait_pod(env, "victim", "restarted and Ready", lambda p: status(p).get("restartCount") == 1 and pod_ready(p))
    last = status(p)["lastState"]["terminated"]
    assert last["exitCode"] == 137 and last["reason"] == "Error", last
    assert status(p)["ready"] is True and "running" in status(p)["state"]
    new = [q for q in pids_with_marker(MARKER + tag) if (MARKER + tag) in cmdline(q)]
    assert len(new) == 1 and new != pids, (pids, new)


def test_liveness_failure_crashloopbackoff_grows(env: Env) -> None:
    env.apply(pod("unhealthy", py(SLEEP, "-unhealthy"),
                  livenessProbe={"exec": {"command": ["false"]}, "periodSeconds": 1, "failureThreshold": 1}))
    waits: list[float] = []  # seconds spent in CrashLoopBackOff, one entry per restart
    restarts: list[int] = []
    began: float | None = None
    saw_reason = ""
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and len(waits) < 3:
        st = status(env.pod("unhealthy"))
        now = time.monotonic()
        restarts.append(st.get("restartCount", 0))
        waiting = st.get("state", {}).get("waiting")
        if waiting and waiting.get("reason") == "CrashLoopBackOff":
            saw_reason = waiting["reason"]
            if began is None:
                began = now
        elif "running" in st.get("state", {}) and began is not None:
            waits.append(now - began)
            began = None
        time.sleep(0.05)
    env.k("delete", "pod", "unhealthy", "--wait=false")
    assert saw_reason == "CrashLoopBackOff", f"never saw CrashLoopBackOff; restartCounts {sorted(set(restarts))}"
    assert len(waits) == 3, f"back-off periods seen: {waits}; restartCounts {sorted(set(restarts))}"
    assert restarts == sorted(restarts) and restarts[-1] >= 3, sorted(set(restarts))
    # backoff_base=1: about 1 s, 2 s, 4 s
    assert waits[0] < waits[1] < waits[2], waits
    assert waits[2] >= 2.5 and waits[2] - waits[0] >= 2, waits
    event_text = env.k("get", "events", "--field-selector", "involvedObject.name=unhealthy")
    assert "Liveness probe failed" in event_text or "Unhealthy" in event_text, event_text


def test_readiness_failure_makes_pod_unready(env: Env) -> None:
    env.apply(pod("flaky", py("open('/state/ready', 'w').close(); " + SLEEP, "-flaky"),
                  volumes=[{"name": "state", "emptyDir": {}}],
                  volumeMounts=[{"name": "state", "mountPath": "/state"}],
                  readinessProbe={"exec": {"command": ["test", "-f", "/state/ready"]},
                                  "periodSeconds": 1, "failureThreshold": 1}))
    wait_ready(env, "flaky")
    env.k("exec", "flaky", "--", "rm", "/state/ready")  # from now on the probe fails
    p = wait_pod(env, "flaky", "not Ready", lambda p: not pod_ready(p), timeout=15)
    assert p["status"]["phase"] == "Running"
    conds = {c["type"]: c["status"] for c in p["status"]["conditions"]}
    assert conds["Ready"] == "False" and conds["ContainersReady"] == "False", conds
    st = status(p)
    assert st["ready"] is False and "running" in st["state"] and st["restartCount"] == 0, st
    row = env.k("get", "pod", "flaky", "--no-headers").split()
    assert row[1:4] == ["0/1", "Running", "0"], row
    env.k("exec", "flaky", "--", "touch", "/state/ready")  # and back
    wait_ready(env, "flaky", timeout=15)


# --- OOM ----------------------------------------------------------------------------------------

def memory_cgroup_writable() -> bool:
    v1 = Path("/sys/fs/cgroup/memory")
    if v1.is_dir():
        return os.access(v1, os.W_OK)
    controllers = Path("/sys/fs/cgroup/cgroup.controllers")
    return controllers.exists() and "memory" in controllers.read_text().split() \
        and os.access("/sys/fs/cgroup", os.W_OK)


@pytest.mark.skipif(os.geteuid() != 0, reason="memory limits need root (cgroups)")
@pytest.mark.skipif(not memory_cgroup_writable(), reason="the memory cgroup is not writable here")
def test_memory_hog_is_oomkilled(env: Env) -> None:
    hog = "b = bytearray(300 * 1024 * 1024); import time; time.sleep(60)"
    env.apply(pod("hog", py(hog, "-hog"), resources={"limits": {"memory": "64Mi"}}))
    p = wait_pod(env, "hog", "terminated once", lambda p: status(p).get("lastState", {}).get("terminated"))
    last = status(p)["lastState"]["terminated"]
    assert (last["reason"], last["exitCode"]) == ("OOMKilled", 137), last
    assert status(p)["restartCount"] >= 1
    env.k("delete", "pod", "hog", "--wait=false")


# --- graceful deletion --------------------------------------------------------------------------

def test_delete_pod_sends_sigterm_and_replacement_starts(env: Env) -> None:
    out = env.tmp / "graceful-out"
    out.mkdir()
    code = ("import os, signal, sys, time\n"
            "name = os.environ['HOSTNAME']\n"
            "def term(*_):\n"
            "    open(f'/out/{name}.sigterm', 'w').write('SIGTERM')\n"
            "    print('got SIGTERM', flush=True)\n"
            "    sys.exit(0)\n"
            "signal.signal(signal.SIGTERM, term)\n"
            "open(f'/out/{name}.started', 'w').close()\n"
            "while True:\n"
            "    time.sleep(0.1)\n")
    tmpl = pod("x", py(code, "-graceful"), grace=20, volumes=[{"name": "out", "hostPath": {"path": str(out)}}],
               volumeMounts=[{"name": "out", "mountPath": "/out"}])
    tmpl["spec"]["restartPolicy"] = "Always"
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "graceful"},
              "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "graceful"}},
                       "template": {"metadata": {"labels": {"app": "graceful", "e2e": MARKER}},
                                    "spec": tmpl["spec"]}}}
    env.apply(deploy)
    env.k("rollout", "status", "deployment/graceful", "--timeout=30s")
    first = get_json(env.k, "pods", "-l", "app=graceful")["items"]
    assert len(first) == 1
    name = first[0]["metadata"]["name"]
    wait_until("the app installed its handler", lambda: (out / f"{name}.started").exists(), timeout=10)
    started = time.monotonic()
    env.k("delete", "pod", name, "--timeout=30s")
    took = time.monotonic() - started
    assert (out / f"{name}.sigterm").read_text() == "SIGTERM", sorted(os.listdir(out))
    assert took < 15, f"deletion took {took:.1f}s: the app exited on SIGTERM, it should not wait for the grace period"

    def replacement() -> str | None:
        pods = [p for p in get_json(env.k, "pods", "-l", "app=graceful")["items"]
                if p["metadata"]["name"] != name and pod_ready(p)]
        return pods[0]["metadata"]["name"] if pods else None

    new = wait_until("a replacement pod Ready", replacement, timeout=30)
    wait_until("the replacement runs", lambda: (out / f"{new}.started").exists(), timeout=10)


# --- last: stopping the node --------------------------------------------------------------------

def test_zz_stop_leaves_no_pod_process(env: Env) -> None:
    up = env.up
    up.remember_pod_processes()
    before = pids_with_marker(MARKER)
    listing = describe(before)
    code = up.stop()
    assert len(before) >= 4, f"expected several pod processes, found {listing}"
    assert code == 0, f"kubeling up exited {code}:\n{up.log_tail()}"
    left = wait_gone(MARKER, 1)
    assert left == [], f"pod processes left behind: {describe(left)}"
    assert up.survivors() == [], f"pod processes left behind: {describe(up.survivors())}"
