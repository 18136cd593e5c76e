"""Liveness, readiness and startup probes (pkg/kubelet/prober).

One `ProbeWorker` per (container instance, probe kind), as Kubernetes' prober
manager runs one worker goroutine each: it waits `initialDelaySeconds`, then
probes every `periodSeconds` with `timeoutSeconds`, and only reports a new
result after `successThreshold` consecutive successes or `failureThreshold`
consecutive failures. Liveness and readiness workers are gated on the
container having *started* (its startup probe succeeded, or it has none), and
the startup worker stops once it succeeded. Workers belong to one container
instance: the pod worker cancels them when it kills the container and makes
new ones for the next instance, so a restart resets every counter.

The probe actions themselves (`run_action`) are shared with lifecycle hooks:
exec through the runtime's `exec_sync`, httpGet with aiohttp against the pod IP
(or `host`), tcpSocket with a plain connect; named ports are resolved from the
container's `ports`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from kubeling.runtime.interface import Runtime

Obj = dict[str, Any]
log = logging.getLogger(__name__)

LIVENESS = "Liveness"
READINESS = "Readiness"
STARTUP = "Startup"

# How much probe output goes into an event message (Kubernetes caps it at 10 KiB too).
MAX_OUTPUT = 10 * 1024


def resolve_port(port: Any, container: Obj) -> int:
    """A probe/hook port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    if isinstance(port, str) and port.isdigit():
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return int(p["containerPort"])
    raise ValueError(f"port {port!r} is not a named port of container {container.get('name')!r}")


async def run_action(action: Obj, *, runtime: Runtime, container_id: str, container: Obj, pod_ip: str,
                     timeout: float) -> tuple[bool, str]:
    """Run one exec/httpGet/tcpSocket action: (succeeded, output or failure message)."""
    try:
        if "exec" in action:
            command = list((action["exec"] or {}).get("command") or [])
            try:
                code, out = await runtime.exec_sync(container_id, command, timeout)
            except TimeoutError:
                return False, f"command {command!r} timed out"
            text = out.decode("utf-8", "replace")[:MAX_OUTPUT]
            return code == 0, text if text or code == 0 else f"command {command!r} exited with {code}"
        if "httpGet" in action:
            return await _http_get(action["httpGet"] or {}, container=container, pod_ip=pod_ip, timeout=timeout)
        if "tcpSocket" in action:
            spec = action["tcpSocket"] or {}
            host = spec.get("host") or pod_ip or "127.0.0.1"
            port = resolve_port(spec.get("port"), container)
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
            except TimeoutError:
                return False, f"dial tcp {host}:{port}: i/o timeout"
            except OSError as err:
                reason = os.strerror(err.errno).lower() if err.errno else str(err)
                return False, f"dial tcp {host}:{port}: connect: {reason}"
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return True, ""
        if "grpc" in action:
            return False, "grpc probes are not supported by this kubelet"
        return False, "probe has no action (exec, httpGet or tcpSocket)"
    except ValueError as err:
        return False, str(err)


async def _http_get(spec: Obj, *, container: Obj, pod_ip: str, timeout: float) -> tuple[bool, str]:
    host = spec.get("host") or pod_ip or "127.0.0.1"
    port = resolve_port(spec.get("port"), container)
    scheme = str(spec.get("scheme") or "HTTP").lower()
    path = spec.get("path") or "/"
    if not path.startswith("/"):
        path = "/" + path
    url = f"{scheme}://{host}:{port}{path}"
    headers = {"User-Agent": "kube-probe/1.33", "Accept": "*/*"}
    for h in spec.get("httpHeaders") or []:
        headers[h.get("name", "")] = h.get("value", "")
    try:
        # A fresh session per probe, like Kubernetes (keep-alive off): a probe must not reuse a dead socket.
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session, \
                session.get(url, headers=headers, ssl=False, allow_redirects=True) as resp:
            body = (await resp.content.read(MAX_OUTPUT)).decode("utf-8", "replace")
            if 200 <= resp.status < 400:
                return True, body
            return False, f"HTTP probe failed with statuscode: {resp.status}"
    except TimeoutError:
        return False, f'Get "{url}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)'
    except aiohttp.ClientConnectorError as err:
        code = getattr(err.os_error, "errno", None)
        reason = os.strerror(code).lower() if code else str(err)  # "connection refused", as Go words it
        return False, f'Get "{url}": dial tcp {host}:{port}: connect: {reason}'
    except aiohttp.ClientError as err:
        return False, f'Get "{url}": {err}'


ResultCallback = Callable[[str, bool], Awaitable[None] | None]
FailureCallback = Callable[[str, str], Awaitable[None] | None]


class ProbeWorker:
    """Probes one container instance periodically and reports threshold crossings."""

    def __init__(self, kind: str, probe: Obj, *, runtime: Runtime, container_id: str, container: Obj,
                 pod_ip: Callable[[], str], started: Callable[[], bool], on_result: ResultCallback,
                 on_failure: FailureCallback, time_scale: float = 1.0) -> None:
        self.kind = kind
        self.probe = probe
        self.runtime = runtime
        self.container_id = container_id
        self.container = container
        self._pod_ip = pod_ip
        self._started = started
        self._on_result = on_result
        self._on_failure = on_failure
        self._scale = time_scale  # tests shrink the probe's seconds
        self._task: asyncio.Task[None] | None = None
        # Kubernetes' initial results: readiness starts failed, liveness succeeded, startup unknown.
        self.result: bool | None = {READINESS: False, LIVENESS: True}.get(kind)

    def _seconds(self, key: str, default: float, minimum: float = 0) -> float:
        return max(float(self.probe.get(key, default) or default), minimum) * self._scale

    def start(self) -> None:
        """Start probing in the background."""
        self._task = asyncio.create_task(self._run(), name=f"probe-{self.kind}-{self.container_id}")

    async def stop(self) -> None:
        """Stop probing (the container is being killed or the pod goes away)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def _run(self) -> None:
        try:
            await self._loop()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s probe worker for container %s crashed", self.kind, self.container_id)

    async def _loop(self) -> None:
        period = self._seconds("periodSeconds", 10, 1)
        timeout = self._seconds("timeoutSeconds", 1, 1)
        success_threshold = int(self.probe.get("successThreshold") or 1)
        failure_threshold = int(self.probe.get("failureThreshold") or 3)
        await asyncio.sleep(self._seconds("initialDelaySeconds", 0))
        successes = failures = 0
        while True:
            if self.kind != STARTUP and not self._started():
                await asyncio.sleep(period)  # liveness and readiness wait for the startup probe
                continue
            ok, output = await run_action(self.probe, runtime=self.runtime, container_id=self.container_id,
                                          container=self.container, pod_ip=self._pod_ip(), timeout=timeout)
            if ok:
                successes, failures = successes + 1, 0
            else:
                successes, failures = 0, failures + 1
                await _call(self._on_failure, self.kind, output)
            new: bool | None = self.result
            if ok and successes >= success_threshold:
                new = True
            elif not ok and failures >= failure_threshold:
                new = False
            if new != self.result:
                self.result = new
                await _call(self._on_result, self.kind, bool(new))
            if self.kind == STARTUP and self.result:
                return  # a startup probe runs until it first succeeds
            if self.kind in (LIVENESS, STARTUP) and self.result is False:
                return  # on hold until the container is restarted (a new worker)
            await asyncio.sleep(period)


async def _call(callback: Callable[..., Any], *args: Any) -> None:
    result = callback(*args)
    if asyncio.iscoroutine(result):
        await result
