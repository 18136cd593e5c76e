"""Helpers for e2e tests that run real pods: `kubeling up` and `kubeling agent` subprocesses, and
the host's process table (to find a container's process and to prove that none is left behind).

Each pod a test creates carries the module's marker twice: as an argument in its command line and
as the `E2E_MARKER` environment variable (inherited by every child), so the process table can be
searched for it even after the kubeling process that started it is gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .conftest import ROOT, free_port

Obj = dict[str, Any]
FAST_KUBELET = ["backoff_base=1", "backoff_max=8", "node_status_update_frequency=1",
                "node_lease_renew_interval=1", "shutdown_grace_period=10"]


def stable_port() -> int:
    """A free port below the ephemeral range, so that it is still free when a cluster restarts on it
    (free_port() hands out ephemeral ports, which outgoing connections may take in the meantime)."""
    for _ in range(200):
        port = random.randint(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return free_port()


def random_pod_range() -> str:
    """A loopback range of its own, so clusters started by other test runs on this host never collide."""
    return f"127.{random.randint(100, 250)}.0.0/16"


class _Process:
    """A kubeling subprocess in its own session, its stderr in a log file, its stdout read for readiness."""

    ready_text = "is ready at"

    def __init__(self, data_dir: Path, log_name: str) -> None:
        self.data_dir = data_dir
        self.log = data_dir.parent / log_name
        self.proc: subprocess.Popen[str] | None = None
        self.python = [sys.executable]  # the interpreter, and (below) whom to run as
        self.user: int | None = None
        self.extra_env: dict[str, str] = {}
        self.known_pids: set[tuple[int, str]] = set()  # (pid, starttime) of pod processes seen while running

    def _args(self) -> list[str]:
        raise NotImplementedError

    def start(self, timeout: float = 30.0) -> None:
        if self.proc is not None:  # never lose track of a running process (an earlier test may have failed)
            self.stop()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            os.chown(self.data_dir, self.user, self.user)
        env = {**os.environ, "KUBECONFIG": str(self.data_dir / "user-kubeconfig"), "PYTHONUNBUFFERED": "1",
               **self.extra_env}
        logf = open(self.log, "a")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen([*self.python, "-m", "kubeling", *self._args()],
                                     cwd=ROOT if self.user is None else "/",
                                     stdout=subprocess.PIPE, stderr=logf, text=True, env=env,
                                     start_new_session=True, user=self.user, group=self.user,
                                     extra_groups=[] if self.user is not None else None)
        logf.close()
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if self.ready_text in line:
                return
            if not line and self.proc.poll() is not None:
                break
        self.stop()
        raise RuntimeError(f"{self._args()[0]} did not start:\n{self.log_tail()}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def remember_pod_processes(self) -> set[tuple[int, str]]:
        """Record every process below this one (the pods' processes) so a later check can find them."""
        if self.proc is not None and self.proc.poll() is None:
            self.known_pids |= {(pid, starttime(pid)) for pid in descendants(self.proc.pid)}
        return self.known_pids

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int | None:
        """Signal the process, wait for it, and return its exit code (killing its group if it hangs)."""
        if self.proc is None:
            return None
        self.remember_pod_processes()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        code = self.proc.returncode
        self.proc = None
        return code

    def survivors(self, wait: float = 3.0) -> list[int]:
        """Pod processes seen while this ran that are still alive (same pid and start time).

        A zombie is not alive: it ran and exited, and only waits for whoever adopted it (the
        machine's init, once its parent is gone) to collect its exit status. Exited processes
        get `wait` seconds to be collected before they count."""
        deadline = time.monotonic() + wait
        while True:
            alive = sorted(pid for pid, start in self.known_pids
                           if start and starttime(pid) == start and not is_zombie(pid))
            if not alive or time.monotonic() > deadline:
                return alive
            time.sleep(0.1)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


class Up(_Process):
    """`kubeling up`: API server, scheduler, controller manager and a local kubelet on the process runtime."""

    def __init__(self, data_dir: Path, *, node_name: str, kubelet_options: Iterable[str] = FAST_KUBELET,
                 controller_options: Iterable[str] = (), pod_ip_range: str | None = None,
                 port: int | None = None, extra_args: Iterable[str] = ()) -> None:
        super().__init__(data_dir, f"{data_dir.name}-up.log")
        self.node_name = node_name
        self.port = port or stable_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.kubeconfig = data_dir / "kubeconfig.yaml"
        self.kubelet_options = list(kubelet_options)
        self.controller_options = list(controller_options)
        self.pod_ip_range = pod_ip_range or random_pod_range()
        self.extra_args = list(extra_args)  # further `kubeling up` flags, e.g. --service-cidr

    def _args(self) -> list[str]:
        args = ["up", "--data-dir", str(self.data_dir), "--port", str(self.port), "--no-merge-kubeconfig",
                "--kubelet-port", "0", "--node-name", self.node_name, "--pod-ip-range", self.pod_ip_range]
        for opt in self.kubelet_options:
            args += ["--kubelet-option", opt]
        for opt in self.controller_options:
            args += ["--controller-option", opt]
        return args + host_network_unless_given(self.extra_args) + self.extra_args

    @property
    def token(self) -> str:
        return (self.data_dir / "token").read_text().strip()

    def api(self, path: str) -> Obj:
        """GET an API path as JSON (cheaper than a kubectl run when polling fast)."""
        req = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def pod(self, name: str, namespace: str = "default") -> Obj:
        return self.api(f"/api/v1/namespaces/{namespace}/pods/{name}")


class Agent(_Process):
    """`kubeling agent`: a second node joining `up` with its token."""

    def __init__(self, data_dir: Path, *, server: str, token: str, node_name: str,
                 kubelet_options: Iterable[str] = FAST_KUBELET, pod_ip_range: str | None = None,
                 extra_args: Iterable[str] = ()) -> None:
        super().__init__(data_dir, f"{data_dir.name}-agent.log")
        self.extra_args = list(extra_args)
        self.server = server
        self.token = token
        self.node_name = node_name
        self.kubelet_options = list(kubelet_options)
        self.pod_ip_range = pod_ip_range or random_pod_range()
        self.ready_text = f"node {node_name} joined"

    def _args(self) -> list[str]:
        args = ["agent", "--server", self.server, "--token", self.token, "--data-dir", str(self.data_dir),
                "--node-name", self.node_name, "--kubelet-port", "0", "--pod-ip-range", self.pod_ip_range]
        for opt in self.kubelet_options:
            args += ["--kubelet-option", opt]
        return args + host_network_unless_given(self.extra_args) + self.extra_args


def host_network_unless_given(args: list[str]) -> list[str]:
    """Clusters on the machine's own network namespace use the no-root network mode even as root:
    the CNI mode would put a bridge with private addresses and nftables rules on the host, which
    tests may only do inside network namespaces they create (see netcluster.py)."""
    return [] if "--pod-network" in args else ["--pod-network", "host"]


# --- the host's process table -------------------------------------------------------------------

def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def _stat_fields(pid: int) -> list[str]:
    raw = _read(f"/proc/{pid}/stat").decode(errors="replace")
    # the command name is in parentheses and may contain spaces: split after the last ')'
    return raw[raw.rfind(")") + 2:].split() if raw else []


def is_zombie(pid: int) -> bool:
    fields = _stat_fields(pid)
    return bool(fields) and fields[0] in ("Z", "X")


def starttime(pid: int) -> str:
    fields = _stat_fields(pid)
    return fields[19] if len(fields) > 19 else ""


def all_pids() -> list[int]:
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid in all_pids():
        fields = _stat_fields(pid)
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(pid)
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def cmdline(pid: int) -> str:
    return _read(f"/proc/{pid}/cmdline").replace(b"\0", b" ").decode(errors="replace").strip()


def pids_with_marker(marker: str) -> list[int]:
    """Live processes carrying `marker` in their command line or in their environment (zombies excluded)."""
    needle = marker.encode()
    found = []
    for pid in all_pids():
        if pid == os.getpid():
            continue
        fields = _stat_fields(pid)
        if not fields or fields[0] in ("Z", "X"):
            continue
        if needle in _read(f"/proc/{pid}/cmdline") or needle in _read(f"/proc/{pid}/environ"):
            found.append(pid)
    return sorted(found)


def describe(pids: Iterable[int]) -> str:
    return "; ".join(f"{pid}: {cmdline(pid)!r}" for pid in pids)


def kill_pids(pids: Iterable[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def diagnose(kubectl: Any, selector: str = "") -> str:
    """`kubectl get pods -o wide` and the recent events, for a failure message."""
    args = ["-l", selector] if selector else []
    pods = kubectl.run("get", "pods", "-o", "wide", *args, check=False)
    events = kubectl.run("get", "events", "--sort-by=.lastTimestamp", check=False)
    return f"\n{pods.stdout}{pods.stderr}\nevents:\n{events.stdout[-3000:]}"


def wait_available(kubectl: Any, deployment: str, replicas: int, timeout: float = 60.0) -> None:
    """Wait for a Deployment's availableReplicas; on timeout fail with the pods and events."""
    deadline = time.monotonic() + timeout
    status: Obj = {}
    while time.monotonic() < deadline:
        out = kubectl.run("get", "deployment", deployment, "-o", "json", check=False).stdout
        status = json.loads(out).get("status", {}) if out else {}
        if status.get("availableReplicas") == replicas:
            return
        time.sleep(0.25)
    raise AssertionError(f"deployment {deployment}: not {replicas} available after {timeout}s; status {status}"
                         f"{diagnose(kubectl)}")


def wait_gone(marker: str, timeout: float = 5.0) -> list[int]:
    """Wait for every process carrying `marker` to exit; return those still there."""
    deadline = time.monotonic() + timeout
    left = pids_with_marker(marker)
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = pids_with_marker(marker)
    return left


def pod_host_processes(names: set[str], under: int | None = None) -> list[int]:
    """Host processes whose environment says they belong to one of these pods (HOSTNAME=<pod name>).

    Pod names repeat across clusters (another test run may have its own `config-demo`), so with
    `under` only that process's descendants count; without it, only processes that no running
    kubeling owns (orphans: no kubeling process among their ancestors) count.
    """
    if not names:
        return []
    wanted = {f"HOSTNAME={n}".encode() for n in names}
    parent: dict[int, int] = {}
    for pid in all_pids():
        fields = _stat_fields(pid)
        if len(fields) > 1:
            parent[pid] = int(fields[1])
    scope = descendants(under) if under is not None else None

    def owned_by_kubeling(pid: int) -> bool:
        seen = set()
        while pid > 1 and pid not in seen:
            seen.add(pid)
            pid = parent.get(pid, 0)
            if pid > 1 and "-m kubeling" in cmdline(pid):
                return True
        return False

    found = []
    for pid in parent:
        if scope is not None and pid not in scope:
            continue
        fields = _stat_fields(pid)
        if not fields or fields[0] in ("Z", "X"):
            continue
        if not wanted.intersection(_read(f"/proc/{pid}/environ").split(b"\0")):
            continue
        if scope is None and owned_by_kubeling(pid):
            continue
        found.append(pid)
    return sorted(found)
