"""Real kubectl 1.27-1.33 against the API server and a fake kubelet: logs, exec, port-forward.

These pin the per-version protocols: exec is SPDY on 1.27-1.29 (v4 offered by 1.27/1.28,
v5 by 1.29) and WebSocket v5 from 1.30; port-forward is raw SPDY up to 1.30 and SPDY
tunnelled in WebSocket from 1.31.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.unit.apiserver.stream_env import Env, env_fixture, kubectl_path

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(not os.path.exists(kubectl_path(33)), reason="kubectl binaries not installed"),
]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    async for e in env_fixture(tmp_path_factory.mktemp("streams")):
        yield e


async def test_logs(env: Env) -> None:
    code, out, err = await env.kubectl(33, "logs", "web")
    assert (code, out) == (0, "line 1\nline 2\nline 3\n"), err
    code, out, err = await env.kubectl(27, "logs", "web", "-c", "app", "--tail=1", "--timestamps")
    assert (code, out) == (0, "2026-01-01T00:00:00.000000000Z line 3\n"), err


async def test_logs_follow_ends_with_the_container(env: Env) -> None:
    code, out, err = await env.kubectl(30, "logs", "-f", "web")
    assert code == 0, err
    assert out == "line 1\nline 2\nline 3\nlater 1\nlater 2\n"


async def test_logs_errors(env: Env) -> None:
    code, _, err = await env.kubectl(33, "logs", "web", "-c", "side")
    assert code == 1
    assert 'container "side" in pod "web" is waiting to start: ContainerCreating' in err
    code, _, err = await env.kubectl(33, "logs", "web", "-c", "nope")
    assert code == 1 and "container nope is not valid for pod web" in err
    code, out, _ = await env.kubectl(33, "logs", "pending")  # not scheduled: empty, like kube-apiserver
    assert (code, out) == (0, "")


@pytest.mark.parametrize("minor", [27, 28, 29, 30, 31, 32, 33])
async def test_exec_exit_code(env: Env, minor: int) -> None:
    code, out, err = await env.kubectl(minor, "exec", "web", "--", "sh", "-c", "echo hi; echo oops >&2; exit 3")
    assert code == 3, err
    assert out == "hi\n"
    assert "oops" in err and "command terminated with exit code 3" in err


@pytest.mark.parametrize("minor", [27, 29, 31, 33])
async def test_exec_stdin(env: Env, minor: int) -> None:
    data = b"".join(b"line %d of the input\n" % i for i in range(5000))  # > 64 KiB: flow control
    code, out, err = await env.kubectl(minor, "exec", "-i", "web", "--", "cat", stdin=data)
    assert code == 0, err
    assert out.encode() == data


async def test_exec_spdy_fallback_when_websockets_disabled(env: Env) -> None:
    code, out, err = await env.kubectl(33, "exec", "web", "--", "sh", "-c", "echo fallback",
                                       env={"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"})
    assert (code, out) == (0, "fallback\n"), err


async def test_exec_errors(env: Env) -> None:
    code, _, err = await env.kubectl(33, "exec", "web", "-c", "nope", "--", "true")
    assert code == 1 and "container nope is not valid for pod web" in err
    code, _, err = await env.kubectl(27, "exec", "web", "-c", "side", "--", "true")
    assert code == 1 and "is waiting to start: ContainerCreating" in err
    code, _, err = await env.kubectl(33, "exec", "pending", "--", "true")
    assert code == 1 and "pod pending does not have a host assigned" in err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _roundtrip(port: int, payload: bytes) -> bytes:
    for _ in range(100):  # wait until kubectl listens
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            break
        except OSError:
            await asyncio.sleep(0.1)
    else:
        raise AssertionError("kubectl port-forward never listened")
    writer.write(payload)
    await writer.drain()
    writer.write_eof()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return data


@pytest.mark.parametrize("minor", [27, 28, 29, 30, 31, 32, 33])
async def test_port_forward(env: Env, minor: int) -> None:
    p1, p2 = _free_port(), _free_port()
    proc = await asyncio.create_subprocess_exec(
        kubectl_path(minor), "--kubeconfig", str(env.kubeconfig), "port-forward", "pod/web", f"{p1}:80",
        f"{p2}:8080", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "HOME": str(env.tmp)})
    try:
        big = os.urandom(200_000)
        assert await _roundtrip(p1, big) == big
        assert await _roundtrip(p1, b"again") == b"again"  # a second connection on the same session
        reply = await _roundtrip(p2, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 200 OK") and reply.endswith(b"hello from the pod\n")
        assert proc.returncode is None
    finally:
        proc.terminate()
        _, err = await asyncio.wait_for(proc.communicate(), 10)
    assert b"error" not in err.lower(), err




@pytest.mark.parametrize("minor", [27, 33])
async def test_exec_tty_sends_terminal_size(env: Env, minor: int) -> None:
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 31, 101, 0, 0))
    env.kubelet.resizes.clear()
    proc = await asyncio.create_subprocess_exec(
        kubectl_path(minor), "--kubeconfig", str(env.kubeconfig), "exec", "-it", "web", "-c", "app", "--",
        "sh", "-c", "sleep 0.5; echo tty-ok; exit 4", stdin=slave, stdout=slave, stderr=slave,
        env={**os.environ, "HOME": str(env.tmp)})
    os.close(slave)
    try:
        code = await asyncio.wait_for(proc.wait(), 20)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    out = b""
    try:
        while chunk := os.read(master, 4096):
            out += chunk
    except OSError:
        pass
    os.close(master)
    assert code == 4, out
    assert b"tty-ok" in out
    assert {"Width": 101, "Height": 31} in env.kubelet.resizes


@pytest.mark.parametrize("minor", [28, 32])
async def test_attach_stdin(env: Env, minor: int) -> None:
    code, out, err = await env.kubectl(minor, "attach", "-i", "web", "-c", "app", stdin=b"to the main process\n")
    assert code == 0, err
    assert out == "to the main process\n"


@pytest.mark.parametrize("minor", [27, 33])
async def test_exec_ends_when_the_client_goes_away(env: Env, minor: int) -> None:
    proc = await asyncio.create_subprocess_exec(
        kubectl_path(minor), "--kubeconfig", str(env.kubeconfig), "exec", "web", "-c", "app", "--",
        "sh", "-c", "echo started; sleep 30", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "HOME": str(env.tmp)})
    assert proc.stdout is not None
    assert await asyncio.wait_for(proc.stdout.readline(), 10) == b"started\n"
    assert env.kubelet.running == 1
    proc.kill()
    await proc.wait()
    for _ in range(50):
        if env.kubelet.running == 0:
            break
        await asyncio.sleep(0.1)
    assert env.kubelet.running == 0  # the API server hung up on the kubelet, which killed the process


@pytest.mark.parametrize("minor", [27, 33])
async def test_port_forward_reports_the_kubelet_error(env: Env, minor: int) -> None:
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        kubectl_path(minor), "--kubeconfig", str(env.kubeconfig), "port-forward", "pod/web", f"{port}:9999",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, "HOME": str(env.tmp)})
    try:
        assert await _roundtrip(port, b"x") == b""
        _, err = await asyncio.wait_for(proc.communicate(), 10)  # kubectl gives up: lost connection to pod
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 1
    assert b"an error occurred forwarding" in err and b"failed to connect to localhost:9999" in err


@pytest.mark.parametrize("minor", [27, 33])
async def test_exec_failure_status_is_printed(env: Env, minor: int) -> None:
    code, _, err = await env.kubectl(minor, "exec", "web", "-c", "app", "--", "no-such-binary")
    assert code == 1, err
    assert 'exec: "no-such-binary": executable file not found in $PATH' in err


@pytest.mark.parametrize("minor", [27, 33])
async def test_exec_large_output(env: Env, minor: int) -> None:
    code, out, err = await env.kubectl(minor, "exec", "web", "-c", "app", "--", "sh", "-c",
                                       "head -c 3000000 /dev/zero | tr '\\0' x")
    assert code == 0, err
    assert out == "x" * 3_000_000
