"""A control plane plus simulated nodes for the workload e2e tests.

`ControlPlane` is the shared `Server` fixture class with extra `kubeling server` flags (controller
options); `Simulator` is one `kubeling simulate` subprocess. Both run in their own session so
stopping them stops every child, and both are stopped by the fixtures that start them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .conftest import Kubectl, Server

Obj = dict[str, Any]


class ControlPlane(Server):
    """`kubeling server` with extra flags, restartable on the same data dir and port."""

    def __init__(self, data_dir: Path, extra_args: list[str]) -> None:
        super().__init__(data_dir, extra_args=extra_args)


class Cluster:
    """What a module's `cluster` fixture hands its tests: the control plane, a kubectl, the module's tmp dir."""

    def __init__(self, server: ControlPlane, kubectl: Kubectl, tmp: Path) -> None:
        self.server = server
        self.kubectl = kubectl
        self.tmp = tmp


class Simulator:
    """`kubeling simulate --nodes N --name-prefix P`: nodes P-0 … P-(N-1) until stopped."""

    def __init__(self, kubeconfig: Path, log_dir: Path, *, nodes: int, prefix: str,
                 complete_after: float = 1.0) -> None:
        self.kubeconfig = kubeconfig
        self.nodes = [f"{prefix}-{i}" for i in range(nodes)]
        self.prefix = prefix
        self.complete_after = complete_after
        self.log = log_dir / f"simulate-{prefix}.log"
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 20.0) -> Simulator:
        logf = open(self.log, "a")  # noqa: SIM115 - the child holds its own copy
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kubeling", "simulate", "--kubeconfig", str(self.kubeconfig),
             "--nodes", str(len(self.nodes)), "--name-prefix", self.prefix,
             "--complete-after", str(self.complete_after)],
            stdout=subprocess.PIPE, stderr=logf, text=True, start_new_session=True)
        logf.close()
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if "registered" in line:
                return self
            if not line and self.proc.poll() is not None:
                break
        self.stop()
        raise RuntimeError(f"simulator {self.prefix} did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        self.proc = None


def stop_server(server: Server) -> None:
    """Stop the server and anything left in its session."""
    proc = server.proc
    server.stop()
    if proc is not None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def wait_until(what: str, check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.25) -> Any:
    """Poll `check` until it returns something truthy; fail with `what` and the last value otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


def get_json(kubectl: Kubectl, *args: str) -> Obj:
    return json.loads(kubectl("get", *args, "-o", "json"))


def pod_ready(pod: Obj) -> bool:
    conds = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)


class PodWatch:
    """Watches pods matching a label selector in a thread and calls `on_change` with the
    current set of pods after every event, in resourceVersion order."""

    def __init__(self, url: str, namespace: str, selector: str, on_change: Callable[[dict[str, Obj]], None]) -> None:
        import kubernetes

        cfg = kubernetes.client.Configuration()
        cfg.host = url
        self._api = kubernetes.client.ApiClient(cfg)
        self._core = kubernetes.client.CoreV1Api(self._api)
        self._watch = kubernetes.watch.Watch()
        self.namespace = namespace
        self.selector = selector
        self.on_change = on_change
        self.pods: dict[str, Obj] = {}
        self.events = 0
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PodWatch:
        self._thread.start()
        if not self._started.wait(10):
            raise AssertionError(f"the pod watch did not start: {self.errors!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._watch.stop()
        self._thread.join(15)
        self._api.close()

    def _run(self) -> None:
        # Relists and rewatches after a lost connection (the control plane may be restarted under it).
        while not self._stop.is_set():
            try:
                self._list_and_watch()
            except BaseException as exc:  # noqa: BLE001 - kept for __exit__ if the watch never worked
                if self._stop.is_set():
                    return
                self.errors = [exc]
                time.sleep(0.3)

    def _list_and_watch(self) -> None:
        initial = self._api.sanitize_for_serialization(
            self._core.list_namespaced_pod(self.namespace, label_selector=self.selector))
        self.pods = {p["metadata"]["name"]: p for p in initial["items"]}
        rv = initial["metadata"]["resourceVersion"]
        self.errors = []
        self.on_change(dict(self.pods))
        self._started.set()
        while not self._stop.is_set():
            for event in self._watch.stream(self._core.list_namespaced_pod, self.namespace,
                                            label_selector=self.selector, resource_version=rv,
                                            timeout_seconds=5):
                pod = event["raw_object"]
                rv = pod["metadata"]["resourceVersion"]
                if event["type"] == "DELETED":
                    self.pods.pop(pod["metadata"]["name"], None)
                elif event["type"] in ("ADDED", "MODIFIED"):
                    self.pods[pod["metadata"]["name"]] = pod
                else:
                    continue
                self.events += 1
                self.on_change(dict(self.pods))
                if self._stop.is_set():
                    return
