"""One PodWorker per pod: drives the pod's sandbox and containers toward its spec.

Kubernetes' kubelet serializes all work on a pod through one pod worker
goroutine; we do the same with one asyncio task per pod uid. The worker is
level-triggered: each pass of `_sync` looks at what the runtime has (the
container records kept current by one exit-watcher task per container and by
the probe workers) and does the next step — create the sandbox, run the next
init container, start or restart what should run, kill what failed its
liveness probe — then writes the pod status if it changed, and sleeps until
something wakes it (an exit, a probe result, a pod update) or a back-off timer
expires. Termination (API deletion, force deletion, kubelet shutdown) is the
last pass and always leaves no process behind.

The start/restart mechanics of single containers live in `ContainerRunner`
(containers.py) so that this module stays about the pod as a whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from typing import Any

from kubeling.api.errors import StatusError
from kubeling.client import resources
from kubeling.client.errors import APIUnavailable
from kubeling.kubelet.containers import ContainerRunner, WorkerDeps
from kubeling.kubelet.lifecycle import grace_period, kill_container, pod_ref
from kubeling.kubelet.runconfig import log_directory
from kubeling.kubelet.sandbox import PodSandbox
from kubeling.kubelet.status import ContainerRecord, build_status, restore_records

Obj = dict[str, Any]
log = logging.getLogger(__name__)

OWNED_CONDITIONS = frozenset({"PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
                              "PodScheduled"})
RETRY_DELAY = 2.0  # seconds before retrying a sync pass that failed unexpectedly
VOLUME_RESYNC = 60.0  # seconds between refreshes of configMap/secret volumes (kubelet's syncFrequency)
FORCE_GRACE = 1.0  # force-deleted pods (gone from the API) still get one second to exit


class PodWorker:
    """Runs one pod (by uid) until it is deleted or the kubelet stops."""

    def __init__(self, deps: WorkerDeps, pod: Obj) -> None:
        self.deps = deps
        self.pod = pod  # the informer's object: read-only
        meta = pod["metadata"]
        self.uid: str = meta["uid"]
        self.namespace: str = meta.get("namespace") or "default"
        self.name: str = meta["name"]
        spec = pod.get("spec") or {}
        self.init = [ContainerRecord(c, init=True) for c in spec.get("initContainers") or []]
        self.regular = [ContainerRecord(c) for c in spec.get("containers") or []]
        self.sandbox = PodSandbox(deps, self.uid)
        api_status = pod.get("status") or {}
        self.sandbox.start_time = api_status.get("startTime") or ""
        self.terminal = api_status.get("phase") in ("Succeeded", "Failed")
        self._frozen = self.terminal
        self._gone = False
        self._shutdown: float | None = None  # kubelet shutdown: stop containers, keep the pod
        self._grace_in_use = 0.0  # while terminating: the grace period the containers were given
        self._initialized = False  # every regular init container has succeeded once
        self._volumes_synced = time.monotonic()
        self._wake = asyncio.Event()
        self._last_status: Obj | None = None
        self._task: asyncio.Task[None] | None = None
        self.done = asyncio.Event()
        self.runner = ContainerRunner(deps, self)
        if not self.terminal:
            restore_records(self.records(), api_status)

    # -- the sandbox's parts, as the container runner, probes and node server read them ------------

    @property
    def sandbox_id(self) -> str:
        return self.sandbox.id

    @property
    def pod_ip(self) -> str:
        return self.sandbox.pod_ip

    @property
    def volume_dirs(self) -> dict[str, str]:
        return self.sandbox.volume_dirs

    @property
    def start_time(self) -> str:
        return self.sandbox.start_time

    # -- what the kubelet calls -------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker's task."""
        self._task = asyncio.create_task(self._run(), name=f"podworker-{self.namespace}/{self.name}")

    def update(self, pod: Obj) -> None:
        """A newer version of the pod arrived from the informer."""
        self.pod = pod
        # `image` is the one mutable container field: a changed one means a restart with the new definition.
        specs = {c["name"]: c for key in ("initContainers", "containers")
                 for c in (pod.get("spec") or {}).get(key) or []}
        for rec in self.records():
            new = specs.get(rec.name)
            if new is not None and new.get("image") != rec.spec.get("image"):
                rec.spec = new
                if rec.running and not (rec.init and not rec.sidecar):
                    self.runner.definition_changed(rec)
        self.wake()

    def remove(self) -> None:
        """The pod is gone from the API (force deletion): stop quickly and clean up."""
        self._gone = True
        self.wake()

    def wake(self) -> None:
        """Run a sync pass soon (exits, probe results and updates call this)."""
        self._wake.set()

    async def shutdown(self, grace: float) -> None:
        """Kubelet shutdown: stop every container (at most `grace` seconds each) but keep the API pod."""
        self._shutdown = grace
        self.wake()
        if self._task is not None:
            await self.done.wait()

    def records(self) -> list[ContainerRecord]:
        """Every container record, init containers first."""
        return [*self.init, *self.regular]

    def record(self, name: str) -> ContainerRecord | None:
        """The record of container `name` (init or regular)."""
        return next((r for r in self.records() if r.name == name), None)

    # -- the loop ---------------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            while True:
                self._wake.clear()
                if self._shutdown is not None:
                    await self._stop_everything(override=None, cap=self._shutdown, final=False)
                    return
                if self._gone or (self.pod.get("metadata") or {}).get("deletionTimestamp"):
                    await self._terminate()
                    return
                try:
                    delay = await self._sync()
                    await self.write_status()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("sync of pod %s/%s failed", self.namespace, self.name)
                    delay = RETRY_DELAY
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):  # not wait_for: it can swallow a racing cancel
                        await self._wake.wait()
        except asyncio.CancelledError:
            # Cancelled from outside (tests, crashes): never leave a process running.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._stop_everything(override=FORCE_GRACE, cap=None, final=False))
            raise
        finally:
            self.done.set()

    async def _sync(self) -> float | None:
        """One level-triggered pass; returns seconds until the next timed step (None: wait for a wake)."""
        if self.terminal:
            return None
        if not self.sandbox_id:
            retry = await self.sandbox.create(self.pod)
            if retry is not None:
                return retry
        await self.runner.process_kills()
        policy = (self.pod.get("spec") or {}).get("restartPolicy", "Always")
        delays: list[float] = []
        for rec in self.init:
            if rec.sidecar:
                delays.append(await self.runner.ensure(rec, restart=True))
                if not rec.started and not self._initialized:
                    return _soonest(delays)  # the next init container waits for this sidecar's startup
                continue
            if rec.succeeded:
                continue
            if rec.running or rec.create_failed:
                return _soonest(delays)
            if rec.exit_code is not None and policy == "Never":
                await self._finish()  # an init container failed and may not be retried: the pod failed
                return None
            # Init containers restart on failure whatever the policy says (Always counts as OnFailure).
            delays.append(await self.runner.ensure(rec, restart=True))
            return _soonest(delays)
        self._initialized = True  # from now on a restarting sidecar no longer holds the app containers back
        delays.append(await self._refresh_volumes())
        for rec in self.regular:
            delays.append(await self.runner.ensure(rec, restart=self._should_restart(rec, policy)))
        if policy != "Always" and all(r.exit_code is not None and not self._should_restart(r, policy)
                                      for r in self.regular):
            await self._finish()
            return None
        return _soonest(delays)

    async def _refresh_volumes(self) -> float:
        """Rewrite configMap/secret/downwardAPI volumes whose source changed (the kubelet's periodic sync)."""
        now = time.monotonic()
        if now - self._volumes_synced >= VOLUME_RESYNC:
            self._volumes_synced = now
            try:
                await self.deps.volumes.refresh(self.pod)
            except Exception as err:
                log.warning("refreshing volumes of %s/%s failed: %s", self.namespace, self.name, err)
        return max(self._volumes_synced + VOLUME_RESYNC - now, 0.1)

    def _should_restart(self, rec: ContainerRecord, policy: str) -> bool:
        if policy == "Always" or rec.name in self.runner.restart_anyway:
            return True
        if policy == "OnFailure":
            return rec.exit_code not in (0, None)
        return False

    async def _finish(self) -> None:
        """Every regular container is done for good: stop the sidecars and report the final phase."""
        sidecars = [r for r in reversed(self.init) if r.sidecar and r.running]
        for rec in sidecars:
            await self.runner.kill(rec, grace=grace_period(self.pod, rec.spec))
        await self.runner.wait_exits(sidecars, timeout=5.0)
        self.terminal = True
        await self.write_status(terminal=True)
        # Nothing runs in the pod any more: its network goes (the loopback address stays until deletion).
        await self.sandbox.release_network(self.pod, final=False)

    # -- termination ------------------------------------------------------------------------------

    async def _stop_everything(self, *, override: float | None, cap: float | None, final: bool) -> None:
        """App containers first, then sidecars in reverse order (Kubernetes' order); then the sandbox
        (`final`: the pod is deleted, not just stopped with the kubelet).

        While containers are stopping, a shorter grace period (a second `kubectl delete --grace-period`,
        or `--force` removing the pod) re-signals them with the shorter timeout, as the kubelet does.
        """
        await self.runner.stop_probes()
        graces = [grace_period(self.pod, r.spec) for r in self.records() if r.running]
        self._grace_in_use = override if override is not None else min([*graces, cap] if cap else graces,
                                                                        default=0.0)
        job = asyncio.ensure_future(self._kill_all(override=override, cap=cap))
        faster: list[asyncio.Future[Any]] = []
        deadline: float | None = None  # once shortened, the slow stop calls get this long, then are dropped
        loop = asyncio.get_running_loop()
        while not job.done():
            waker = asyncio.ensure_future(self._wake.wait())
            timeout = None if deadline is None else max(deadline - loop.time(), 0)
            await asyncio.wait({job, waker}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            waker.cancel()
            if deadline is not None and loop.time() >= deadline:
                job.cancel()
                break
            if self._wake.is_set():
                self._wake.clear()
                shorter = self._shorter_grace()
                if shorter is not None:
                    faster += [asyncio.ensure_future(self.deps.runtime.stop_container(r.id, shorter))
                               for r in self.records() if r.running and r.id]
                    deadline = loop.time() + shorter + 2.0
        await asyncio.gather(job, *faster, return_exceptions=True)
        await self.runner.wait_exits(self.records(), timeout=2.0)
        await self._remove_sandbox(final=final)

    def _shorter_grace(self) -> float | None:
        meta = self.pod.get("metadata") or {}
        grace: float | None = None
        if self._gone:
            grace = FORCE_GRACE
        elif meta.get("deletionTimestamp") and meta.get("deletionGracePeriodSeconds") is not None:
            grace = float(meta["deletionGracePeriodSeconds"])
        if grace is not None and grace < self._grace_in_use:
            self._grace_in_use = grace
            return grace
        return None

    async def _kill_all(self, *, override: float | None, cap: float | None) -> None:
        async def kill(rec: ContainerRecord) -> None:
            grace = grace_period(self.pod, rec.spec)
            if cap is not None:
                grace = min(grace, cap)
            await self.deps.event(self.pod, "Normal", "Killing", f"Stopping container {rec.name}")
            try:
                await kill_container(self.deps.runtime, pod=self.pod, container=rec.spec, container_id=rec.id,
                                     pod_ip=self.pod_ip, grace=grace, override=override)
            except Exception:
                log.exception("stopping container %s of %s failed", rec.name, pod_ref(self.pod))

        await asyncio.gather(*(kill(r) for r in self.regular if r.running and r.id))
        for rec in [r for r in reversed(self.init) if r.running and r.id]:
            await kill(rec)

    async def _remove_sandbox(self, *, final: bool) -> None:
        runtime = self.deps.runtime
        for rec in self.records():
            for cid in (rec.id, rec.previous_id):
                if cid:
                    with contextlib.suppress(Exception):
                        await runtime.remove_container(cid)
        self.runner.cancel_watchers()
        await self.sandbox.remove(self.pod, final=final)

    async def _terminate(self) -> None:
        """Graceful deletion: preStop, SIGTERM, SIGKILL after the grace period, then finish the DELETE."""
        deps = self.deps
        if self._gone:
            await self._stop_everything(override=FORCE_GRACE, cap=None, final=True)
        else:
            await self._stop_everything(override=None, cap=None, final=True)
            if not self.terminal:
                self.terminal = True
                with contextlib.suppress(Exception):
                    await self.write_status(terminal=True)
        with contextlib.suppress(Exception):
            await deps.volumes.cleanup(self.uid)
        shutil.rmtree(log_directory(deps.root_dir, self.pod), ignore_errors=True)
        deps.backoff.forget(self.uid + "/")
        if self._gone:
            return
        try:
            await deps.client.delete(resources.PODS, self.name, namespace=self.namespace, grace_period_seconds=0,
                                     preconditions={"uid": self.uid})
        except StatusError as err:
            if err.code not in (404, 409):
                log.warning("deleting pod %s/%s failed: %s", self.namespace, self.name, err)
        except APIUnavailable as err:
            log.warning("deleting pod %s/%s failed: %s", self.namespace, self.name, err)

    # -- status -----------------------------------------------------------------------------------

    def compute_status(self, *, terminal: bool = False) -> Obj:
        """The status this worker would report now."""
        api = self.pod.get("status") or {}
        base = dict(api)
        if self._last_status is not None:
            # Our own conditions as we last wrote them (the informer may lag), others' from the API.
            base["conditions"] = [c for c in self._last_status.get("conditions") or []
                                  if c.get("type") in OWNED_CONDITIONS] + \
                                 [c for c in api.get("conditions") or [] if c.get("type") not in OWNED_CONDITIONS]
        pod = {**self.pod, "status": base}
        return build_status(pod, init=self.init, regular=self.regular, runtime_name=self.deps.runtime.name,
                            pod_ip=self.pod_ip, host_ip=self.deps.host_ip, start_time=self.start_time,
                            sandbox_ready=bool(self.sandbox_id), terminal=terminal)

    async def write_status(self, *, terminal: bool = False) -> None:
        """PUT the status subresource when it changed (unconditional update, retried on conflict)."""
        if self._frozen:
            return  # finished before this kubelet started: its final status stays as it was reported
        status = self.compute_status(terminal=terminal)
        if status == self._last_status or (self._last_status is None and status == self.pod.get("status")):
            return
        meta = {k: v for k, v in self.pod["metadata"].items() if k not in ("resourceVersion", "managedFields")}
        body = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": self.pod.get("spec") or {},
                "status": status}
        for attempt in range(5):
            try:
                await self.deps.client.update(resources.PODS, body, subresource="status")
                self._last_status = status
                return
            except StatusError as err:
                if err.code == 404:
                    return  # deleted meanwhile: the informer will tell the kubelet
                if err.code != 409 or attempt == 4:
                    raise
            await asyncio.sleep(0.05 * (attempt + 1))


def _soonest(delays: list[float | None]) -> float | None:
    timed = [d for d in delays if d]
    return min(timed) if timed else None
