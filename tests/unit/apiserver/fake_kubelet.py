"""A fake kubelet node server implementing exactly the API server's kubelet contract.

Why a fake: the stream tests must exercise the API server's protocol translation
against the one simple protocol a kubelet speaks, with real processes and sockets
behind it (exec runs `sh -c` locally, port-forward dials a local TCP server), but
without containers. The contract (see streams/kubelet_client.py):

* GET /containerLogs/{ns}/{pod}/{container}?follow&tailLines&timestamps&limitBytes... -> text/plain
* GET /exec/{ns}/{pod}/{container}?command=..&stdin=1&stdout=1&stderr=1&tty=1 -> WebSocket v5
* GET /attach/{ns}/{pod}/{container}?... -> WebSocket v5 (the "main process" is `cat`)
* GET /portForward/{ns}/{pod}?ports=80,8080 -> WebSocket v4 port-forward framing,
  plus the optional half-close `[255, 2i]` (shut down writes to port i).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web


@dataclass
class FakeContainer:
    """What the fake knows about one container: its log and whether it is running."""

    logs: list[str] = field(default_factory=list)
    follow_lines: list[str] = field(default_factory=list)  # appended during a follow, then the stream ends
    waiting_reason: str = ""  # non-empty: not started


def _status(code: int, reason: str, message: str) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}
    return web.json_response(body, status=code)


def _exit_status(code: int) -> dict[str, Any]:
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure", "message": f"command terminated with non-zero exit code: {code}",
            "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


class FakeKubelet:
    """The node server; `containers[(ns, pod, container)]`, `ports[pod port] = local port`."""

    def __init__(self) -> None:
        self.containers: dict[tuple[str, str, str], FakeContainer] = {}
        self.ports: dict[int, int] = {}
        self.resizes: list[dict[str, Any]] = []
        self.requests: list[str] = []
        self.running = 0  # exec/attach processes alive right now
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/containerLogs/{ns}/{pod}/{container}", self.logs)
        app.router.add_get("/exec/{ns}/{pod}/{container}", self.exec)
        app.router.add_get("/attach/{ns}/{pod}/{container}", self.exec)
        app.router.add_get("/portForward/{ns}/{pod}", self.portforward)
        self.runner = web.AppRunner(app, handler_cancellation=True)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def _container(self, request: web.Request) -> FakeContainer | web.Response:
        m = request.match_info
        self.requests.append(f"{request.path}?{request.query_string}")
        found = self.containers.get((m["ns"], m["pod"], m["container"]))
        if found is None:
            return _status(404, "NotFound", f"container {m['container']} not found in pod {m['pod']}")
        if found.waiting_reason:
            return _status(400, "BadRequest", f'container "{m["container"]}" in pod "{m["pod"]}" is waiting '
                                              f"to start: {found.waiting_reason}")
        return found

    async def logs(self, request: web.Request) -> web.StreamResponse:
        c = self._container(request)
        if isinstance(c, web.Response):
            return c
        q = request.query
        lines = list(c.logs)
        if "tailLines" in q:
            lines = lines[len(lines) - int(q["tailLines"]):] if int(q["tailLines"]) else []
        stamp = "2026-01-01T00:00:00.000000000Z " if q.get("timestamps") == "true" else ""
        body = "".join(stamp + line + "\n" for line in lines).encode()
        if "limitBytes" in q:
            body = body[:int(q["limitBytes"])]
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await resp.write(body)
        if q.get("follow") == "true":
            for line in c.follow_lines:
                await asyncio.sleep(0.2)
                await resp.write((stamp + line + "\n").encode())
        await resp.write_eof()
        return resp

    async def exec(self, request: web.Request) -> web.StreamResponse:
        c = self._container(request)
        if isinstance(c, web.Response):
            return c
        q = request.query
        flags = {n: q.get(n) == "1" for n in ("stdin", "stdout", "stderr", "tty")}
        command = q.getall("command", []) if "/exec/" in request.path else ["cat"]
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return _status(400, "BadRequest", "Upgrade request required")  # and nothing runs
        ws = web.WebSocketResponse(protocols=("v5.channel.k8s.io",))
        await ws.prepare(request)
        try:
            proc = await asyncio.create_subprocess_exec(
                *command, stdin=asyncio.subprocess.PIPE if flags["stdin"] else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT if flags["tty"] else asyncio.subprocess.PIPE,
                start_new_session=True)  # its own process group: killing it kills `sh -c` children too
        except OSError as exc:
            status = {"metadata": {}, "status": "Failure", "reason": "InternalError", "code": 500,
                      "message": f'exec: "{command[0]}": executable file not found in $PATH: {exc.strerror}'}
            await ws.send_bytes(b"\x03" + json.dumps(status).encode())
            await ws.close()
            return ws
        self.running += 1

        async def copy(reader: asyncio.StreamReader | None, channel: int) -> None:
            while reader is not None and (chunk := await reader.read(65536)):
                await ws.send_bytes(bytes([channel]) + chunk)

        async def read_client() -> None:
            async for msg in ws:
                if msg.type != WSMsgType.BINARY or not msg.data:
                    continue
                ch, payload = msg.data[0], msg.data[1:]
                if ch == 0 and proc.stdin is not None and not proc.stdin.is_closing():
                    proc.stdin.write(payload)
                    with contextlib.suppress(ConnectionError):
                        await proc.stdin.drain()
                elif ch == 4:
                    self.resizes.append(json.loads(payload))
                elif ch == 255 and payload[:1] == b"\x00" and proc.stdin is not None:
                    proc.stdin.close()
            if proc.returncode is None:  # the API server went away: kill the "container" process
                _kill(proc)

        reader_task = asyncio.ensure_future(read_client())
        try:
            await asyncio.gather(copy(proc.stdout, 1), copy(proc.stderr, 2))
            code = await proc.wait()
            await ws.send_bytes(b"\x03" + json.dumps(_exit_status(code)).encode())
        finally:
            reader_task.cancel()
            await asyncio.gather(reader_task, return_exceptions=True)
            if proc.returncode is None:
                _kill(proc)
                await proc.wait()
            self.running -= 1
            await ws.close()
        return ws

    async def portforward(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(f"{request.path}?{request.query_string}")
        ports = [int(p) for p in request.query.get("ports", "").split(",") if p]
        ws = web.WebSocketResponse(protocols=("v4.channel.k8s.io",))
        await ws.prepare(request)
        writers: dict[int, asyncio.StreamWriter] = {}
        pumps = []

        async def pod_to_client(i: int, reader: asyncio.StreamReader) -> None:
            while chunk := await reader.read(65536):
                await ws.send_bytes(bytes([2 * i]) + chunk)

        for i, port in enumerate(ports):
            await ws.send_bytes(bytes([2 * i]) + port.to_bytes(2, "little"))
            await ws.send_bytes(bytes([2 * i + 1]) + port.to_bytes(2, "little"))
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.ports.get(port, 1))
            except OSError as exc:
                await ws.send_bytes(bytes([2 * i + 1]) + f"failed to connect to localhost:{port}: {exc}".encode())
                continue
            writers[i] = writer
            pumps.append(asyncio.ensure_future(pod_to_client(i, reader)))

        async def client_to_pod() -> None:
            async for msg in ws:
                if msg.type != WSMsgType.BINARY or not msg.data:
                    continue
                ch, payload = msg.data[0], msg.data[1:]
                if ch == 255 and payload and payload[0] // 2 in writers:
                    writers[payload[0] // 2].write_eof()
                elif ch % 2 == 0 and ch // 2 in writers:
                    writers[ch // 2].write(payload)
                    await writers[ch // 2].drain()

        from_client = asyncio.ensure_future(client_to_pod())
        pod_side = asyncio.gather(*pumps, return_exceptions=True)
        try:
            await asyncio.wait([from_client, pod_side], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (from_client, pod_side):
                task.cancel()
            await asyncio.gather(from_client, pod_side, return_exceptions=True)
            for w in writers.values():
                w.close()
            await ws.close()
        return ws
