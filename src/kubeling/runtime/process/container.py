"""One live container: its process, log pump, stdin, attach subscribers and exit handling.

Why stdout/stderr go through FIFOs in the container's directory rather than
plain pipes: a pipe's read end dies with the kubelet, and the container's
next write would then kill it with SIGPIPE. The container holds its FIFO open
read-write, so a reader always exists; a restarted kubelet reopens the FIFO
and the log continues. (A TTY container's pty dies with the kubelet; it is
adopted for status and stop, but its output is lost.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pty
import signal
import time
from collections.abc import Callable

from . import spawn
from .cgroups import Cgroup
from .logs import CriLogWriter, LineSplitter
from .state import ContainerRecord

log = logging.getLogger(__name__)

Subscriber = tuple[asyncio.Queue[bytes], asyncio.Queue[bytes] | None]


class LiveContainer:
    """Runtime-side state of a started (or adopted) container."""

    def __init__(self, rec: ContainerRecord, cgroup: Cgroup | None, save: Callable[[ContainerRecord], None],
                 *, max_line: int) -> None:
        self.rec = rec
        self.cgroup = cgroup
        self._save = save
        self._max_line = max_line
        self.stdin_fd = -1
        self.master_fd = -1
        self.subscribers: list[Subscriber] = []
        self.exec_pids: set[int] = set()  # exec'd processes: their own sessions, part of the container
        self.exited = asyncio.Event()
        self.stop_requested = False
        self.killed = False
        self._readers: list[tuple[str, spawn.FdReader]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._writer: CriLogWriter | None = None

    # ---- output ---------------------------------------------------------------

    def start_pump(self, readers: list[tuple[str, spawn.FdReader]]) -> None:
        self._readers = readers
        self._writer = CriLogWriter(self.rec.log_path, self.rec.config.log_max_bytes)
        for stream, reader in readers:
            self._tasks.append(asyncio.create_task(self._pump(stream, reader)))

    async def _pump(self, stream: str, reader: spawn.FdReader) -> None:
        splitter = LineSplitter(self._max_line)
        assert self._writer is not None
        while True:
            data = await reader.queue.get()
            entries = splitter.feed(data) if data else splitter.finish()
            for content, partial in entries:
                self._writer.write(stream, content, partial=partial)
            self._writer.flush()
            if data:  # end-of-stream reaches subscribers from finish(), once for both streams
                for out, err in self.subscribers:
                    (err if stream == "stderr" and err is not None else out).put_nowait(data)
            if not data:
                return

    def subscribe(self) -> tuple[Subscriber, Callable[[], None]]:
        tty = self.rec.config.tty
        sub: Subscriber = (asyncio.Queue(), None if tty else asyncio.Queue())
        self.subscribers.append(sub)

        def unsubscribe() -> None:
            if sub in self.subscribers:
                self.subscribers.remove(sub)
                for q in sub:
                    if q is not None:
                        q.put_nowait(b"")

        return sub, unsubscribe

    def close_stdin(self) -> None:
        if self.stdin_fd >= 0 and not self.rec.config.tty:
            os.close(self.stdin_fd)
            self.stdin_fd = -1

    # ---- exit -----------------------------------------------------------------

    def adopt(self, cdir: str) -> None:
        """Resume a container a previous runtime instance started: pump its FIFOs, watch its pid."""
        if not spawn.alive(self.rec.pid, self.rec.pid_start):
            if self.cgroup is not None:
                self.cgroup.kill_all()  # whatever the lost main process left behind
            self.finish(None)
            return
        if not self.rec.config.tty:
            self.start_pump([(s, spawn.FdReader(os.open(os.path.join(cdir, f"{s}.fifo"), os.O_RDONLY | os.O_NONBLOCK)))
                             for s in ("stdout", "stderr")])
        self.watch()

    def watch(self) -> None:
        self._tasks.append(asyncio.create_task(self._watch()))

    def member_pids(self) -> set[int]:
        """Processes of the container outside its session: cgroup members and exec sessions."""
        return (self.cgroup.pids() if self.cgroup else set()) | self.exec_pids

    def signal(self, sig: int) -> None:
        spawn.signal_tree(self.rec.pid, sig, self.member_pids())

    async def _watch(self) -> None:
        # The main process is gone: nothing else of the container may stay (no orphans).
        code = await spawn.wait_pid(self.rec.pid, before_reap=lambda: self.signal(signal.SIGKILL))
        pumps = self._tasks[: len(self._readers)]
        if pumps:
            _, pending = await asyncio.wait(pumps, timeout=2.0)
            for task in pending:
                task.cancel()
        self.finish(code)

    def finish(self, code: int | None) -> None:
        rec = self.rec
        oom = bool(self.cgroup and self.cgroup.oom_kills() > 0)
        if oom:
            rec.exit_code, rec.reason = 137, "OOMKilled"
        elif code is not None:
            rec.exit_code, rec.reason = code, "Completed" if code == 0 else "Error"
        elif self.stop_requested:
            rec.exit_code, rec.reason = (137 if self.killed else 143), "Error"
        else:
            rec.exit_code, rec.reason = 137, "ContainerStatusUnknown"
            rec.message = "the container exited while the runtime was not running; its exit code is lost"
        rec.state, rec.finished_at = "exited", time.time()
        self._close_io()
        with contextlib.suppress(OSError):
            self._save(rec)
        for out, err in self.subscribers:
            out.put_nowait(b"")
            if err is not None:
                err.put_nowait(b"")
        self.exited.set()

    def _close_io(self) -> None:
        for _, reader in self._readers:
            reader.stop()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        for fd in {self.stdin_fd, self.master_fd}:  # the same fd when a tty takes stdin
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.stdin_fd = self.master_fd = -1

    def cancel(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._close_io()


def prepare_io(live: LiveContainer, cdir: str) -> tuple[int, int, int, list[int], list[tuple[str, spawn.FdReader]]]:
    """The container's stdio: a pty, or FIFOs for output and a pipe (or /dev/null) for stdin."""
    cfg = live.rec.config
    readers: list[tuple[str, spawn.FdReader]] = []
    if cfg.tty:
        master, slave = pty.openpty()
        live.master_fd = master
        live.stdin_fd = master if cfg.stdin else -1
        os.set_blocking(master, False)
        readers.append(("stdout", spawn.FdReader(os.dup(master))))
        return slave, slave, slave, [slave], readers
    fifo_fds = []
    for stream in ("stdout", "stderr"):
        path = os.path.join(cdir, f"{stream}.fifo")
        if not os.path.exists(path):
            os.mkfifo(path, 0o600)
        readers.append((stream, spawn.FdReader(os.open(path, os.O_RDONLY | os.O_NONBLOCK))))
        fifo_fds.append(os.open(path, os.O_RDWR))  # the container's end: reader + writer, no SIGPIPE
    if cfg.stdin:
        stdin, live.stdin_fd = os.pipe()
        os.set_blocking(live.stdin_fd, False)
    else:
        stdin = os.open(os.devnull, os.O_RDONLY)
    return stdin, fifo_fds[0], fifo_fds[1], [*fifo_fds, stdin], readers

