"""Starting, watching and killing host process trees without threads or zombies.

Why not asyncio.subprocess for containers: on Python 3.11 its default child
watcher parks one thread per child, and it cannot watch a process a previous
kubelet started. Here a container is `posix_spawn`ed (setsid: its own session
and process group) and watched through a pidfd registered with the event
loop; when it becomes readable the child is reaped with `waitpid` — or, for an
adopted process that is not our child, reported as gone.

A process "tree" is whatever shares the container's session, cgroup, or
descends from its pid: killing all three sets leaves nothing behind even when
a program daemonizes inside the container.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import signal
import sys
from collections.abc import Callable, Iterable
from typing import TypedDict


class InitSpec(TypedDict, total=False):
    """What the init helper (init.py) is told to do, as JSON on its command line."""

    mode: str  # "run" (a container), "exec" (join a container), "probe" (report capabilities)
    argv: list[str]
    env: dict[str, str]  # exactly the program's environment
    cwd: str
    tty: bool  # make fd 0 (a pty slave) the controlling terminal
    cgroup_procs: list[str]  # cgroup.procs files to join before anything else
    status_fd: int
    # run mode
    netns: str  # path of the pod's network namespace to join first ("" = the node's network)
    namespaces: bool
    userns: bool
    hostname: str
    mounts: list[tuple[str, str, bool]]  # host path, container path, read-only
    staging: str  # host dir (ours) the new root's tmpfs is mounted on
    stash: str  # host dir (ours) for shadowed directories' originals
    # exec mode
    target_pid: int
    join: list[str]  # namespaces of target_pid to enter: "user", "net", "mnt", "uts"


INIT_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "init.py")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (index 0 = state), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode(errors="replace")
    except OSError:
        return None
    return raw[raw.rfind(")") + 2 :].split()


def start_time(pid: int) -> int:
    """The process start time in clock ticks: with the pid, it identifies a process across pid reuse."""
    fields = proc_stat(pid)
    return int(fields[19]) if fields else 0


def alive(pid: int, started: int) -> bool:
    fields = proc_stat(pid)
    return bool(fields) and fields[0] != "Z" and (not started or int(fields[19]) == started)


def tree(pid: int, extra: Iterable[int] = ()) -> set[int]:
    """Processes in `pid`'s session, its descendants, and `extra` (cgroup members)."""
    parents: dict[int, int] = {}
    found = set(extra)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = proc_stat(int(entry))
        if not fields or fields[0] == "Z":
            continue
        parents[int(entry)] = int(fields[1])
        if int(fields[3]) == pid:  # session id
            found.add(int(entry))
    if pid in parents:
        found.add(pid)
    changed = True
    while changed:
        changed = False
        for child, parent in parents.items():
            if parent in found and child not in found:
                found.add(child)
                changed = True
    found.discard(os.getpid())
    return found


def signal_tree(pid: int, sig: int, extra: Iterable[int] = ()) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
    for p in tree(pid, extra):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(p, sig)


def usage(pid: int) -> tuple[int, int]:
    """(cpu ns, rss bytes) summed over the process tree of `pid`, from /proc."""
    cpu = rss = 0
    for p in tree(pid):
        fields = proc_stat(p)
        if fields:
            cpu += (int(fields[11]) + int(fields[12])) * 1_000_000_000 // CLK_TCK
            rss += int(fields[21]) * PAGE
    return cpu, rss


def helper_argv(spec: InitSpec) -> list[str]:
    return [sys.executable, "-I", "-S", INIT_SCRIPT, json.dumps(spec)]


def spawn(spec: InitSpec, *, stdin: int, stdout: int, stderr: int, status_fd: int = -1) -> int:
    """posix_spawn the init helper in a new session with fds 0,1,2 (and 3 = status pipe) set."""
    actions = [(os.POSIX_SPAWN_DUP2, stdin, 0), (os.POSIX_SPAWN_DUP2, stdout, 1), (os.POSIX_SPAWN_DUP2, stderr, 2)]
    if status_fd >= 0:
        actions.append((os.POSIX_SPAWN_DUP2, status_fd, 3))
        spec = InitSpec(spec, status_fd=3)
    argv = helper_argv(spec)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    return os.posix_spawn(argv[0], argv, env, file_actions=actions, setsid=True)


def exit_code(status: int) -> int:
    """waitpid status → the shell convention Kubernetes reports (128+signal when killed)."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


async def wait_pid(pid: int, before_reap: Callable[[], None] | None = None) -> int | None:
    """Wait for `pid` to exit; its exit code if it was our child (reaped here), else None.

    `before_reap` runs while the exited child is still a zombie, so its pid (and
    process group id) cannot have been reused yet: the safe moment to kill what
    it left behind.
    """
    loop = asyncio.get_running_loop()
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        if before_reap is not None:
            before_reap()
        return _reap(pid)
    done: asyncio.Future[None] = loop.create_future()
    loop.add_reader(pidfd, lambda: done.done() or done.set_result(None))
    try:
        await done
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
    if before_reap is not None:
        before_reap()
    return _reap(pid)


def _reap(pid: int) -> int | None:
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return None
    return exit_code(status)


async def read_status_pipe(fd: int) -> bytes:
    """Read the init helper's status pipe to EOF (EOF with no bytes = execve succeeded)."""
    loop = asyncio.get_running_loop()
    os.set_blocking(fd, False)
    chunks: list[bytes] = []
    done: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        if data:
            chunks.append(data)
        elif not done.done():
            done.set_result(None)

    loop.add_reader(fd, ready)
    try:
        await done
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    return b"".join(chunks)


class FdReader:
    """Reads a non-blocking fd (pipe, FIFO, pty master) from the event loop into a queue of chunks.

    EOF, and EIO on a pty master whose slave side is closed, end the stream
    with a `b""` sentinel.
    """

    def __init__(self, fd: int, *, close: bool = True) -> None:
        self.fd = fd
        self._close = close
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.closed = False
        os.set_blocking(fd, False)
        asyncio.get_running_loop().add_reader(fd, self._ready)

    def _ready(self) -> None:
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno not in (errno.EIO, errno.EBADF):
                raise
            data = b""
        self.queue.put_nowait(data)
        if not data:
            self.stop()

    def stop(self) -> None:
        if not self.closed:
            self.closed = True
            asyncio.get_running_loop().remove_reader(self.fd)
            if self._close:
                os.close(self.fd)


async def write_all(fd: int, data: bytes) -> None:
    """Write to a non-blocking fd, yielding to the loop while the pipe is full."""
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            await asyncio.sleep(0.01)
            continue
        view = view[n:]


def kill_quietly(pid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
