"""The kubelet's node HTTP server: logs, exec, attach, port-forward, stats, healthz.

Why: the API server does not touch containers; for `pods/log`, `pods/exec`,
`pods/attach` and `pods/portforward` it proxies to this server on the node that
runs the pod (as Kubernetes proxies to kubelet :10250). The streaming protocol is
the Kubernetes WebSocket channel protocol (`v5.channel.k8s.io` / `v4`): every
binary message is one channel byte plus payload — 0 stdin, 1 stdout, 2 stderr,
3 status (a metav1.Status JSON, the exit code in `details.causes`), 4 resize,
255 close-a-channel (v5). Port-forward uses `v4.channel.k8s.io` with a data and
an error channel per port, each opened with the port as little-endian uint16.

The server does not know pods by itself: the Kubelet implements `PodLookup`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import struct
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol

import orjson
from aiohttp import WSMsgType, web

from kubeling.kubelet.logs import LogOptions, parse_time_ns, read_logs
from kubeling.kubelet.stats import PodStatsTarget, StatsCollector
from kubeling.runtime.interface import ContainerState, Runtime, StreamSession

log = logging.getLogger(__name__)

STREAM_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
PORT_FORWARD_PROTOCOLS = ("v4.channel.k8s.io", "portforward.k8s.io")
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
OUTPUT_GRACE = 1.0  # after exit, how long to wait for the output streams to reach EOF

ContainerRef = tuple[str, str, str, bool, str]  # (container id, sandbox id, log path, running, waiting reason)


class PodLookup(Protocol):
    """What the node server asks the Kubelet (methods may be plain or async).

    * `find_container`: the current (or, while waiting to restart, the most recent) attempt of a
      container of a pod on this node —
      (container id, sandbox id, log path, running, waiting reason) — or None when the
      pod (or container) is unknown here. Before the first start, container id and log
      path are "" and the waiting reason is e.g. "ContainerCreating".
    * `previous_log_path`: the log of the previous attempt (restartCount - 1), or None.
    * `find_sandbox`: the pod's sandbox id (for port-forward), or None.
    * `list_pod_stats_targets`: the pods and running containers for /stats/summary.
    """

    def find_container(self, namespace: str, pod: str, container: str) -> ContainerRef | None: ...
    def previous_log_path(self, namespace: str, pod: str, container: str) -> str | None: ...
    def find_sandbox(self, namespace: str, pod: str) -> str | None: ...
    def list_pod_stats_targets(self) -> list[PodStatsTarget]: ...


async def _call(fn: Any, *args: Any) -> Any:
    result = fn(*args)
    return await result if inspect.isawaitable(result) else result


def _parse_bool(v: str | None) -> bool:
    return (v or "").strip() in ("1", "t", "T", "true", "TRUE", "True")


def _status_response(code: int, reason: str, message: str) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}
    return web.Response(status=code, body=orjson.dumps(body) + b"\n", content_type="application/json")


def exit_status(code: int, command: list[str] | None) -> dict[str, Any]:
    """The channel-3 status for an exit code, as Kubernetes' exec handler words it."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    what = f"error executing command [{' '.join(command)}], exit code {code}" if command \
        else f"exit code {code}"
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: {what}",
            "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


class NodeServer:
    """The kubelet's HTTP server (aiohttp); `port` is the bound port once started."""

    def __init__(self, lookup: PodLookup, runtime: Runtime, *, host: str = "127.0.0.1", port: int = 10250,
                 node_name: str = "", root_dir: str = "/") -> None:
        self.lookup = lookup
        self.runtime = runtime
        self.host = host
        self.port = port
        self.stats = StatsCollector(runtime, node_name=node_name, root_dir=root_dir)
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/containerLogs/{ns}/{pod}/{container}", self._logs)
        app.router.add_route("*", "/exec/{ns}/{pod}/{container}", self._exec)
        app.router.add_route("*", "/attach/{ns}/{pod}/{container}", self._attach)
        app.router.add_route("*", "/portForward/{ns}/{pod}", self._port_forward)
        app.router.add_get("/stats/summary", self._summary)
        return app

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app(), handle_signals=False, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self.host, self.port)
        await self._site.start()
        server = getattr(self._site, "_server", None)
        if server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- plain endpoints --------------------------------------------------------------------------

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _summary(self, request: web.Request) -> web.Response:
        targets = await _call(self.lookup.list_pod_stats_targets)
        return web.json_response(body=orjson.dumps(await self.stats.summary(list(targets))))

    async def _find(self, request: web.Request) -> tuple[ContainerRef | None, web.Response | None]:
        ns, pod, name = (request.match_info[k] for k in ("ns", "pod", "container"))
        ref = await _call(self.lookup.find_container, ns, pod, name)
        if ref is None:
            return None, _status_response(404, "NotFound", f'pods "{pod}" not found')
        return ref, None

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        ns, pod, name = (request.match_info[k] for k in ("ns", "pod", "container"))
        q = request.query
        try:
            opts = LogOptions(
                follow=_parse_bool(q.get("follow")),
                tail_lines=int(q["tailLines"]) if q.get("tailLines") else None,
                timestamps=_parse_bool(q.get("timestamps")),
                limit_bytes=int(q["limitBytes"]) if q.get("limitBytes") else None)
            if q.get("sinceSeconds"):
                opts.since_ns = int((time.time() - int(q["sinceSeconds"])) * 1e9)
            elif q.get("sinceTime"):
                opts.since_ns = parse_time_ns(q["sinceTime"])
        except ValueError as err:
            return _status_response(400, "BadRequest", f"invalid log options: {err}")
        ref, error = await self._find(request)
        if error is not None or ref is None:
            return error or _status_response(404, "NotFound", f'pods "{pod}" not found')
        container_id, _sandbox, log_path, _running, waiting = ref
        if _parse_bool(q.get("previous")):
            path = await _call(self.lookup.previous_log_path, ns, pod, name)
            if not path:
                return _status_response(400, "BadRequest",
                                        f'previous terminated container "{name}" in pod "{pod}" not found')
            opts.follow = False
            container_id = ""
        else:
            if not container_id:
                return _status_response(400, "BadRequest", f'container "{name}" in pod "{pod}" is waiting to '
                                        f"start: {waiting or 'ContainerCreating'}")
            path = log_path

        async def is_running() -> bool:
            if not container_id:
                return False
            st = await self.runtime.container_status(container_id)
            return st is not None and st.state in (ContainerState.RUNNING, ContainerState.CREATED)

        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        gen = read_logs(path, opts, is_running)
        try:
            async for chunk in gen:
                await resp.write(chunk)
            await resp.write_eof()
        except ConnectionError:
            pass  # the client (kubectl logs -f) went away: an ordinary end of a follow
        finally:
            await gen.aclose()
        return resp

    # -- exec / attach ----------------------------------------------------------------------------

    async def _exec(self, request: web.Request) -> web.StreamResponse:
        command = request.query.getall("command", [])
        if not command:
            return _status_response(400, "BadRequest", "you must specify at least 1 command")
        return await self._stream(request, command)

    async def _attach(self, request: web.Request) -> web.StreamResponse:
        return await self._stream(request, None)

    async def _stream(self, request: web.Request, command: list[str] | None) -> web.StreamResponse:
        ref, error = await self._find(request)
        if error is not None or ref is None:
            return error or _status_response(404, "NotFound", "not found")
        container_id, _s, _l, running, _w = ref
        if not container_id or not running:
            return _status_response(400, "BadRequest", f'container not found ("{request.match_info["container"]}")')
        q = request.query
        ws = web.WebSocketResponse(protocols=STREAM_PROTOCOLS, autoping=True, max_msg_size=0)
        if not ws.can_prepare(request).ok:
            return _status_response(400, "BadRequest", "Upgrade request required (WebSocket channel protocol)")
        want_stdin, want_stdout = _parse_bool(q.get("stdin")), _parse_bool(q.get("stdout"))
        want_stderr, tty = _parse_bool(q.get("stderr")), _parse_bool(q.get("tty"))
        await ws.prepare(request)
        try:
            if command is not None:
                session = await self.runtime.exec(container_id, command, tty=tty, stdin=want_stdin)
            else:
                session = await self.runtime.attach(container_id, stdin=want_stdin, tty=tty)
        except Exception as err:  # the runtime's failure becomes the status message, as Kubernetes does
            await _send(ws, ERROR, json.dumps({"metadata": {}, "status": "Failure", "message": str(err),
                                               "reason": "InternalError"}).encode())
            await ws.close()
            return ws
        await _run_session(ws, session, command, want_stdout, want_stderr and not tty)
        return ws

    # -- port-forward -----------------------------------------------------------------------------

    async def _port_forward(self, request: web.Request) -> web.StreamResponse:
        ns, pod = request.match_info["ns"], request.match_info["pod"]
        ports: list[int] = []
        try:
            for value in request.query.getall("ports", []):
                ports.extend(int(p) for p in value.split(",") if p.strip())
        except ValueError:
            return _status_response(400, "BadRequest", "invalid port in ports parameter")
        if not ports or any(not 0 < p < 65536 for p in ports):
            return _status_response(400, "BadRequest", "query parameter \"port\" is required")
        find_sandbox = getattr(self.lookup, "find_sandbox", None)
        sandbox = await _call(find_sandbox, ns, pod) if find_sandbox else None
        if not sandbox:
            return _status_response(404, "NotFound", f'pods "{pod}" not found')
        ws = web.WebSocketResponse(protocols=PORT_FORWARD_PROTOCOLS, autoping=True, max_msg_size=0)
        if not ws.can_prepare(request).ok:
            return _status_response(400, "BadRequest", "Upgrade request required (WebSocket channel protocol)")
        await ws.prepare(request)
        await _run_port_forward(ws, self.runtime, sandbox, ports)
        return ws


async def _send(ws: web.WebSocketResponse, channel: int, payload: bytes) -> None:
    if not ws.closed:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_bytes(bytes([channel]) + payload)


async def _pump(ws: web.WebSocketResponse, channel: int, source: AsyncIterator[bytes], forward: bool) -> None:
    async for chunk in source:
        if forward and chunk:
            await _send(ws, channel, chunk)


async def _run_session(ws: web.WebSocketResponse, session: StreamSession, command: list[str] | None,
                       stdout: bool, stderr: bool) -> None:
    """Wire one exec/attach session to the WebSocket until the process exits (or the client leaves)."""
    pumps = [asyncio.create_task(_pump(ws, STDOUT, session.stdout(), stdout)),
             asyncio.create_task(_pump(ws, STDERR, session.stderr(), stderr))]

    async def reader() -> None:
        async for msg in ws:
            if msg.type != WSMsgType.BINARY or not msg.data:
                continue
            channel, payload = msg.data[0], msg.data[1:]
            # A process that exits while stdin is still arriving must not look like a client hang-up.
            with contextlib.suppress(OSError, RuntimeError, ValueError, KeyError, TypeError):
                if channel == STDIN and payload:
                    await session.write_stdin(payload)
                elif channel == RESIZE and payload:
                    size = json.loads(payload)
                    await session.resize(int(size["Width"]), int(size["Height"]))
                elif channel == CLOSE and payload[:1] == bytes([STDIN]):
                    await session.close_stdin()

    read_task = asyncio.create_task(reader())
    wait_task = asyncio.create_task(session.wait())
    try:
        done, _ = await asyncio.wait({read_task, wait_task}, return_when=asyncio.FIRST_COMPLETED)
        if wait_task not in done:  # the client went away: stop the process
            await session.kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(wait_task, 5)
            return
        code = wait_task.result()
        await asyncio.wait(pumps, timeout=OUTPUT_GRACE)
        await _send(ws, ERROR, json.dumps(exit_status(code, command)).encode())
        await ws.close()
    finally:
        for t in (*pumps, read_task, wait_task):
            t.cancel()
        await asyncio.gather(*pumps, read_task, wait_task, return_exceptions=True)


async def _run_port_forward(ws: web.WebSocketResponse, runtime: Runtime, sandbox: str, ports: list[int]) -> None:
    """Serve the v4 port-forward protocol: one TCP connection into the pod per requested port."""
    writers: dict[int, asyncio.StreamWriter] = {}
    tasks: list[asyncio.Task[None]] = []
    for i, port in enumerate(ports):
        prefix = struct.pack("<H", port)
        await _send(ws, 2 * i, prefix)
        await _send(ws, 2 * i + 1, prefix)
    for i, port in enumerate(ports):
        try:
            reader, writer = await runtime.port_forward(sandbox, port)
        except Exception as err:
            await _send(ws, 2 * i + 1, f"error forwarding port {port} to pod {sandbox}: {err}".encode())
            continue
        writers[2 * i] = writer  # type: ignore[assignment]
        tasks.append(asyncio.create_task(_pod_to_ws(ws, reader, 2 * i)))  # type: ignore[arg-type]

    async def client_to_pod() -> None:
        async for msg in ws:
            if msg.type != WSMsgType.BINARY or len(msg.data) < 2:
                continue
            if msg.data[0] == 255:
                # [255, channel]: the client half-closed that connection; pass the EOF on
                # and keep relaying the pod's answer until the pod closes.
                closing = writers.get(msg.data[1])
                if closing is not None and closing.can_write_eof() and not closing.is_closing():
                    with contextlib.suppress(OSError):
                        closing.write_eof()
                continue
            writer = writers.get(msg.data[0])
            if writer is not None and not writer.is_closing():
                writer.write(msg.data[1:])
                with contextlib.suppress(ConnectionError):
                    await writer.drain()

    inbound = asyncio.create_task(client_to_pod())
    try:
        if tasks:
            await asyncio.wait([inbound, asyncio.gather(*tasks)], return_when=asyncio.FIRST_COMPLETED)
        else:
            await asyncio.wait([inbound], timeout=0.5)
    finally:
        inbound.cancel()
        for t in tasks:
            t.cancel()
        await asyncio.gather(inbound, *tasks, return_exceptions=True)
        for writer in writers.values():
            writer.close()
        await ws.close()


async def _pod_to_ws(ws: web.WebSocketResponse, reader: asyncio.StreamReader, channel: int) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            await _send(ws, channel, data)
