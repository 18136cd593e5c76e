"""Container limits and usage through cgroups, v2 or v1, when we may write them.

Why both versions: the runtime must enforce limits "where writable", and the
machines we run on include hybrid hosts where the memory and cpu controllers
still live on v1 hierarchies (the unified mount has none). We create
`<our own cgroup>/kubeling/pod<uid>/<container>` in each hierarchy we use
(nesting under our own cgroup works both as root and with systemd
delegation), write limits before the container starts, and the container's
init joins by writing its pid into `cgroup.procs` before execve.

Kubernetes conversions reproduced: cpu.shares = millis·1024/1000 (min 2),
cpu.weight from shares as the kubelet does, CFS quota = millis·100 µs per
100 ms period. OOM kills are read from `memory.events` (v2) or
`memory.oom_control` (v1) counters.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass, field

from ..interface import Resources

V1_CONTROLLERS = ("memory", "cpu", "cpuacct")
CFS_PERIOD_US = 100_000


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _keyed(path: str) -> dict[str, int]:
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in _read(path).splitlines():
            key, _, value = line.partition(" ")
            with contextlib.suppress(ValueError):
                out[key] = int(value.split()[0]) if value else 0
    return out


def cpu_shares(millis: int) -> int:
    return max(2, millis * 1024 // 1000) if millis else 2


@dataclass
class Cgroup:
    """One container's (or pod's) cgroup: controller name → directory ("unified" for v2)."""

    version: int
    dirs: dict[str, str] = field(default_factory=dict)

    def procs_files(self) -> list[str]:
        return [os.path.join(d, "cgroup.procs") for d in self.dirs.values()]

    def pids(self) -> set[int]:
        out: set[int] = set()
        for procs in self.procs_files():
            with contextlib.suppress(OSError, ValueError):
                out.update(int(p) for p in _read(procs).split())
        return out

    def oom_kills(self) -> int:
        if self.version == 2:
            return _keyed(os.path.join(self.dirs["unified"], "memory.events")).get("oom_kill", 0)
        if "memory" in self.dirs:
            return _keyed(os.path.join(self.dirs["memory"], "memory.oom_control")).get("oom_kill", 0)
        return 0

    def usage(self) -> tuple[int, int, int] | None:
        """(cpu nanoseconds, working set bytes, rss bytes), or None if unreadable."""
        try:
            if self.version == 2:
                d = self.dirs["unified"]
                cpu = _keyed(os.path.join(d, "cpu.stat")).get("usage_usec", 0) * 1000
                current = int(_read(os.path.join(d, "memory.current")))
                stat = _keyed(os.path.join(d, "memory.stat"))
                inactive, rss = stat.get("inactive_file", 0), stat.get("anon", 0)
            else:
                cpu = int(_read(os.path.join(self.dirs["cpuacct"], "cpuacct.usage")))
                current = int(_read(os.path.join(self.dirs["memory"], "memory.usage_in_bytes")))
                stat = _keyed(os.path.join(self.dirs["memory"], "memory.stat"))
                inactive, rss = stat.get("total_inactive_file", 0), stat.get("total_rss", 0)
        except (OSError, ValueError, KeyError):
            return None
        return cpu, max(0, current - inactive), rss

    def kill_all(self) -> None:
        kill_file = os.path.join(self.dirs.get("unified", ""), "cgroup.kill")
        if self.version == 2 and os.path.exists(kill_file):
            with contextlib.suppress(OSError):
                _write(kill_file, "1")
                return
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)

    def remove_if_empty(self) -> None:
        """rmdir without killing: for a pod cgroup another sandbox of the same pod may still use."""
        for d in self.dirs.values():
            with contextlib.suppress(OSError):
                os.rmdir(d)

    def remove(self, timeout: float = 2.0) -> None:
        """rmdir every directory (children first), killing stragglers; a busy cgroup is retried briefly."""
        deadline = time.monotonic() + timeout
        for d in self.dirs.values():
            while os.path.isdir(d):
                for sub in sorted((e.path for e in os.scandir(d) if e.is_dir()), reverse=True):
                    Cgroup(self.version, {"x": sub}).remove(max(0.0, deadline - time.monotonic()))
                try:
                    os.rmdir(d)
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        break
                    self.kill_all()
                    time.sleep(0.02)


class CgroupManager:
    """Finds a writable cgroup hierarchy at start and creates pod/container cgroups under it."""

    def __init__(self, parent: str = "") -> None:
        self.version = 0  # 0 = no usable cgroups
        self.base: dict[str, str] = {}
        self.reason = ""
        self._parent = parent or "kubeling"
        self._detect()

    @property
    def enabled(self) -> bool:
        return self.version != 0

    def _detect(self) -> None:
        mounts = [line.split() for line in _read("/proc/self/mounts").splitlines()]
        own: dict[str, str] = {}
        for line in _read("/proc/self/cgroup").splitlines():
            _, controllers, path = line.split(":", 2)
            for c in controllers.split(",") if controllers else ["unified"]:
                own[c] = path
        v2 = [m[1] for m in mounts if m[2] == "cgroup2"]
        if v2:
            root = v2[0]
            ctrl = os.path.join(root, own.get("unified", "/").lstrip("/"))
            available = set(_read(os.path.join(ctrl, "cgroup.controllers")).split()) if os.path.exists(
                os.path.join(ctrl, "cgroup.controllers")) else set()
            if {"memory", "cpu"} <= available and self._setup_v2(ctrl):
                return
        v1: dict[str, str] = {}
        for m in mounts:
            if m[2] != "cgroup":
                continue
            opts = m[3].split(",")
            for c in V1_CONTROLLERS:
                if c in opts and c not in v1:
                    v1[c] = os.path.join(m[1], own.get(c, "/").lstrip("/"), self._parent)
        if set(v1) == set(V1_CONTROLLERS):
            try:
                for d in v1.values():
                    os.makedirs(d, exist_ok=True)
                    _probe_writable(d)
                self.version, self.base = 1, v1
                return
            except OSError as exc:
                self.reason = f"cgroup v1 not writable: {exc}"
                return
        self.reason = self.reason or "no writable cgroup hierarchy with memory and cpu controllers"

    def _setup_v2(self, ctrl: str) -> bool:
        base = os.path.join(ctrl, self._parent)
        try:
            os.makedirs(base, exist_ok=True)
            try:
                _write(os.path.join(ctrl, "cgroup.subtree_control"), "+memory +cpu")
            except OSError:
                # "No internal processes": move ourselves into a leaf, then delegate.
                leaf = os.path.join(ctrl, "kubeling-agent")
                os.makedirs(leaf, exist_ok=True)
                _write(os.path.join(leaf, "cgroup.procs"), str(os.getpid()))
                _write(os.path.join(ctrl, "cgroup.subtree_control"), "+memory +cpu")
            _write(os.path.join(base, "cgroup.subtree_control"), "+memory +cpu")
            _probe_writable(base)
        except OSError as exc:
            self.reason = f"cgroup v2 not writable: {exc}"
            return False
        self.version, self.base = 2, {"unified": base}
        return True

    def pod(self, pod_uid: str) -> Cgroup:
        cg = Cgroup(self.version, {c: os.path.join(d, f"pod{pod_uid}") for c, d in self.base.items()})
        for d in cg.dirs.values():
            os.makedirs(d, exist_ok=True)
            if self.version == 2:
                _write(os.path.join(d, "cgroup.subtree_control"), "+memory +cpu")
        return cg

    def container(self, pod: Cgroup, name: str, resources: Resources) -> Cgroup:
        """Create the container's cgroup with its limits written (before anything joins it)."""
        cg = Cgroup(self.version, {c: os.path.join(d, name) for c, d in pod.dirs.items()})
        for pod_dir, d in zip(pod.dirs.values(), cg.dirs.values(), strict=True):
            if self.version == 2 and not os.path.isdir(pod_dir):  # removed by a previous close()
                os.makedirs(pod_dir)
                _write(os.path.join(pod_dir, "cgroup.subtree_control"), "+memory +cpu")
            os.makedirs(d, exist_ok=True)
        shares = cpu_shares(resources.cpu_request_millis)
        if self.version == 2:
            d = cg.dirs["unified"]
            if resources.memory_limit_bytes:
                _write(os.path.join(d, "memory.max"), str(resources.memory_limit_bytes))
                with contextlib.suppress(OSError):
                    _write(os.path.join(d, "memory.swap.max"), "0")
                with contextlib.suppress(OSError):
                    _write(os.path.join(d, "memory.oom.group"), "1")
            if resources.cpu_limit_millis:
                quota = resources.cpu_limit_millis * CFS_PERIOD_US // 1000
                _write(os.path.join(d, "cpu.max"), f"{quota} {CFS_PERIOD_US}")
            _write(os.path.join(d, "cpu.weight"), str(1 + ((shares - 2) * 9999) // 262142))
        else:
            if resources.memory_limit_bytes:
                _write(os.path.join(cg.dirs["memory"], "memory.limit_in_bytes"), str(resources.memory_limit_bytes))
                with contextlib.suppress(OSError):
                    _write(os.path.join(cg.dirs["memory"], "memory.swappiness"), "0")
            if resources.cpu_limit_millis:
                _write(os.path.join(cg.dirs["cpu"], "cpu.cfs_period_us"), str(CFS_PERIOD_US))
                quota = max(1000, resources.cpu_limit_millis * CFS_PERIOD_US // 1000)
                _write(os.path.join(cg.dirs["cpu"], "cpu.cfs_quota_us"), str(quota))
            _write(os.path.join(cg.dirs["cpu"], "cpu.shares"), str(shares))
        return cg


def _probe_writable(directory: str) -> None:
    """Creating the parent can succeed although it belongs to someone else (another
    kubeling running as root made it): prove we can make children in it, or raise."""
    probe = os.path.join(directory, f".probe-{os.getpid()}")
    os.mkdir(probe)
    os.rmdir(probe)
