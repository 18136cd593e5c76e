"""Fixtures for root-mode network tests: every test builds its own "node" network namespaces.

Nothing touches the machine's own network: all bridges, veths, routes, iptables/nft
rules and addresses (private ranges included) live in namespaces named
`kl-test-<random>-…` that the fixtures create and always delete, also on failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import socket
import subprocess
from collections.abc import Callable, Iterator

import pytest

from kubeling.network.cni import DEFAULT_BIN_DIRS
from kubeling.network.netns import delete_netns, list_netns, socket_in_netns

PLUGINS = ("bridge", "host-local", "loopback", "portmap")


def _plugin_dir() -> str | None:
    for d in DEFAULT_BIN_DIRS:
        if all(os.access(os.path.join(d, p), os.X_OK) for p in PLUGINS):
            return d
    return None


def _netns_works() -> str:
    """'' when `ip netns add` works here, else why not."""
    name = f"kl-test-probe-{secrets.token_hex(3)}"
    try:
        r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True, timeout=10)
        if r.returncode != 0:
            return f"ip netns add failed: {r.stderr.strip()}"
        return ""
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)


def root_skip_reason() -> str:
    if os.geteuid() != 0:
        return "needs root (network namespaces, bridges, iptables)"
    if not shutil.which("ip"):
        return "needs iproute2 (`ip`)"
    if _plugin_dir() is None:
        return f"needs the CNI plugins {PLUGINS} in {DEFAULT_BIN_DIRS} (apt-get install containernetworking-plugins)"
    if not shutil.which("iptables"):
        return "needs iptables (bridge ipMasq and portmap use it)"
    return _netns_works()


@pytest.fixture(scope="session")
def plugin_dir() -> str:
    reason = root_skip_reason()
    if reason:
        pytest.skip(reason)
    d = _plugin_dir()
    assert d is not None
    return d


@pytest.fixture
def netns_prefix(plugin_dir: str) -> Iterator[str]:
    """A unique `kl-test-<random>-` prefix; every namespace with it is deleted after the test."""
    prefix = f"kl-test-{secrets.token_hex(3)}-"
    yield prefix
    for name in sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else []:
        if name.startswith(prefix):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
    left = [n for n in os.listdir("/run/netns") if n.startswith(prefix)] if os.path.isdir("/run/netns") else []
    assert left == [], f"network namespaces left behind: {left}"


@pytest.fixture
def make_node(netns_prefix: str) -> Callable[[str], str]:
    """Create a "node" namespace `<prefix><suffix>` with `lo` up; returns its name."""

    def make(suffix: str) -> str:
        name = netns_prefix + suffix
        subprocess.run(["ip", "netns", "add", name], check=True, timeout=10)
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, timeout=10)
        return name

    return make


def ip(*args: str) -> str:
    """Run `ip …` (always with `-n <test netns>` in the callers) and return stdout."""
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=10).stdout


async def leftover(prefix: str) -> list[str]:
    return [n for n in await list_netns() if n.startswith(prefix)]


async def cleanup(*names: str) -> None:
    for n in names:
        with contextlib.suppress(Exception):
            await delete_netns(n)


class EchoServer:
    """A TCP server inside a namespace that answers "<peer ip>|<data>" once per connection."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.task = asyncio.create_task(self._serve())

    @classmethod
    async def start(cls, netns: str, host: str, port: int) -> EchoServer:
        s = await socket_in_netns(netns)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        s.listen(16)
        return cls(s)

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            conn, peer = await loop.sock_accept(self.sock)
            with conn:
                data = await loop.sock_recv(conn, 1024)
                await loop.sock_sendall(conn, f"{peer[0]}|".encode() + data)

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        self.sock.close()


async def tcp_ask(netns: str, host: str, port: int, data: bytes = b"hello", timeout: float = 5.0) -> str:
    """Connect from inside `netns`, send `data`, return the reply."""
    loop = asyncio.get_running_loop()
    s = await socket_in_netns(netns)
    with s:
        await asyncio.wait_for(loop.sock_connect(s, (host, port)), timeout)
        await loop.sock_sendall(s, data)
        return (await asyncio.wait_for(loop.sock_recv(s, 1024), timeout)).decode()
