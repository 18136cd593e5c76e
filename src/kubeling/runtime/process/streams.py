"""Streams into a running container: exec, attach, port-forward (CRI's streaming calls).

The runtime resolves the container or sandbox and hands it here. `exec` joins the
container's namespaces (the pod's network namespace among them) through the init
helper; `attach` subscribes to the container's own stdio; port-forward connects
to localhost inside the pod's network namespace when it has one (as Kubernetes
does, so a server bound to 127.0.0.1 in the pod is reachable), else to the pod IP.
"""

from __future__ import annotations

import asyncio

from ..interface import PodSandboxConfig, RuntimeError_, StreamSession
from . import spawn
from .container import LiveContainer
from .exec import AttachSession, ExecSession, ExecTimeout


def exec_session(live: LiveContainer, command: list[str], *, env: dict[str, str], tty: bool,
                 stdin: bool) -> ExecSession:
    """Start `command` inside the running container `live`."""
    if not command:
        raise RuntimeError_("exec needs a command", reason="InvalidCommand")
    rec = live.rec
    spec: spawn.InitSpec = {"mode": "exec", "argv": command, "env": env, "cwd": rec.config.working_dir,
                            "cgroup_procs": live.cgroup.procs_files() if live.cgroup else [],
                            "target_pid": rec.pid, "join": rec.namespaces}
    session = ExecSession(spec, tty=tty, stdin=stdin)
    live.exec_pids.add(session.pid)  # stopped with the container even without a cgroup
    session.on_exit(lambda: live.exec_pids.discard(session.pid))
    return session


async def collect(session: StreamSession, command: list[str], timeout: float) -> tuple[int, bytes]:
    """Run an exec session to its end: (exit code, stdout + stderr); ExecTimeout after `timeout`."""
    output: list[bytes] = []

    async def read(stream: object) -> None:
        async for chunk in stream:  # type: ignore[attr-defined]
            output.append(chunk)

    try:
        async with asyncio.timeout(timeout):
            await asyncio.gather(read(session.stdout()), read(session.stderr()))
            code = await session.wait()
    except TimeoutError:
        await session.kill()
        raise ExecTimeout(f"command {command!r} timed out after {timeout}s") from None
    return code, b"".join(output)


def attach_session(live: LiveContainer, *, stdin: bool) -> AttachSession:
    """The running container's own stdio (a tty's master when it has one)."""
    queues, unsubscribe = live.subscribe()

    async def exit_code() -> int:
        await live.exited.wait()
        return live.rec.exit_code

    def on_close_stdin() -> None:
        if live.rec.config.stdin_once:
            live.close_stdin()

    return AttachSession(stdin_fd=live.stdin_fd if stdin else -1, master_fd=live.master_fd, queues=queues,
                         exit_code=exit_code, unsubscribe=unsubscribe, on_close_stdin=on_close_stdin)


async def connect_port(sandbox: PodSandboxConfig, port: int) -> tuple[object, object]:
    """(reader, writer) connected to `port` in the pod."""
    if sandbox.netns_path:
        from kubeling.network.netns import open_localhost_connection  # root mode only

        try:
            return await open_localhost_connection(sandbox.netns_path, port)
        except OSError as exc:
            raise RuntimeError_(f"cannot connect to localhost:{port} in the pod: {exc}",
                                reason="PortForwardError") from exc
    host = sandbox.pod_ip or "127.0.0.1"
    try:
        return await asyncio.open_connection(host, port)
    except OSError as exc:
        raise RuntimeError_(f"cannot connect to {host}:{port} in the pod: {exc}",
                            reason="PortForwardError") from exc
