"""The official python client's WebSocket exec (v5/v4) and port-forward (v4) against the API server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import ClientSession, WSMsgType

from tests.unit.apiserver.stream_env import Env, env_fixture

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client as k8s  # noqa: E402
from kubernetes import stream as k8s_stream  # noqa: E402

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    async for e in env_fixture(tmp_path_factory.mktemp("pystreams")):
        yield e


def _api(env: Env) -> Any:
    cfg = k8s.Configuration()
    cfg.host = env.url
    return k8s.CoreV1Api(k8s.ApiClient(cfg))


def _exec(env: Env, command: list[str], stdin: bytes | None = None) -> tuple[int | None, str, str, str]:
    api = _api(env)
    resp = k8s_stream.stream(api.connect_get_namespaced_pod_exec, "web", "default", command=command,
                             container="app", stdin=stdin is not None, stdout=True, stderr=True, tty=False,
                             _preload_content=False)
    try:
        if stdin is not None:
            resp.write_stdin(stdin.decode())
            resp.close_channel(0)
        resp.run_forever(timeout=10)
        return resp.returncode, resp.read_stdout(), resp.read_stderr(), resp.subprotocol
    finally:
        resp.close()
        api.api_client.close()


async def test_exec_v5_exit_code_and_stdin(env: Env) -> None:
    code, out, err, proto = await asyncio.to_thread(_exec, env, ["sh", "-c", "echo hi; echo bad >&2; exit 3"])
    assert (code, out, err, proto) == (3, "hi\n", "bad\n", "v5.channel.k8s.io")
    code, out, _, _ = await asyncio.to_thread(_exec, env, ["cat"], b"from stdin\n")
    assert (code, out) == (0, "from stdin\n")


def _portforward(env: Env) -> tuple[bytes, bytes]:
    api = _api(env)
    pf = k8s_stream.portforward(api.connect_get_namespaced_pod_portforward, "web", "default",
                                ports="80,8080")
    try:
        echo = pf.socket(80)
        echo.setblocking(True)
        echo.sendall(b"ping over v4")
        got = b""
        while len(got) < 12:
            got += echo.recv(100)
        http = pf.socket(8080)
        http.setblocking(True)
        http.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        page = b""
        while not page.endswith(b"pod\n"):  # v4 has no per-port close: read what the server sent
            page += http.recv(1000)
        return got, page
    finally:
        pf.close()
        api.api_client.close()


async def test_portforward_v4(env: Env) -> None:
    echoed, page = await asyncio.to_thread(_portforward, env)
    assert echoed == b"ping over v4"
    assert page.startswith(b"HTTP/1.1 200 OK") and page.endswith(b"hello from the pod\n")


async def _ws(env: Env, path: str, protocol: str) -> list[tuple[Any, Any]]:
    got: list[tuple[Any, Any]] = []
    async with ClientSession() as s, s.ws_connect(env.url + path, protocols=(protocol,)) as ws:
        assert ws.protocol == protocol
        async for msg in ws:
            if msg.type in (WSMsgType.BINARY, WSMsgType.TEXT):
                got.append((msg.type, msg.data))
    return got


async def test_exec_v4_base64_and_pre_v4(env: Env) -> None:
    path = "/api/v1/namespaces/default/pods/web/exec?container=app&stdout=true&command=sh&command=-c" \
           "&command=echo%20x%3B%20exit%202"
    msgs = await _ws(env, path, "v4.base64.channel.k8s.io")
    assert msgs[0] == (WSMsgType.TEXT, "1eAo=")  # "x\n" on stdout
    assert msgs[-1][1].startswith("3")  # base64 JSON Status on the error channel
    msgs = await _ws(env, path, "channel.k8s.io")
    assert msgs[-1][1].startswith(b"\x03command terminated with non-zero exit code")


async def test_attach_and_validation(env: Env) -> None:
    async with ClientSession() as s, s.ws_connect(
            env.url + "/api/v1/namespaces/default/pods/web/attach?container=app&stdin=true&stdout=true",
            protocols=("v5.channel.k8s.io",)) as ws:
        await ws.send_bytes(b"\x00attached\n")
        await ws.send_bytes(b"\xff\x00")
        msgs = [m.data async for m in ws if m.type == WSMsgType.BINARY]
    assert msgs[0] == b"\x01attached\n" and b"Success" in msgs[-1]
    code, body = await env.call("GET", "/api/v1/namespaces/default/pods/web/exec?container=app&command=true&stdout=true")
    assert (code, body["message"]) == (400, "Upgrade request required")
    code, body = await env.call("GET", "/api/v1/namespaces/default/pods/web/exec?stdout=true")
    assert (code, body["message"]) == (400, "you must specify at least 1 command")
    code, body = await env.call("POST", "/api/v1/namespaces/default/pods/nope/exec?command=true&stdout=1")
    assert (code, body["reason"]) == (404, "NotFound")


