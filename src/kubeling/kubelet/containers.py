"""Starting, watching, probing, restarting and killing the containers of one pod.

`ContainerRunner` is the pod worker's hands (kuberuntime_container.go's
startContainer/killContainer plus the CrashLoopBackOff bookkeeping of
kuberuntime_manager.go). It keeps, per container: an exit-watcher task that
turns the runtime's exit into a `terminated` state and wakes the worker, the
probe workers of the current instance, and kill requests from failed
liveness/startup probes (executed by the worker's next pass so that all
runtime calls for a pod stay on the worker's task). Events use Kubernetes'
reasons and messages, since users grep `kubectl describe` output for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kubeling.client.events import EventRecorder
from kubeling.kubelet.backoff import Backoff
from kubeling.kubelet.lifecycle import grace_period, kill_container, pod_ref, run_hook
from kubeling.kubelet.podnet import PodNetworkProvider
from kubeling.kubelet.probes import LIVENESS, READINESS, STARTUP, ProbeWorker
from kubeling.kubelet.runconfig import ContainerConfigError, DNSSettings, container_config
from kubeling.kubelet.status import (
    CRASH_LOOP_BACK_OFF,
    CREATE_CONTAINER_ERROR,
    ContainerRecord,
    terminated_state,
    timestamp,
    waiting_state,
)
from kubeling.kubelet.volumes import VolumeManager
from kubeling.runtime.interface import Runtime

if TYPE_CHECKING:
    from kubeling.kubelet.podworker import PodWorker

Obj = dict[str, Any]
log = logging.getLogger(__name__)

CONFIG_RETRY = 5.0  # seconds before retrying a container whose config could not be built
POST_START_TIMEOUT = 30.0
DEFINITION_CHANGED = "definition"  # a kill request that is not a probe failure


@dataclass
class WorkerDeps:
    """What every pod worker shares: the API, the runtime and the node's helpers."""

    client: Any  # KubeClient (Any so tests may pass a recording double)
    runtime: Runtime
    recorder: EventRecorder
    backoff: Backoff
    volumes: VolumeManager
    network: PodNetworkProvider  # pod IPs and network namespaces (podnet.py)
    node_name: str
    host_ip: str
    root_dir: str
    dns: DNSSettings
    probe_time_scale: float = 1.0  # tests shrink probe periods
    services: Callable[[], list[Obj]] = list  # the Services the kubelet knows (for service env vars)

    async def event(self, pod: Obj, type_: str, reason: str, message: str) -> None:
        """Record an Event about `pod` (informer objects may lack kind/apiVersion)."""
        await self.recorder.event({"apiVersion": "v1", "kind": "Pod", "metadata": pod.get("metadata") or {}},
                                  type_, reason, message)


def go_duration(seconds: float) -> str:
    """Go's time.Duration text for whole seconds: 10s, 1m20s, 5m0s (as in back-off messages)."""
    total = int(round(seconds))
    if total < 60:
        return f"{total}s"
    return f"{total // 60}m{total % 60}s"


class ContainerRunner:
    """Starts and stops the containers of one pod worker."""

    def __init__(self, deps: WorkerDeps, worker: PodWorker) -> None:
        self.deps = deps
        self.worker = worker
        self._watchers: dict[str, asyncio.Task[None]] = {}  # container id → exit watcher
        self._probes: dict[str, list[ProbeWorker]] = {}  # container name → probe workers
        self._kills: dict[str, str] = {}  # container name → probe kind that failed
        self._retry_at: dict[str, float] = {}  # container name → when a config error may be retried
        self.restart_anyway: set[str] = set()  # killed for a new definition: restarts whatever the policy

    # -- start / restart ----------------------------------------------------------------------------

    async def ensure(self, rec: ContainerRecord, *, restart: bool) -> float | None:
        """Make `rec` run if it should; returns seconds until it should be looked at again."""
        if rec.running or rec.create_failed:
            return None
        if rec.exit_code is None:
            wait = self._retry_at.get(rec.name, 0) - time.monotonic()
            if wait > 0:
                return wait
            await self.start(rec)
            return CONFIG_RETRY if rec.name in self._retry_at else None
        if not restart:
            return None
        key = f"{self.worker.uid}/{rec.name}"
        backoff = self.deps.backoff
        remaining = backoff.remaining(key, rec.finished_at)
        if remaining > 0:
            if (rec.state.get("waiting") or {}).get("reason") != CRASH_LOOP_BACK_OFF:
                self._archive(rec)
                ref = pod_ref(self.worker.pod)
                rec.state = waiting_state(CRASH_LOOP_BACK_OFF, f"back-off {go_duration(backoff.delay(key))} "
                                          f"restarting failed container={rec.name} pod={ref}")
                await self.deps.event(self.worker.pod, "Warning", "BackOff",
                                      f"Back-off restarting failed container {rec.name} in pod {ref}")
            return remaining
        backoff.next(key, rec.finished_at)
        self.restart_anyway.discard(rec.name)
        self._archive(rec)
        rec.restart_count += 1
        if rec.previous_id:
            with contextlib.suppress(Exception):
                await self.deps.runtime.remove_container(rec.previous_id)  # keep one dead instance only
        rec.previous_id, rec.id, rec.exit_code = rec.id, "", None
        await self.start(rec)
        return None

    @staticmethod
    def _archive(rec: ContainerRecord) -> None:
        if "terminated" in rec.state:
            rec.last_state = {"terminated": rec.state["terminated"]}

    async def start(self, rec: ContainerRecord) -> None:
        """Create and start the container of `rec`, then its postStart hook and probes."""
        w, deps, spec = self.worker, self.deps, rec.spec
        pod = w.pod
        self._retry_at.pop(rec.name, None)
        try:
            config = await container_config(deps.client, pod, spec, root_dir=deps.root_dir, pod_ip=w.pod_ip,
                                            host_ip=deps.host_ip, node_name=deps.node_name,
                                            volumes=deps.volumes, volume_dirs=w.volume_dirs,
                                            attempt=rec.restart_count, services=deps.services(),
                                            pod_mounts=w.sandbox.pod_mounts)
        except ContainerConfigError as err:
            await self._cannot_create(rec, err.reason, str(err), retry=err.retry)
            return
        await deps.event(pod, "Normal", "Pulled", f'Container image "{spec.get("image", "")}" not pulled: '
                                                  f"the process runtime runs host binaries")
        try:
            cid = await deps.runtime.create_container(w.sandbox_id, config)
        except Exception as err:
            await self._cannot_create(rec, CREATE_CONTAINER_ERROR, str(err), retry=True)
            return
        await deps.event(pod, "Normal", "Created", f"Created container: {rec.name}")
        rec.id = cid
        try:
            await deps.runtime.start_container(cid)
        except Exception as err:
            # Like containerd's StartError: the container counts as run and failed (exit 128).
            await deps.event(pod, "Warning", "Failed", f"Error: {err}")
            now = time.time()
            rec.exit_code, rec.finished_at = 128, now
            rec.state = terminated_state(exit_code=128, reason=getattr(err, "reason", "StartError"),
                                         started_at=0, finished_at=now, message=str(err),
                                         container_id=f"{deps.runtime.name}://{cid}")
            return
        await deps.event(pod, "Normal", "Started", f"Started container: {rec.name}")
        status = await deps.runtime.container_status(cid)
        rec.state = {"running": {"startedAt": timestamp(status.started_at if status and status.started_at
                                                        else None)}}
        rec.started = not spec.get("startupProbe")
        rec.ready = rec.started and not spec.get("readinessProbe") and (not rec.init or rec.sidecar)
        self._watchers[cid] = asyncio.create_task(self._watch(rec, cid), name=f"watch-{rec.name}-{cid}")
        post_start = (spec.get("lifecycle") or {}).get("postStart")
        if post_start:
            error = await run_hook("PostStart", post_start, runtime=deps.runtime, container_id=cid, container=spec,
                                   pod=pod, pod_ip=w.pod_ip, timeout=POST_START_TIMEOUT)
            if error:
                await deps.event(pod, "Warning", "FailedPostStartHook", error)
                await self.kill(rec, grace=grace_period(pod, spec))
                return
        self._start_probes(rec, cid)

    async def _cannot_create(self, rec: ContainerRecord, reason: str, message: str, *, retry: bool) -> None:
        rec.state = waiting_state(reason, message)
        if retry:
            self._retry_at[rec.name] = time.monotonic() + CONFIG_RETRY
        else:
            rec.create_failed = True
        await self.deps.event(self.worker.pod, "Warning", "Failed", f"Error: {message}")

    async def _watch(self, rec: ContainerRecord, cid: str) -> None:
        runtime = self.deps.runtime
        try:
            st = await runtime.wait_container(cid)
            exit_code, reason, message = st.exit_code, st.reason, st.message
            started_at, finished_at = st.started_at, st.finished_at or time.time()
        except asyncio.CancelledError:
            raise
        except Exception as err:
            log.warning("waiting for container %s failed: %s", cid, err)
            exit_code, reason, message, started_at, finished_at = 255, "Unknown", str(err), 0.0, time.time()
        if rec.id != cid:
            return
        await self.stop_probes(rec)
        rec.exit_code, rec.finished_at = exit_code, finished_at
        rec.state = terminated_state(exit_code=exit_code, reason=reason, started_at=started_at,
                                     finished_at=finished_at, message=message,
                                     container_id=f"{runtime.name}://{cid}")
        rec.started = False
        rec.ready = rec.init and not rec.sidecar and exit_code == 0
        self.worker.wake()

    # -- probes -------------------------------------------------------------------------------------

    def _start_probes(self, rec: ContainerRecord, cid: str) -> None:
        workers = []
        for kind in (STARTUP, LIVENESS, READINESS):
            probe = rec.spec.get(f"{kind.lower()}Probe")
            if not probe:
                continue
            pw = ProbeWorker(kind, probe, runtime=self.deps.runtime, container_id=cid, container=rec.spec,
                             pod_ip=lambda: self.worker.pod_ip, started=lambda: rec.started,
                             on_result=self._on_result(rec, cid), on_failure=self._on_failure(rec),
                             time_scale=self.deps.probe_time_scale)
            pw.start()
            workers.append(pw)
        self._probes[rec.name] = workers

    def _on_result(self, rec: ContainerRecord, cid: str) -> Callable[[str, bool], None]:
        def handle(kind: str, ok: bool) -> None:
            if rec.id != cid or not rec.running:
                return
            if kind == READINESS:
                rec.ready = ok
            elif kind == STARTUP and ok:
                rec.started = True
                rec.ready = not rec.spec.get("readinessProbe")
            elif not ok:
                self._kills[rec.name] = kind
            self.worker.wake()
        return handle

    def _on_failure(self, rec: ContainerRecord) -> Callable[[str, str], Awaitable[None]]:
        async def handle(kind: str, output: str) -> None:
            await self.deps.event(self.worker.pod, "Warning", "Unhealthy", f"{kind} probe failed: {output}")
        return handle

    async def stop_probes(self, rec: ContainerRecord | None = None) -> None:
        """Stop the probe workers of `rec` (of every container when None)."""
        names = [rec.name] if rec else list(self._probes)
        for name in names:
            for pw in self._probes.pop(name, []):
                await pw.stop()

    # -- kill -------------------------------------------------------------------------------------

    async def process_kills(self) -> None:
        """Kill the containers whose liveness or startup probe failed (they restart per restartPolicy)."""
        for name, kind in list(self._kills.items()):
            del self._kills[name]
            rec = self.worker.record(name)
            if rec is None or not rec.running:
                continue
            if kind == DEFINITION_CHANGED:
                message, probe_kind = f"Container {name} definition changed, will be restarted", ""
                self.restart_anyway.add(name)
            else:
                message, probe_kind = f"Container {name} failed {kind.lower()} probe, will be restarted", kind
            await self.deps.event(self.worker.pod, "Normal", "Killing", message)
            await self.kill(rec, grace=grace_period(self.worker.pod, rec.spec, probe_kind=probe_kind))

    def definition_changed(self, rec: ContainerRecord) -> None:
        """The container's spec changed (a new image): kill it on the next pass and start the new one."""
        self._kills[rec.name] = DEFINITION_CHANGED

    async def kill(self, rec: ContainerRecord, *, grace: float, override: float | None = None) -> None:
        """preStop, SIGTERM, SIGKILL after the grace period; the exit watcher records the exit."""
        await self.stop_probes(rec)
        if rec.id:
            await kill_container(self.deps.runtime, pod=self.worker.pod, container=rec.spec, container_id=rec.id,
                                 pod_ip=self.worker.pod_ip, grace=grace, override=override)

    async def wait_exits(self, recs: Iterable[ContainerRecord], *, timeout: float) -> None:
        """Wait (at most `timeout` s) for the exit watchers of `recs` to record their exits."""
        tasks = [self._watchers[r.id] for r in recs if r.id in self._watchers]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout)

    def cancel_watchers(self) -> None:
        """Stop every exit watcher (the pod's containers are being removed)."""
        for task in self._watchers.values():
            task.cancel()
        self._watchers.clear()
