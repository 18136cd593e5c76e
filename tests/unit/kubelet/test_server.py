"""The node server over real HTTP/WebSocket: exec, attach, port-forward, logs, stats, healthz."""
# ruff: noqa: ASYNC230, ASYNC240  (tests read and write small tmp files inline, on purpose)

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from yarl import URL

from kubeling.kubelet.logs import format_time_ns
from kubeling.kubelet.server import NodeServer
from kubeling.kubelet.stats import ContainerTarget, PodStatsTarget
from kubeling.runtime.interface import ContainerState, ContainerStats, ContainerStatus


class ShSession:
    """A StreamSession backed by a local `sh -c` subprocess."""

    def __init__(self, proc: asyncio.subprocess.Process, resizes: list[tuple[int, int]]) -> None:
        self.proc = proc
        self.resizes = resizes

    async def write_stdin(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        await self.proc.stdin.drain()

    async def close_stdin(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    async def _read(self, stream: asyncio.StreamReader | None) -> AsyncIterator[bytes]:
        assert stream is not None
        while chunk := await stream.read(4096):
            yield chunk

    def stdout(self) -> AsyncIterator[bytes]:
        return self._read(self.proc.stdout)

    def stderr(self) -> AsyncIterator[bytes]:
        return self._read(self.proc.stderr)

    async def resize(self, width: int, height: int) -> None:
        self.resizes.append((width, height))

    async def wait(self) -> int:
        return await self.proc.wait()

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()


class FakeRuntime:
    """Only what the node server calls; exec runs argv locally, port-forward goes to `forward_to`."""

    name, version = "fake", "0"

    def __init__(self) -> None:
        self.resizes: list[tuple[int, int]] = []
        self.forward_to: dict[int, int] = {}
        self.state = ContainerState.RUNNING
        self.stats: dict[str, int] = {"c1": 0}
        self.sessions: list[ShSession] = []

    async def exec(self, container_id: str, command: list[str], *, tty: bool, stdin: bool) -> ShSession:
        proc = await asyncio.create_subprocess_exec(*command, stdin=asyncio.subprocess.PIPE,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        self.sessions.append(ShSession(proc, self.resizes))
        return self.sessions[-1]

    async def attach(self, container_id: str, *, stdin: bool, tty: bool) -> ShSession:
        return await self.exec(container_id, ["sh", "-c", "echo attached; cat"], tty=tty, stdin=stdin)

    async def port_forward(self, sandbox_id: str, port: int) -> tuple[object, object]:
        return await asyncio.open_connection("127.0.0.1", self.forward_to[port])

    async def container_status(self, container_id: str) -> ContainerStatus:
        return ContainerStatus(id=container_id, name="app", state=self.state)

    async def container_stats(self, container_id: str) -> ContainerStats:
        self.stats[container_id] = self.stats.get(container_id, 0) + 50_000_000
        return ContainerStats(cpu_usage_core_nanoseconds=self.stats[container_id],
                              memory_working_set_bytes=1 << 20, memory_rss_bytes=1 << 19)


class FakeLookup:
    """A PodLookup over one pod `default/web` with container `app` (and `init`, still waiting)."""

    def __init__(self, log_path: str, previous: str | None = None) -> None:
        self.log_path = log_path
        self.previous = previous

    def find_container(self, ns: str, pod: str, container: str) -> tuple[str, str, str, bool, str] | None:
        if (ns, pod) != ("default", "web"):
            return None
        if container == "init":
            return ("", "sb1", "", False, "ContainerCreating")
        return ("c1", "sb1", self.log_path, True, "")

    async def previous_log_path(self, ns: str, pod: str, container: str) -> str | None:
        return self.previous

    def find_sandbox(self, ns: str, pod: str) -> str | None:
        return "sb1" if (ns, pod) == ("default", "web") else None

    def list_pod_stats_targets(self) -> list[PodStatsTarget]:
        return [PodStatsTarget("default", "web", "u1", [ContainerTarget("app", "c1")])]


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[tuple[str, FakeRuntime, FakeLookup, aiohttp.ClientSession]]:
    runtime = FakeRuntime()
    lookup = FakeLookup(str(tmp_path / "0.log"))
    server = NodeServer(lookup, runtime, port=0, node_name="n1", root_dir=str(tmp_path))  # type: ignore[arg-type]
    await server.start()
    async with aiohttp.ClientSession() as session:
        yield f"http://127.0.0.1:{server.port}", runtime, lookup, session
    await server.stop()


async def _exchange(ws: aiohttp.ClientWebSocketResponse) -> tuple[bytes, bytes, dict[str, Any]]:
    out, err, status = b"", b"", {}
    async for msg in ws:
        if msg.type != aiohttp.WSMsgType.BINARY:
            continue
        ch, data = msg.data[0], msg.data[1:]
        if ch == 1:
            out += data
        elif ch == 2:
            err += data
        elif ch == 3:
            status = json.loads(data)
    return out, err, status


@pytest.mark.parametrize(("script", "out", "err", "code"), [
    ("echo hello; echo oops >&2", b"hello\n", b"oops\n", 0),
    ("exit 3", b"", b"", 3),
])
async def test_exec(env: Any, script: str, out: bytes, err: bytes, code: int) -> None:
    base, *_, session = env
    url = URL(f"{base}/exec/default/web/app").with_query(
        [("command", "sh"), ("command", "-c"), ("command", script), ("stdout", "1"), ("stderr", "1")])
    async with session.ws_connect(url, protocols=("v5.channel.k8s.io",)) as ws:
        assert ws.protocol == "v5.channel.k8s.io"
        got_out, got_err, status = await _exchange(ws)
    assert (got_out, got_err) == (out, err)
    if code == 0:
        assert status == {"metadata": {}, "status": "Success"}
    else:
        assert status["status"] == "Failure" and status["reason"] == "NonZeroExitCode"
        assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
        assert status["message"] == ("command terminated with non-zero exit code: error executing command "
                                     "[sh -c exit 3], exit code 3")


async def test_exec_stdin_close_and_resize(env: Any) -> None:
    base, runtime, _, session = env
    url = f"{base}/exec/default/web/app?command=sh&command=-c&command=tr%20a-z%20A-Z&stdin=1&stdout=1&stderr=1"
    async with session.ws_connect(url, protocols=("v5.channel.k8s.io", "v4.channel.k8s.io")) as ws:
        await ws.send_bytes(b"\x04" + json.dumps({"Width": 120, "Height": 40}).encode())
        await ws.send_bytes(b"\x00hello ")
        await ws.send_bytes(b"\x00world\n")
        await ws.send_bytes(b"\xff\x00")  # v5: close stdin → tr sees EOF and exits
        out, _, status = await asyncio.wait_for(_exchange(ws), 5)
    assert out == b"HELLO WORLD\n" and status["status"] == "Success"
    assert runtime.resizes == [(120, 40)]


async def test_exec_client_hangup_kills_and_plain_get_refused(env: Any) -> None:
    base, runtime, _, session = env
    url = URL(f"{base}/exec/default/web/app").with_query([("command", "sleep"), ("command", "30"), ("stdout", "1")])
    async with session.ws_connect(url, protocols=("v5.channel.k8s.io",)):
        await asyncio.sleep(0.2)
    (sleeper,) = runtime.sessions
    assert await asyncio.wait_for(sleeper.proc.wait(), 5) != 0
    async with session.get(url) as resp:
        assert resp.status == 400
    async with session.get(f"{base}/exec/default/web/init?command=ls") as resp:
        assert resp.status == 400


async def test_attach(env: Any) -> None:
    base, *_, session = env
    async with session.ws_connect(f"{base}/attach/default/web/app?stdin=1&stdout=1",
                                  protocols=("v4.channel.k8s.io",)) as ws:
        await ws.send_bytes(b"\x00ping\n")
        await ws.send_bytes(b"\xff\x00")
        out, _, status = await asyncio.wait_for(_exchange(ws), 5)
    assert out == b"attached\nping\n" and status["status"] == "Success"


async def test_port_forward_echo(env: Any) -> None:
    base, runtime, _, session = env

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    srv = await asyncio.start_server(echo, "127.0.0.1", 0)
    runtime.forward_to[8080] = srv.sockets[0].getsockname()[1]
    try:
        async with session.ws_connect(f"{base}/portForward/default/web?ports=8080",
                                      protocols=("v4.channel.k8s.io",)) as ws:
            first = [await ws.receive_bytes(), await ws.receive_bytes()]
            assert sorted(first) == [b"\x00" + struct.pack("<H", 8080), b"\x01" + struct.pack("<H", 8080)]
            await ws.send_bytes(b"\x00GET / HTTP/1.0\r\n")
            data = b""
            while len(data) < 16:
                msg = await asyncio.wait_for(ws.receive_bytes(), 5)
                assert msg[0] == 0
                data += msg[1:]
            assert data == b"GET / HTTP/1.0\r\n"
    finally:
        srv.close()
        await srv.wait_closed()


async def test_port_forward_unknown_pod_and_refused(env: Any) -> None:
    base, runtime, _, session = env
    async with session.get(f"{base}/portForward/default/nope?ports=80") as resp:
        assert resp.status == 404
    runtime.forward_to[81] = 1  # nothing listens on port 1
    async with session.ws_connect(f"{base}/portForward/default/web?ports=81") as ws:
        msgs = [m async for m in ws if m.type == aiohttp.WSMsgType.BINARY]
    errors = [m.data[1:] for m in msgs if m.data[0] == 1 and len(m.data) > 3]
    assert errors and b"error forwarding port 81" in errors[0]


async def test_container_logs(env: Any, tmp_path: Path) -> None:
    base, runtime, lookup, session = env
    log = Path(lookup.log_path)
    log.write_text(f"{format_time_ns(1_700_000_000_000_000_000)} stdout F hello\n")
    async with session.get(f"{base}/containerLogs/default/web/app?timestamps=true") as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
        assert await resp.text() == "2023-11-14T22:13:20.000000000Z hello\n"

    async def finish() -> None:
        await asyncio.sleep(0.3)
        with log.open("a") as f:
            f.write(f"{format_time_ns(1_700_000_001_000_000_000)} stderr F bye\n")
        await asyncio.sleep(0.2)
        runtime.state = ContainerState.EXITED

    task = asyncio.create_task(finish())
    async with session.get(f"{base}/containerLogs/default/web/app?follow=true") as resp:
        first = await resp.content.readline()
        assert first == b"hello\n"
        assert await asyncio.wait_for(resp.content.read(), 5) == b"bye\n"
    await task


@pytest.mark.parametrize(("path", "code", "message"), [
    ("/containerLogs/default/web/init", 400, 'container "init" in pod "web" is waiting to start: ContainerCreating'),
    ("/containerLogs/default/web/app?previous=true", 400, 'previous terminated container "app" in pod "web" not found'),
    ("/containerLogs/default/gone/app", 404, 'pods "gone" not found'),
    ("/containerLogs/default/web/app?sinceTime=bogus", 400, "invalid log options: invalid RFC3339 time 'bogus'"),
])
async def test_container_logs_errors(env: Any, path: str, code: int, message: str) -> None:
    base, *_, session = env
    async with session.get(base + path) as resp:
        body = await resp.json()
    assert resp.status == code and body["code"] == code and body["kind"] == "Status"
    assert body["message"] == message


async def test_previous_logs(env: Any, tmp_path: Path) -> None:
    base, _, lookup, session = env
    prev = tmp_path / "prev.log"
    prev.write_text(f"{format_time_ns(1_700_000_000_000_000_000)} stdout F from before\n")
    lookup.previous = str(prev)
    async with session.get(f"{base}/containerLogs/default/web/app?previous=1") as resp:
        assert await resp.text() == "from before\n"


async def test_stats_summary_and_healthz(env: Any) -> None:
    base, *_, session = env
    async with session.get(f"{base}/healthz") as resp:
        assert await resp.text() == "ok"
    async with session.get(f"{base}/stats/summary") as resp:
        summary = await resp.json()
    node = summary["node"]
    assert node["nodeName"] == "n1"
    assert node["cpu"]["usageCoreNanoSeconds"] > 0 and node["memory"]["workingSetBytes"] > 0
    assert node["fs"]["capacityBytes"] > 0
    (pod,) = summary["pods"]
    assert pod["podRef"] == {"name": "web", "namespace": "default", "uid": "u1"}
    (c,) = pod["containers"]
    assert c["name"] == "app" and c["memory"]["workingSetBytes"] == 1 << 20
    # 50 ms of CPU between two samples ~0.1 s apart: about half a core.
    assert 100_000_000 < c["cpu"]["usageNanoCores"] < 600_000_000
    assert pod["cpu"]["usageNanoCores"] == c["cpu"]["usageNanoCores"]
