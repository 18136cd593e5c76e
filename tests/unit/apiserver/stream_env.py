"""A live API server + fake kubelet + local TCP servers, for the stream integration tests.

The API server listens on a real 127.0.0.1 port (kubectl and the python client need
one); a Node points at the fake kubelet and a Running Pod `web` is bound to it with
containers `app` and `side`. Pod port 80 is an echo server, pod port 8080 answers HTTP.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
from aiohttp import ClientSession, web

from kubeling.apiserver.app import APIServer
from kubeling.storage.sqlite import SQLiteStore
from tests.unit.apiserver.fake_kubelet import FakeContainer, FakeKubelet

KUBECTL = "/usr/lib/google-cloud-sdk/bin/kubectl.1.{minor}"


def kubectl_path(minor: int) -> str:
    return KUBECTL.format(minor=minor)


class Env:
    """Everything a stream test needs; `kubectl()` runs a real kubectl against the server."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.server = APIServer(SQLiteStore(str(tmp / "state.db")))
        self.kubelet = FakeKubelet()
        self.runner: web.AppRunner | None = None
        self.port = 0
        self.kubeconfig = tmp / "kubeconfig"
        self.tcp_servers: list[asyncio.Server] = []

    async def start(self) -> None:
        await self.server.start()
        self.runner = web.AppRunner(self.server.app())
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        await self.kubelet.start()
        echo = await asyncio.start_server(_echo, "127.0.0.1", 0)
        http = await asyncio.start_server(_http, "127.0.0.1", 0)
        self.tcp_servers += [echo, http]
        self.kubelet.ports = {80: echo.sockets[0].getsockname()[1], 8080: http.sockets[0].getsockname()[1]}
        self.kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\ncurrent-context: t\n"
            f"clusters: [{{name: t, cluster: {{server: 'http://127.0.0.1:{self.port}'}}}}]\n"
            "users: [{name: t, user: {}}]\ncontexts: [{name: t, context: {cluster: t, user: t}}]\n")
        await self._seed()

    async def stop(self) -> None:
        for s in self.tcp_servers:
            s.close()
        await self.kubelet.stop()
        if self.runner is not None:
            await self.runner.cleanup()
        await self.server.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with ClientSession() as s, s.request(method, self.url + path, data=orjson.dumps(body) if body else None,
                                                   headers={"Content-Type": "application/json"}) as r:
            raw = await r.read()
            try:
                return r.status, orjson.loads(raw)
            except orjson.JSONDecodeError:
                return r.status, raw

    async def _seed(self) -> None:
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
                "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                           "daemonEndpoints": {"kubeletEndpoint": {"Port": self.kubelet.port}}}}
        code, out = await self.call("POST", "/api/v1/nodes", node)
        assert code == 201, out
        code, out = await self.call("PUT", "/api/v1/nodes/n1/status", {**out, "status": node["status"]})
        assert code == 200, out
        for name, node_name in (("web", "n1"), ("pending", "")):
            pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
                   "spec": {"nodeName": node_name, "containers": [{"name": "app", "image": "busybox", "stdin": True},
                                                                  {"name": "side", "image": "busybox"}]}}
            code, out = await self.call("POST", "/api/v1/namespaces/default/pods", pod)
            assert code == 201, out
            out["status"] = {"phase": "Running" if node_name else "Pending"}
            code, out = await self.call("PUT", f"/api/v1/namespaces/default/pods/{name}/status", out)
            assert code == 200, out
        self.kubelet.containers[("default", "web", "app")] = FakeContainer(
            logs=["line 1", "line 2", "line 3"], follow_lines=["later 1", "later 2"])
        self.kubelet.containers[("default", "web", "side")] = FakeContainer(waiting_reason="ContainerCreating")

    async def kubectl(self, minor: int, *args: str, stdin: bytes | None = None, timeout: float = 30,
                      env: dict[str, str] | None = None) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            kubectl_path(minor), "--kubeconfig", str(self.kubeconfig), *args,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "HOME": str(self.tmp), **(env or {})})
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        return proc.returncode or 0, out.decode(), err.decode()


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def _http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.readuntil(b"\r\n\r\n")
    body = b"hello from the pod\n"
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
    await writer.drain()
    writer.close()


async def env_fixture(tmp: Path) -> AsyncIterator[Env]:
    env = Env(tmp)
    await env.start()
    try:
        yield env
    finally:
        await env.stop()
