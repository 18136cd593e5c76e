"""Named network namespaces: create, delete, and run code or processes inside one.

Why named (`ip netns add`, bind-mounted under /run/netns): a network namespace dies
with its last process unless something pins it. The pod sandbox must outlive container
restarts (the pod IP stays while containers come and go), and CNI wants a path
(`CNI_NETNS`) it can open — a bind mount gives both, and `ip netns` is the tool every
operator already uses to look inside.

Why a dedicated thread for Python code: `setns(2)` with CLONE_NEWNET changes the
namespace of the calling *thread* only. Doing it on the event loop thread would move
every other coroutine into the pod; doing it on a pooled thread would leak the
namespace into whatever the pool runs next. So each call gets a fresh thread that
enters the namespace, runs the callable and exits. A socket keeps the namespace it was
created in, so `socket_in_netns` lets asyncio code serve or dial inside a pod while the
loop itself stays on the host.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import socket
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

NETNS_RUN_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000

_libc: ctypes.CDLL | None = None


class NetnsError(Exception):
    """An `ip netns` command or a setns(2) call failed."""


def _get_libc() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    return _libc


def netns_path(name: str) -> str:
    """The bind-mount path of a named namespace (what CNI_NETNS gets)."""
    return name if name.startswith("/") else os.path.join(NETNS_RUN_DIR, name)


def netns_exists(name: str) -> bool:
    """Whether the named namespace (or path) exists (a cheap stat, fine on the event loop)."""
    return os.path.exists(netns_path(name))


def _check_name(name: str) -> None:
    if not name or "/" in name or name in (".", "..") or len(name) > 200:
        raise NetnsError(f"invalid network namespace name {name!r}")


async def _run(*argv: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise NetnsError(f"{' '.join(argv)}: {err.decode(errors='replace').strip() or proc.returncode}")
    return out.decode()


async def create_netns(name: str) -> str:
    """Create (or reuse, if it already exists) the named namespace; returns its path."""
    _check_name(name)
    path = netns_path(name)
    if not netns_exists(name):
        await _run("ip", "netns", "add", name)
        # A fresh namespace has `lo` down; every pod expects 127.0.0.1 to work.
        await _run("ip", "-n", name, "link", "set", "lo", "up")
    return path


async def delete_netns(name: str) -> None:
    """Delete the named namespace; a missing one is not an error (teardown must be idempotent)."""
    _check_name(name)
    if netns_exists(name):
        await _run("ip", "netns", "del", name)


async def list_netns() -> list[str]:
    """Names of the namespaces under /run/netns."""
    try:
        return sorted(os.listdir(NETNS_RUN_DIR))
    except FileNotFoundError:
        return []


async def exec_in_netns(name: str, *argv: str, check: bool = True,
                        timeout: float = 30.0) -> tuple[int, str, str]:
    """Run a subprocess inside the namespace (`ip netns exec`); returns (rc, stdout, stderr)."""
    _check_name(name)
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", name, *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    rc = proc.returncode or 0
    if check and rc != 0:
        raise NetnsError(f"ip netns exec {name} {' '.join(argv)}: rc={rc} {err.decode(errors='replace').strip()}")
    return rc, out.decode(errors="replace"), err.decode(errors="replace")


def enter_netns(path: str) -> None:
    """setns(2) the *calling thread* into the namespace at `path` (name or path)."""
    fd = os.open(netns_path(path), os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _get_libc().setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise NetnsError(f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def call_in_netns_sync(path: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run `fn` in a fresh thread that entered the namespace; blocks until it returns."""
    box: dict[str, Any] = {}

    def body() -> None:
        try:
            enter_netns(path)
            box["result"] = fn(*args, **kwargs)
        except BaseException as e:  # re-raised in the caller's thread
            box["error"] = e

    t = threading.Thread(target=body, name=f"netns:{os.path.basename(path)}", daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["result"]


async def call_in_netns(path: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Async form of `call_in_netns_sync`: the loop keeps running while `fn` runs in the namespace."""
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[T] = loop.create_future()

    def body() -> None:
        try:
            enter_netns(path)
            result = fn(*args, **kwargs)
        except BaseException as e:
            loop.call_soon_threadsafe(_settle, fut, None, e)
        else:
            loop.call_soon_threadsafe(_settle, fut, result, None)

    threading.Thread(target=body, name=f"netns:{os.path.basename(path)}", daemon=True).start()
    return await fut


def _settle(fut: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if fut.done():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)


async def socket_in_netns(path: str, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM,
                          proto: int = 0) -> socket.socket:
    """A non-blocking socket created inside the namespace, usable from the event loop."""

    def make() -> socket.socket:
        s = socket.socket(family, type, proto)
        s.setblocking(False)
        return s

    return await call_in_netns(path, make)


async def open_localhost_connection(path: str, port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A stream to localhost:`port` inside the namespace: 127.0.0.1 first, then ::1 (the Go "localhost"
    dial Kubernetes' port-forward makes tries both). OSError naming both attempts when neither answers."""
    loop = asyncio.get_running_loop()
    errors: list[str] = []
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        try:
            sock = await socket_in_netns(path, family)
        except (OSError, NetnsError) as e:
            errors.append(f"{host}: {e}")
            continue
        try:
            await loop.sock_connect(sock, (host, port))
        except OSError as e:
            sock.close()
            errors.append(f"{host}: {e.strerror or e}")
            continue
        return await asyncio.open_connection(sock=sock)
    raise ConnectionRefusedError("; ".join(errors))
