"""Fixtures that start a real kubeling server in a subprocess and drive it with
the real kubectl binaries and the official `kubernetes` client.

Every process a test starts is stopped by its fixture, even on failure.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kubectl_binary(minor: int | None) -> str | None:
    """The kubectl for a given minor (the binaries sit beside the dispatcher), or the dispatcher."""
    found = shutil.which("kubectl")
    if found is None:
        return None
    if minor is None:
        return found
    candidate = Path(os.path.realpath(found)).parent / f"kubectl.1.{minor}"
    return str(candidate) if candidate.exists() else None


class Server:
    """A `kubeling server` subprocess with its own data dir and kubeconfig (plus any `extra_args` flags)."""

    def __init__(self, data_dir: Path, port: int | None = None, extra_args: list[str] | None = None) -> None:
        self.data_dir = data_dir
        self.extra_args = list(extra_args or [])
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.kubeconfig = data_dir / "kubeconfig.yaml"
        self.proc: subprocess.Popen[str] | None = None
        self.log = data_dir / "server.log"

    def start(self, timeout: float = 20.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "KUBECONFIG": str(self.data_dir / "user-kubeconfig"), "PYTHONUNBUFFERED": "1"}
        logf = open(self.log, "a")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kubeling", "server", "--data-dir", str(self.data_dir),
             "--port", str(self.port), "--no-merge-kubeconfig", *self.extra_args],
            stdout=subprocess.PIPE, stderr=logf, text=True, env=env, start_new_session=True)
        logf.close()  # the child holds its own copy
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if "is ready at" in line:
                return
            if not line and self.proc.poll() is not None:
                break
        self.stop()
        raise RuntimeError(f"server did not start: {self.log.read_text()[-2000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        code = self.proc.returncode
        self.proc = None
        return code

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()
        self.proc = None


class Kubectl:
    """Runs one kubectl binary against the server."""

    def __init__(self, binary: str, kubeconfig: Path, cache_dir: Path) -> None:
        self.binary = binary
        self.kubeconfig = kubeconfig
        self.cache_dir = cache_dir

    def run(self, *args: str, input: str | None = None, check: bool = True,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = [self.binary, "--kubeconfig", str(self.kubeconfig), "--cache-dir", str(self.cache_dir), *args]
        res = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({res.returncode}):\n"
                                 f"stdout: {res.stdout}\nstderr: {res.stderr}")
        return res

    def __call__(self, *args: str, input: str | None = None) -> str:
        return self.run(*args, input=input).stdout

    def popen(self, *args: str) -> subprocess.Popen[str]:
        cmd = [self.binary, "--kubeconfig", str(self.kubeconfig), "--cache-dir", str(self.cache_dir), *args]
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("kubeling"))
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def make_kubectl(server: Server, minor: int | None, tmp: Path) -> Kubectl:
    binary = kubectl_binary(minor)
    if binary is None:
        pytest.skip(f"kubectl 1.{minor} is not installed (looked beside `kubectl` on PATH)")
    return Kubectl(binary, server.kubeconfig, tmp / f"cache-{minor}")


@pytest.fixture(scope="module")
def k8s_client(server: Server):  # type: ignore[no-untyped-def]
    kubernetes = pytest.importorskip("kubernetes", reason="the official kubernetes client is not installed")
    cfg = kubernetes.client.Configuration()
    cfg.host = server.url
    api = kubernetes.client.ApiClient(cfg)
    yield api
    api.close()
