"""On-disk records of sandboxes and containers, so a restarted kubelet finds its processes.

Why on disk: containers are host processes in their own sessions, so they
outlive a crashed kubelet. Each record holds what is needed to recognise the
process again (pid + its start time, so a reused pid is never mistaken for
it) and to clean up after it (cgroup directories, log path). Files are
replaced atomically (write + rename) so a crash never leaves half a record.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from dataclasses import dataclass, field

from ..interface import (
    ContainerConfig,
    ContainerState,
    ContainerStatus,
    Mount,
    PodSandboxConfig,
    PortMapping,
    Resources,
)


def write_json(path: str, data: dict) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def read_json(path: str) -> dict | None:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def sandbox_config_from(d: dict) -> PodSandboxConfig:
    d = dict(d)
    d["port_mappings"] = [PortMapping(**p) for p in d.get("port_mappings", [])]
    return PodSandboxConfig(**d)


def container_config_from(d: dict) -> ContainerConfig:
    d = dict(d)
    d["env"] = [tuple(kv) for kv in d.get("env", [])]
    d["mounts"] = [Mount(**m) for m in d.get("mounts", [])]
    d["resources"] = Resources(**d.get("resources", {}))
    return ContainerConfig(**d)


@dataclass
class SandboxRecord:
    """A pod sandbox as persisted under `<root>/sandboxes/<id>.json`."""

    id: str
    config: PodSandboxConfig
    created_at: float
    ready: bool = True
    cgroup: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"id": self.id, "config": dataclasses.asdict(self.config), "created_at": self.created_at,
                "ready": self.ready, "cgroup": self.cgroup}

    @classmethod
    def from_json(cls, d: dict) -> SandboxRecord:
        return cls(d["id"], sandbox_config_from(d["config"]), d["created_at"], d["ready"], d.get("cgroup", {}))


@dataclass
class ContainerRecord:
    """A container as persisted under `<root>/containers/<id>/state.json`."""

    id: str
    sandbox_id: str
    config: ContainerConfig
    log_path: str
    created_at: float
    state: str = "created"
    started_at: float = 0.0
    finished_at: float = 0.0
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    pid: int = 0
    pid_start: int = 0
    namespaces: list[str] = field(default_factory=list)  # what an exec must join
    cgroup: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["config"] = dataclasses.asdict(self.config)
        return d

    def status(self) -> ContainerStatus:
        return ContainerStatus(
            id=self.id, name=self.config.name, state=ContainerState(self.state), created_at=self.created_at,
            started_at=self.started_at, finished_at=self.finished_at, exit_code=self.exit_code,
            reason=self.reason, message=self.message, pid=self.pid, log_path=self.log_path,
            attempt=self.config.attempt,
        )

    @classmethod
    def from_json(cls, d: dict) -> ContainerRecord:
        d = dict(d)
        d["config"] = container_config_from(d["config"])
        return cls(**d)


class StateDir:
    """The layout under the runtime's root directory."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.sandboxes = os.path.join(self.root, "sandboxes")
        self.containers = os.path.join(self.root, "containers")
        os.makedirs(self.sandboxes, exist_ok=True)
        os.makedirs(self.containers, exist_ok=True)

    def container_dir(self, cid: str) -> str:
        return os.path.join(self.containers, cid)

    def save_sandbox(self, rec: SandboxRecord) -> None:
        write_json(os.path.join(self.sandboxes, f"{rec.id}.json"), rec.to_json())

    def save_container(self, rec: ContainerRecord) -> None:
        write_json(os.path.join(self.container_dir(rec.id), "state.json"), rec.to_json())

    def delete_sandbox(self, sid: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.sandboxes, f"{sid}.json"))

    def load(self) -> tuple[list[SandboxRecord], list[ContainerRecord]]:
        sandboxes = [SandboxRecord.from_json(d) for name in sorted(os.listdir(self.sandboxes))
                     if name.endswith(".json") and (d := read_json(os.path.join(self.sandboxes, name)))]
        containers = [ContainerRecord.from_json(d) for name in sorted(os.listdir(self.containers))
                      if (d := read_json(os.path.join(self.containers, name, "state.json")))]
        return sandboxes, containers
