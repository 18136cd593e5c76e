"""kubectl -> API server -> the REAL kubelet NodeServer (stub runtime): the contract holds end to end.

The fake kubelet in fake_kubelet.py pins the contract; this checks that kubeling's own
node server (src/kubeling/kubelet/server.py) speaks it too, including port-forward
without the optional half-close (the API server's 1 s grace period ends the connection).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from kubeling.kubelet.server import NodeServer
from tests.unit.apiserver.stream_env import Env, env_fixture, kubectl_path
from tests.unit.apiserver.test_streams_kubectl import _free_port, _roundtrip

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(not os.path.exists(kubectl_path(33)), reason="kubectl binaries not installed"),
]


class ProcSession:
    """A StreamSession over a local subprocess."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def write_stdin(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        await self.proc.stdin.drain()

    async def close_stdin(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()

    async def _read(self, stream: asyncio.StreamReader | None) -> AsyncIterator[bytes]:
        while stream is not None and (chunk := await stream.read(65536)):
            yield chunk

    def stdout(self) -> AsyncIterator[bytes]:
        return self._read(self.proc.stdout)

    def stderr(self) -> AsyncIterator[bytes]:
        return self._read(self.proc.stderr)

    async def resize(self, width: int, height: int) -> None:
        pass

    async def wait(self) -> int:
        return await self.proc.wait()

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()


class StubRuntime:
    """Just the streaming part of the Runtime protocol."""

    def __init__(self, ports: dict[int, int]) -> None:
        self.ports = ports

    async def exec(self, container_id: str, command: list[str], *, tty: bool, stdin: bool) -> ProcSession:
        pipe = asyncio.subprocess.PIPE
        return ProcSession(await asyncio.create_subprocess_exec(
            *command, stdin=pipe if stdin else asyncio.subprocess.DEVNULL, stdout=pipe, stderr=pipe))

    async def attach(self, container_id: str, *, stdin: bool, tty: bool) -> ProcSession:
        return await self.exec(container_id, ["cat"], tty=tty, stdin=stdin)

    async def port_forward(self, sandbox_id: str, port: int) -> tuple[object, object]:
        return await asyncio.open_connection("127.0.0.1", self.ports[port])


class Lookup:
    """Every container of pod web runs; its log is a CRI log file."""

    def __init__(self, log_path: str) -> None:
        self.log_path = log_path

    def find_container(self, namespace: str, pod: str, container: str) -> Any:
        return ("cid", "sandbox", self.log_path, True, "") if pod == "web" else None

    def previous_log_path(self, namespace: str, pod: str, container: str) -> str | None:
        return None

    def find_sandbox(self, namespace: str, pod: str) -> str | None:
        return "sandbox" if pod == "web" else None

    def list_pod_stats_targets(self) -> list[Any]:
        return []


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    tmp: Path = tmp_path_factory.mktemp("nodeserver")
    log_path = tmp / "0.log"
    log_path.write_text("2026-01-01T00:00:00.000000000Z stdout F real kubelet line\n")
    async for e in env_fixture(tmp):
        node = NodeServer(Lookup(str(log_path)), StubRuntime(e.kubelet.ports), host="127.0.0.1", port=0)  # type: ignore[arg-type]
        await node.start()
        fake_port, e.kubelet.port = e.kubelet.port, node.port
        code, out = await e.call("GET", "/api/v1/nodes/n1")
        out["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] = node.port
        assert (await e.call("PUT", "/api/v1/nodes/n1/status", out))[0] == 200
        try:
            yield e
        finally:
            await node.stop()
            e.kubelet.port = fake_port


async def test_logs_and_exec_through_the_node_server(env: Env) -> None:
    code, out, err = await env.kubectl(33, "logs", "web", "-c", "app")
    assert (code, out) == (0, "real kubelet line\n"), err
    for minor in (27, 33):
        code, out, err = await env.kubectl(minor, "exec", "web", "-c", "app", "--", "sh", "-c", "echo hi; exit 3")
        assert (code, out) == (3, "hi\n"), err
        assert "command terminated with exit code 3" in err
        code, out, err = await env.kubectl(minor, "exec", "-i", "web", "-c", "app", "--", "cat", stdin=b"in\n")
        assert (code, out) == (0, "in\n"), err


@pytest.mark.parametrize("minor", [27, 33])
async def test_port_forward_through_the_node_server(env: Env, minor: int) -> None:
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        kubectl_path(minor), "--kubeconfig", str(env.kubeconfig), "port-forward", "pod/web", f"{port}:80",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, "HOME": str(env.tmp)})
    try:
        assert await _roundtrip(port, b"through the node server") == b"through the node server"
    finally:
        proc.terminate()
        _, err = await asyncio.wait_for(proc.communicate(), 10)
    assert b"error" not in err.lower(), err
