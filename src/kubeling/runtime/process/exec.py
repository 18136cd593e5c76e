"""exec and attach sessions: the `StreamSession` the kubelet streams to kubectl.

An exec is a new process started through the same init helper as the
container, in `exec` mode: it joins the container's cgroups and namespaces
(setns on /proc/<pid>/ns/*, then the container's root), so it sees the
container's hostname and mounts. With a TTY it gets a pty as its controlling
terminal (stdout and stderr merged, as Kubernetes does) and `resize` sets the
window size on the master. An attach is a view onto the running container:
its stdin pipe or pty and a live copy of its output fanned out by the log pump.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pty
import signal
import struct
import termios
from collections.abc import AsyncIterator, Awaitable, Callable

from ..interface import RuntimeError_
from . import spawn


class ExecTimeout(RuntimeError_, TimeoutError):
    """exec_sync ran out of time (the command was killed); a TimeoutError, as probes expect."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="DeadlineExceeded")


def set_winsize(fd: int, width: int, height: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


async def _drain(queue: asyncio.Queue[bytes]) -> AsyncIterator[bytes]:
    while True:
        data = await queue.get()
        if not data:
            return
        yield data


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an async generator


class ExecSession:
    """A process started in a container's namespaces; implements `StreamSession`."""

    def __init__(self, spec: spawn.InitSpec, *, tty: bool, stdin: bool) -> None:
        self.tty = tty
        self._stdin_fd = -1
        self._master = -1
        if tty:
            master, slave = pty.openpty()
            self._master = master
            self.pid = spawn.spawn(spawn.InitSpec(spec, tty=True), stdin=slave, stdout=slave, stderr=slave)
            os.close(slave)
            self._out = spawn.FdReader(os.dup(master))
            self._err: spawn.FdReader | None = None
            if stdin:
                self._stdin_fd = master
                os.set_blocking(master, False)
        else:
            in_r, in_w = os.pipe() if stdin else (os.open(os.devnull, os.O_RDONLY), -1)
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            try:
                self.pid = spawn.spawn(spec, stdin=in_r, stdout=out_w, stderr=err_w)
            finally:
                for fd in (in_r, out_w, err_w):
                    os.close(fd)
            self._stdin_fd = in_w
            if in_w >= 0:
                os.set_blocking(in_w, False)
            self._out = spawn.FdReader(out_r)
            self._err = spawn.FdReader(err_r)
        self._exit = asyncio.ensure_future(spawn.wait_pid(self.pid))

    def on_exit(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the process has exited (and been reaped)."""
        self._exit.add_done_callback(lambda _: callback())

    async def write_stdin(self, data: bytes) -> None:
        if self._stdin_fd >= 0:
            await spawn.write_all(self._stdin_fd, data)

    async def close_stdin(self) -> None:
        if self.tty and self._stdin_fd >= 0:
            await spawn.write_all(self._stdin_fd, b"\x04")  # EOF on a terminal is ^D
            return
        if self._stdin_fd >= 0:
            os.close(self._stdin_fd)
            self._stdin_fd = -1

    def stdout(self) -> AsyncIterator[bytes]:
        return _drain(self._out.queue)

    def stderr(self) -> AsyncIterator[bytes]:
        return _drain(self._err.queue) if self._err else _nothing()

    async def resize(self, width: int, height: int) -> None:
        if self._master >= 0:
            set_winsize(self._master, width, height)

    async def wait(self) -> int:
        code = await asyncio.shield(self._exit)
        self._cleanup()
        return 0 if code is None else code

    async def kill(self) -> None:
        if self._exit.done():  # reaped: the pid may already belong to another process
            return
        spawn.signal_tree(self.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            await self.wait()

    def _cleanup(self) -> None:
        if self._stdin_fd >= 0 and not self.tty:
            os.close(self._stdin_fd)
        self._stdin_fd = -1
        if self._master >= 0:
            # Let the reader drain what the program printed before its exit.
            asyncio.get_running_loop().call_later(1.0, self._close_master)

    def _close_master(self) -> None:
        self._out.stop()
        if self._master >= 0:
            os.close(self._master)
            self._master = -1


class AttachSession:
    """A live view of a running container's stdio; implements `StreamSession`.

    `subscribe` registers a queue pair with the container's log pump;
    `on_close_stdin` is called when the client closes stdin (the runtime closes
    the container's stdin when the container asked for `stdin_once`).
    """

    def __init__(
        self,
        *,
        stdin_fd: int,
        master_fd: int,
        queues: tuple[asyncio.Queue[bytes], asyncio.Queue[bytes] | None],
        exit_code: Callable[[], Awaitable[int]],
        unsubscribe: Callable[[], None],
        on_close_stdin: Callable[[], None],
    ) -> None:
        self._stdin_fd = stdin_fd
        self._master = master_fd
        self._out, self._err = queues
        self._exit_code = exit_code
        self._unsubscribe = unsubscribe
        self._on_close_stdin = on_close_stdin

    async def write_stdin(self, data: bytes) -> None:
        if self._stdin_fd >= 0:
            await spawn.write_all(self._stdin_fd, data)

    async def close_stdin(self) -> None:
        self._stdin_fd = -1
        self._on_close_stdin()

    def stdout(self) -> AsyncIterator[bytes]:
        return _drain(self._out)

    def stderr(self) -> AsyncIterator[bytes]:
        return _drain(self._err) if self._err is not None else _nothing()

    async def resize(self, width: int, height: int) -> None:
        if self._master >= 0:
            set_winsize(self._master, width, height)

    async def wait(self) -> int:
        try:
            return await self._exit_code()
        finally:
            self._unsubscribe()

    async def kill(self) -> None:
        """Detach: an attach session never kills the container."""
        self._unsubscribe()
        self._out.put_nowait(b"")
        if self._err is not None:
            self._err.put_nowait(b"")
