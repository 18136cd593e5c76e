"""The container-runtime contract the kubelet programs against (CRI's shape).

A pod is a *sandbox* (its hostname, network, shared volumes, cgroup parent)
holding *containers*. The kubelet only ever calls this Protocol, so the
process runtime (host process trees) and a later runc runtime (OCI bundles)
are interchangeable; one contract test suite checks every backend.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol


class ContainerState(enum.StrEnum):
    CREATED = "created"
    RUNNING = "running"
    EXITED = "exited"
    UNKNOWN = "unknown"


@dataclass
class Mount:
    """A host path made visible at `container_path` (volumes, subPath, service-account files)."""

    host_path: str
    container_path: str
    read_only: bool = False


@dataclass
class PortMapping:
    """hostPort → containerPort."""

    container_port: int
    host_port: int = 0
    protocol: str = "TCP"
    host_ip: str = ""


@dataclass
class PodSandboxConfig:
    """Everything shared by a pod's containers."""

    name: str
    namespace: str
    uid: str
    hostname: str
    log_directory: str  # <root>/pods/<ns>_<name>_<uid>/
    pod_ip: str = ""  # assigned by the network layer (no-root mode: a loopback address)
    host_network: bool = False
    netns_path: str = ""  # the pod's network namespace (root mode, CNI); "" = the node's network
    dns_servers: list[str] = field(default_factory=list)
    dns_searches: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    port_mappings: list[PortMapping] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    cgroup_parent: str = ""


@dataclass
class Resources:
    """Limits the runtime enforces (cgroups) and requests it may use for weights."""

    cpu_request_millis: int = 0
    cpu_limit_millis: int = 0  # 0 = unlimited
    memory_request_bytes: int = 0
    memory_limit_bytes: int = 0  # 0 = unlimited


@dataclass
class ContainerConfig:
    """One container, fully resolved by the kubelet ($(VAR) expansion, env, volumes already done)."""

    name: str
    image: str
    command: list[str]  # argv: command + args, already expanded; may be empty (nothing to run)
    working_dir: str = ""
    env: list[tuple[str, str]] = field(default_factory=list)
    mounts: list[Mount] = field(default_factory=list)
    resources: Resources = field(default_factory=Resources)
    log_path: str = ""  # CRI log file (timestamped lines); rotated by the runtime at `log_max_bytes`
    log_max_bytes: int = 10 * 1024 * 1024
    tty: bool = False
    stdin: bool = False
    stdin_once: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    attempt: int = 0  # restart count, part of the log file name


@dataclass
class ContainerStatus:
    """What the runtime knows about one container."""

    id: str
    name: str
    state: ContainerState
    created_at: float = 0.0
    started_at: float = 0.0
    finished_at: float = 0.0
    exit_code: int = 0
    reason: str = ""  # "OOMKilled", "Error", "Completed", "ContainerCannotRun"
    message: str = ""
    pid: int = 0
    log_path: str = ""
    attempt: int = 0


@dataclass
class SandboxStatus:
    """State of a pod sandbox."""

    id: str
    ready: bool
    pod_ip: str = ""
    created_at: float = 0.0


@dataclass
class ContainerStats:
    """The cAdvisor role: usage read from cgroups (or /proc when cgroups are not ours)."""

    cpu_usage_core_nanoseconds: int = 0
    memory_working_set_bytes: int = 0
    memory_rss_bytes: int = 0
    timestamp: float = 0.0


class StreamSession(Protocol):
    """A running exec/attach: byte streams plus resize and the exit code."""

    async def write_stdin(self, data: bytes) -> None: ...
    async def close_stdin(self) -> None: ...
    def stdout(self) -> AsyncIterator[bytes]: ...
    def stderr(self) -> AsyncIterator[bytes]: ...  # empty when tty=True (merged into stdout)
    async def resize(self, width: int, height: int) -> None: ...
    async def wait(self) -> int: ...  # exit code
    async def kill(self) -> None: ...


class RuntimeError_(Exception):
    """A runtime operation failed; `reason` is what the pod status shows (e.g. "ContainerCannotRun")."""

    def __init__(self, message: str, *, reason: str = "RuntimeError") -> None:
        super().__init__(message)
        self.reason = reason


class Runtime(Protocol):
    """The contract. Every method is async and safe to call concurrently for different pods."""

    name: str
    version: str

    async def start(self) -> None: ...
    async def close(self) -> None: ...

    async def run_pod_sandbox(self, config: PodSandboxConfig) -> str: ...
    async def stop_pod_sandbox(self, sandbox_id: str) -> None: ...
    async def remove_pod_sandbox(self, sandbox_id: str) -> None: ...
    async def pod_sandbox_status(self, sandbox_id: str) -> SandboxStatus | None: ...
    async def list_pod_sandboxes(self) -> list[tuple[str, PodSandboxConfig]]: ...

    async def create_container(self, sandbox_id: str, config: ContainerConfig) -> str: ...
    async def start_container(self, container_id: str) -> None: ...
    async def stop_container(self, container_id: str, timeout: float) -> None:
        """SIGTERM the container's process tree, SIGKILL after `timeout` seconds."""
    async def remove_container(self, container_id: str) -> None: ...
    async def container_status(self, container_id: str) -> ContainerStatus | None: ...
    async def list_containers(self, sandbox_id: str | None = None) -> list[ContainerStatus]: ...
    async def wait_container(self, container_id: str) -> ContainerStatus:
        """Return once the container has exited."""

    async def exec(self, container_id: str, command: list[str], *, tty: bool, stdin: bool) -> StreamSession: ...
    async def exec_sync(self, container_id: str, command: list[str], timeout: float) -> tuple[int, bytes]:
        """Run to completion (exec probes, hooks): (exit code, combined output)."""
    async def attach(self, container_id: str, *, stdin: bool, tty: bool) -> StreamSession: ...
    async def port_forward(self, sandbox_id: str, port: int) -> tuple[object, object]:
        """Open a TCP connection to `port` inside the pod: (asyncio.StreamReader, asyncio.StreamWriter)."""

    async def container_stats(self, container_id: str) -> ContainerStats | None: ...


ExitCallback = Callable[[ContainerStatus], Awaitable[None]]
