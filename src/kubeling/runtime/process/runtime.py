"""ProcessRuntime: each container is a host process tree in its own session.

The runtime that needs nothing but Linux: no images, no daemon. A pod sandbox
is a record (hostname, pod IP, log directory, pod cgroup and, in root mode,
the pod's network namespace); a container is the host binary named by its
command, started by the init helper (init.py) in its own session, UTS + mount
namespaces (own user namespace when not root, where the kernel allows) and
cgroup. Namespaces are per container, each set up with the pod's hostname and
that container's mounts: the visible result is the pod's, without a
long-lived "pause" process per pod. The network namespace is the exception:
it is the pod's, created and wired by the kubelet's network layer (CNI) and
pinned under /run/netns, so every container of the pod joins the same one
and it outlives container restarts, as the pause container's does.

State lives under `root_dir` (see state.py) so a new instance adopts the
processes of a previous one by pid; `close()` stops every container, so the
kubelet's shutdown leaves no process behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import time

from ..interface import (
    ContainerConfig,
    ContainerStats,
    ContainerStatus,
    PodSandboxConfig,
    RuntimeError_,
    SandboxStatus,
    StreamSession,
)
from . import spawn, streams
from .cgroups import Cgroup, CgroupManager
from .container import LiveContainer, prepare_io
from .logs import MAX_LINE
from .namespaces import Capabilities, probe_namespaces
from .state import ContainerRecord, SandboxRecord, StateDir

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class ProcessRuntime:
    """The `Runtime` contract on host processes (see the module docstring)."""

    name = "process"
    version = "0.1.0"

    def __init__(self, root_dir: str, *, cgroup_parent: str = "", use_namespaces: bool = True,
                 use_cgroups: bool = True, max_log_line: int = MAX_LINE, close_grace: float = 5.0) -> None:
        self.dirs = StateDir(root_dir)
        self._cgroup_parent = cgroup_parent or "kubeling"
        self._want_ns = use_namespaces
        self._want_cgroups = use_cgroups
        self._max_line = max_log_line
        self._close_grace = close_grace
        self._caps = Capabilities(root=os.geteuid() == 0)
        self._cgroups: CgroupManager | None = None
        self._sandboxes: dict[str, SandboxRecord] = {}
        self._records: dict[str, ContainerRecord] = {}
        self._live: dict[str, LiveContainer] = {}
        self._started = False

    # ---- lifecycle --------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        caps = self._caps
        if self._want_ns:
            ok, mounts, err = await probe_namespaces()
            caps.hostname, caps.mounts = ok, mounts
            caps.user_namespace = ok and not caps.root
            if err:
                caps.notes.append(f"namespaces unavailable: {err}")
        else:
            caps.notes.append("namespaces disabled by configuration")
        if self._want_cgroups:
            self._cgroups = CgroupManager(self._cgroup_parent)
            caps.cgroups, caps.cgroup_version = self._cgroups.enabled, self._cgroups.version
            if not self._cgroups.enabled:
                caps.notes.append(self._cgroups.reason)
                self._cgroups = None
        else:
            caps.notes.append("cgroups disabled by configuration")
        sandboxes, containers = self.dirs.load()
        self._sandboxes = {s.id: s for s in sandboxes}
        for rec in containers:
            self._records[rec.id] = rec
            if rec.state == "running":
                self._adopt(rec)

    def capabilities(self) -> Capabilities:
        """What this runtime can enforce here (valid after `start`)."""
        return self._caps

    async def close(self) -> None:
        """Stop every running container (SIGTERM, SIGKILL after `close_grace`), then release resources."""
        running = [cid for cid, live in self._live.items() if not live.exited.is_set()]
        await asyncio.gather(*(self.stop_container(cid, self._close_grace) for cid in running))
        for live in self._live.values():
            live.cancel()
        self._live.clear()
        # Every container is stopped: drop their cgroups so none outlives us (a later instance
        # recreates a pod's cgroup when it creates a container in it).
        version = self._caps.cgroup_version or 1
        for dirs in [r.cgroup for r in self._records.values() if r.cgroup]:
            await asyncio.to_thread(Cgroup(version, dirs).remove, 0.5)
        for dirs in [s.cgroup for s in self._sandboxes.values() if s.cgroup]:
            Cgroup(version, dirs).remove_if_empty()
        if self._cgroups is not None:
            for d in self._cgroups.base.values():
                with contextlib.suppress(OSError):
                    os.rmdir(d)  # only when no other instance's pod is left in it

    # ---- sandboxes --------------------------------------------------------------

    async def run_pod_sandbox(self, config: PodSandboxConfig) -> str:
        if config.netns_path:
            if not self._caps.root:
                raise RuntimeError_("joining a pod network namespace needs root", reason="CreatePodSandboxError")
            if not _exists(config.netns_path):
                raise RuntimeError_(f"pod network namespace {config.netns_path} does not exist",
                                    reason="CreatePodSandboxError")
        sid = secrets.token_hex(16)
        os.makedirs(config.log_directory, exist_ok=True)
        rec = SandboxRecord(sid, config, time.time())
        if self._cgroups is not None:
            rec.cgroup = self._cgroups.pod(config.uid or sid).dirs
        self._sandboxes[sid] = rec
        self.dirs.save_sandbox(rec)
        return sid

    async def stop_pod_sandbox(self, sandbox_id: str) -> None:
        rec = self._sandboxes.get(sandbox_id)
        if rec is None:
            return
        # The kubelet stopped containers gracefully before; whatever is left is killed now.
        await asyncio.gather(*(self.stop_container(c.id, 0) for c in self._in_sandbox(sandbox_id)))
        rec.ready = False
        self.dirs.save_sandbox(rec)

    async def remove_pod_sandbox(self, sandbox_id: str) -> None:
        rec = self._sandboxes.get(sandbox_id)
        if rec is None:
            return
        await self.stop_pod_sandbox(sandbox_id)
        for c in self._in_sandbox(sandbox_id):
            await self.remove_container(c.id)
        if rec.cgroup:  # pod<uid> is shared by every sandbox of the pod: removed once unused
            Cgroup(self._caps.cgroup_version or 1, rec.cgroup).remove_if_empty()
        del self._sandboxes[sandbox_id]
        self.dirs.delete_sandbox(sandbox_id)

    async def pod_sandbox_status(self, sandbox_id: str) -> SandboxStatus | None:
        rec = self._sandboxes.get(sandbox_id)
        if rec is None:
            return None
        return SandboxStatus(rec.id, rec.ready, rec.config.pod_ip, rec.created_at)

    async def list_pod_sandboxes(self) -> list[tuple[str, PodSandboxConfig]]:
        return [(s.id, s.config) for s in self._sandboxes.values()]

    def _in_sandbox(self, sandbox_id: str) -> list[ContainerRecord]:
        return [r for r in self._records.values() if r.sandbox_id == sandbox_id]

    def _sandbox(self, sandbox_id: str) -> SandboxRecord:
        rec = self._sandboxes.get(sandbox_id)
        if rec is None:
            raise RuntimeError_(f"pod sandbox {sandbox_id} not found", reason="NotFound")
        return rec

    # ---- containers -------------------------------------------------------------

    async def create_container(self, sandbox_id: str, config: ContainerConfig) -> str:
        sandbox = self._sandbox(sandbox_id)
        if not sandbox.ready:
            raise RuntimeError_(f"pod sandbox {sandbox_id} is stopped", reason="CreateContainerError")
        if not config.command:
            raise RuntimeError_("container has no command; the process runtime runs host binaries only",
                                reason="ContainerCannotRun")
        if _moves_paths(config) and not self._caps.mounts:
            raise RuntimeError_("volumes need a private mount namespace, unavailable on this host: "
                                + "; ".join(self._caps.notes), reason="ContainerCannotRun")
        cid = secrets.token_hex(16)
        os.makedirs(self.dirs.container_dir(cid))
        log_path = config.log_path or os.path.join(
            sandbox.config.log_directory, config.name, f"{config.attempt}.log")
        rec = ContainerRecord(cid, sandbox_id, config, log_path, time.time())
        if sandbox.config.netns_path:
            rec.namespaces.append("net")  # the pod's: an exec joins it like the container did
        if self._caps.hostname:
            rec.namespaces += ["mnt", "uts"] + (["user"] if self._caps.user_namespace else [])
        if self._cgroups is not None and sandbox.cgroup:
            pod = Cgroup(self._cgroups.version, sandbox.cgroup)
            try:
                rec.cgroup = self._cgroups.container(pod, cid[:16], config.resources).dirs
            except OSError as exc:
                raise RuntimeError_(f"cannot set up the container's cgroup: {exc}",
                                    reason="CreateContainerError") from exc
        self._records[cid] = rec
        self.dirs.save_container(rec)
        return cid

    def _record(self, container_id: str) -> ContainerRecord:
        rec = self._records.get(container_id)
        if rec is None:
            raise RuntimeError_(f"container {container_id} not found", reason="NotFound")
        return rec

    def _env(self, rec: ContainerRecord) -> dict[str, str]:
        """Exactly the container's env, plus PATH and HOSTNAME if it lacks them (as container runtimes do)."""
        env = dict(rec.config.env)
        env.setdefault("PATH", DEFAULT_PATH)
        hostname = self._sandboxes[rec.sandbox_id].config.hostname if rec.sandbox_id in self._sandboxes else ""
        if hostname:
            env.setdefault("HOSTNAME", hostname)
        return env

    async def start_container(self, container_id: str) -> None:
        rec = self._record(container_id)
        if rec.state != "created":
            raise RuntimeError_(f"container {container_id} is {rec.state}, not created", reason="StartError")
        sandbox = self._sandboxes[rec.sandbox_id]
        cfg, cdir = rec.config, self.dirs.container_dir(container_id)
        cgroup = Cgroup(self._caps.cgroup_version, rec.cgroup) if rec.cgroup else None
        spec: spawn.InitSpec = {
            "mode": "run", "argv": cfg.command, "env": self._env(rec), "cwd": cfg.working_dir,
            "cgroup_procs": cgroup.procs_files() if cgroup else [], "tty": cfg.tty,
            "netns": sandbox.config.netns_path if "net" in rec.namespaces else "",
            "namespaces": "uts" in rec.namespaces, "userns": "user" in rec.namespaces,
            "hostname": sandbox.config.hostname,
            # Parents before children, so a mount inside another volume is not hidden by it.
            "mounts": [(m.host_path, m.container_path, m.read_only)
                       for m in sorted(cfg.mounts, key=lambda m: m.container_path.rstrip("/").count("/"))],
            "staging": os.path.join(cdir, "rootfs"), "stash": os.path.join(cdir, "stash"),
        }
        if spec["mounts"]:
            os.makedirs(spec["staging"], exist_ok=True)
            os.makedirs(spec["stash"], exist_ok=True)
        live = LiveContainer(rec, cgroup, self.dirs.save_container, max_line=self._max_line)
        stdin, stdout, stderr, child_fds, readers = prepare_io(live, cdir)
        status_r, status_w = os.pipe()
        try:
            pid = spawn.spawn(spec, stdin=stdin, stdout=stdout, stderr=stderr, status_fd=status_w)
        except OSError as exc:
            for fd in [*child_fds, status_r, status_w]:
                os.close(fd)
            live.cancel()
            raise RuntimeError_(f"cannot start the container: {exc}", reason="StartError") from exc
        rec.pid, rec.pid_start = pid, spawn.start_time(pid)
        for fd in [*child_fds, status_w]:
            os.close(fd)
        rec.state, rec.started_at = "running", time.time()
        live.start_pump(readers)
        self._live[container_id] = live
        error = await spawn.read_status_pipe(status_r)
        if error:
            await spawn.wait_pid(pid)
            live.finish(128)
            rec.reason, rec.message = "ContainerCannotRun", error.decode(errors="replace")
            self.dirs.save_container(rec)
            raise RuntimeError_(rec.message, reason="ContainerCannotRun")
        self.dirs.save_container(rec)
        live.watch()

    def _adopt(self, rec: ContainerRecord) -> None:
        """Take over a container left running by a previous instance, or mark it lost."""
        cgroup = Cgroup(self._caps.cgroup_version or 1, rec.cgroup) if rec.cgroup else None
        live = LiveContainer(rec, cgroup, self.dirs.save_container, max_line=self._max_line)
        self._live[rec.id] = live
        live.adopt(self.dirs.container_dir(rec.id))

    async def stop_container(self, container_id: str, timeout: float) -> None:
        self._record(container_id)
        live = self._live.get(container_id)
        if live is None or live.exited.is_set():
            return
        live.stop_requested = True
        live.signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(live.exited.wait(), timeout=max(timeout, 0.0) or 0.001)
            return
        live.killed = True
        live.signal(signal.SIGKILL)
        if live.cgroup:
            live.cgroup.kill_all()
        await live.exited.wait()

    async def remove_container(self, container_id: str) -> None:
        rec = self._records.get(container_id)
        if rec is None:
            return
        await self.stop_container(container_id, 0)
        live = self._live.pop(container_id, None)
        if live is not None:
            live.cancel()
        if rec.cgroup:
            await asyncio.to_thread(Cgroup(self._caps.cgroup_version or 1, rec.cgroup).remove)
        del self._records[container_id]
        shutil.rmtree(self.dirs.container_dir(container_id), ignore_errors=True)

    async def container_status(self, container_id: str) -> ContainerStatus | None:
        rec = self._records.get(container_id)
        return None if rec is None else rec.status()

    async def list_containers(self, sandbox_id: str | None = None) -> list[ContainerStatus]:
        return [r.status() for r in self._records.values() if sandbox_id in (None, r.sandbox_id)]

    async def wait_container(self, container_id: str) -> ContainerStatus:
        rec = self._record(container_id)
        live = self._live.get(container_id)
        if rec.state == "created" or live is None:
            raise RuntimeError_(f"container {container_id} was never started", reason="NotStarted")
        await live.exited.wait()
        return rec.status()

    # ---- streams ----------------------------------------------------------------

    def _running(self, container_id: str) -> LiveContainer:
        live = self._live.get(container_id)
        self._record(container_id)
        if live is None or live.exited.is_set():
            raise RuntimeError_(f"container {container_id} is not running", reason="ContainerNotRunning")
        return live

    async def exec(self, container_id: str, command: list[str], *, tty: bool, stdin: bool) -> StreamSession:
        live = self._running(container_id)
        return streams.exec_session(live, command, env=self._env(live.rec), tty=tty, stdin=stdin)

    async def exec_sync(self, container_id: str, command: list[str], timeout: float) -> tuple[int, bytes]:
        return await streams.collect(await self.exec(container_id, command, tty=False, stdin=False), command,
                                     timeout)

    async def attach(self, container_id: str, *, stdin: bool, tty: bool) -> StreamSession:
        return streams.attach_session(self._running(container_id), stdin=stdin)

    async def port_forward(self, sandbox_id: str, port: int) -> tuple[object, object]:
        return await streams.connect_port(self._sandbox(sandbox_id).config, port)

    async def container_stats(self, container_id: str) -> ContainerStats | None:
        rec = self._records.get(container_id)
        if rec is None:
            return None
        live = self._live.get(container_id)
        now = time.time()
        if live is not None and live.cgroup is not None:
            usage = live.cgroup.usage()
            if usage is not None:
                return ContainerStats(usage[0], usage[1], usage[2], now)
        if rec.state != "running":
            return ContainerStats(timestamp=now)
        cpu, rss = await asyncio.to_thread(spawn.usage, rec.pid)
        return ContainerStats(cpu, rss, rss, now)


def _exists(path: str) -> bool:
    return os.path.exists(path)


def _moves_paths(config: ContainerConfig) -> bool:
    """Whether some mount shows a host path elsewhere (which needs a mount namespace)."""
    return any(os.path.normpath(m.host_path) != os.path.normpath(m.container_path) for m in config.mounts)
