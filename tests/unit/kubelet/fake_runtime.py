"""An in-memory Runtime whose containers run until the test says they exit.

Records every call the kubelet makes (starts in order, stops with their grace
periods) so tests can assert on the kubelet's behaviour without processes.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from kubeling.runtime.interface import (
    ContainerConfig,
    ContainerState,
    ContainerStats,
    ContainerStatus,
    PodSandboxConfig,
    SandboxStatus,
    StreamSession,
)


@dataclass
class FakeContainer:
    id: str
    sandbox_id: str
    config: ContainerConfig
    status: ContainerStatus
    exited: asyncio.Event = field(default_factory=asyncio.Event)


ExecHandler = Callable[[FakeContainer, list[str]], tuple[int, bytes]]


class FakeRuntime:
    """Implements the Runtime Protocol in memory."""

    name = "fake"
    version = "0.1"

    def __init__(self) -> None:
        self.sandboxes: dict[str, PodSandboxConfig] = {}
        self.containers: dict[str, FakeContainer] = {}
        self.started: list[tuple[str, str, float]] = []  # (pod name, container name, time)
        self.stops: list[tuple[str, str, float]] = []  # (container name, id, timeout)
        self.exec_handler: ExecHandler = lambda c, cmd: (0, b"")
        self.auto_exit: dict[str, int] = {}  # container name → exit code right after start
        self._ids = itertools.count(1)

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    # -- test controls ------------------------------------------------------------------------------

    def running(self, name: str | None = None) -> list[FakeContainer]:
        return [c for c in self.containers.values() if c.status.state == ContainerState.RUNNING
                and (name is None or c.config.name == name)]

    def exit(self, name: str, code: int = 0, reason: str = "") -> None:
        """Make the running container(s) called `name` exit with `code`."""
        for c in self.running(name):
            self._exit(c, code, reason)

    def _exit(self, c: FakeContainer, code: int, reason: str = "") -> None:
        c.status.state = ContainerState.EXITED
        c.status.exit_code = code
        c.status.finished_at = time.time()
        c.status.reason = reason or ("Completed" if code == 0 else "Error")
        c.exited.set()

    def starts_of(self, name: str) -> list[float]:
        return [t for _, n, t in self.started if n == name]

    # -- sandboxes ----------------------------------------------------------------------------------

    async def run_pod_sandbox(self, config: PodSandboxConfig) -> str:
        sid = f"sb{next(self._ids)}"
        self.sandboxes[sid] = config
        return sid

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        for c in list(self.containers.values()):
            if c.sandbox_id == sandbox_id and c.status.state == ContainerState.RUNNING:
                self._exit(c, 137)

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        self.sandboxes.pop(sandbox_id, None)

    async def pod_sandbox_status(self, sandbox_id: str) -> SandboxStatus | None:
        cfg = self.sandboxes.get(sandbox_id)
        return SandboxStatus(sandbox_id, True, cfg.pod_ip) if cfg else None

    async def list_pod_sandboxes(self) -> list[tuple[str, PodSandboxConfig]]:
        return list(self.sandboxes.items())

    # -- containers ---------------------------------------------------------------------------------

    async def create_container(self, sandbox_id: str, config: ContainerConfig) -> str:
        cid = f"c{next(self._ids)}"
        self.containers[cid] = FakeContainer(cid, sandbox_id, config,
                                             ContainerStatus(cid, config.name, ContainerState.CREATED,
                                                             created_at=time.time(), attempt=config.attempt))
        return cid

    async def start_container(self, container_id: str) -> None:
        c = self.containers[container_id]
        c.status.state = ContainerState.RUNNING
        c.status.started_at = time.time()
        self.started.append((self.sandboxes[c.sandbox_id].name, c.config.name, time.monotonic()))
        if c.config.name in self.auto_exit:
            asyncio.get_running_loop().call_later(0.01, self._exit, c, self.auto_exit[c.config.name])

    async def stop_container(self, container_id: str, timeout: float) -> None:
        c = self.containers.get(container_id)
        if c is None:
            return
        self.stops.append((c.config.name, container_id, timeout))
        if c.status.state == ContainerState.RUNNING:
            self._exit(c, 143)

    async def remove_container(self, container_id: str) -> None:
        self.containers.pop(container_id, None)

    async def container_status(self, container_id: str) -> ContainerStatus | None:
        c = self.containers.get(container_id)
        return c.status if c else None

    async def list_containers(self, sandbox_id: str | None = None) -> list[ContainerStatus]:
        return [c.status for c in self.containers.values() if sandbox_id in (None, c.sandbox_id)]

    async def wait_container(self, container_id: str) -> ContainerStatus:
        c = self.containers[container_id]
        await c.exited.wait()
        return c.status

    async def exec(self, container_id: str, command: list[str], *, tty: bool, stdin: bool) -> StreamSession:
        raise NotImplementedError

    async def exec_sync(self, container_id: str, command: list[str], timeout: float) -> tuple[int, bytes]:
        return self.exec_handler(self.containers[container_id], command)

    async def attach(self, container_id: str, *, stdin: bool, tty: bool) -> StreamSession:
        raise NotImplementedError

    async def port_forward(self, sandbox_id: str, port: int) -> tuple[object, object]:
        raise NotImplementedError

    async def container_stats(self, container_id: str) -> ContainerStats | None:
        return ContainerStats(timestamp=time.time())
