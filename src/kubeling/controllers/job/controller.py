"""The Job controller (`pkg/controller/job`): run pods until enough succeed, or give up.

Each pass first settles the accounting journal (see `tracking.py`): newly
finished pods go to `uncountedTerminatedPods`, lose their tracking finalizer,
then land in the counters — each step its own status write, guarded by the
Job's resourceVersion so a stale cache can never move a counter backwards.
Only with the journal empty does the pass decide the Job's fate
(BackoffLimitExceeded, DeadlineExceeded, Complete) or, while it runs, create
pods up to `parallelism` (after an exponential back-off following failures)
or delete extras. Finished Jobs release their pods' finalizers and, with
ttlSecondsAfterFinished, are deleted when that time is up.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

from kubeling.api.errors import StatusError
from kubeling.client.resources import JOBS, PODS
from kubeling.controllers import podstate
from kubeling.controllers.base import Controller, controller_key, controller_ref, deep_copy, owner_reference
from kubeling.controllers.expectations import Expectations
from kubeling.controllers.job import tracking
from kubeling.controllers.job.tracking import COMPLETION_INDEX, TRACKING_FINALIZER

Obj = dict[str, Any]
log = logging.getLogger(__name__)


class JobController(Controller):
    """Creates a Job's pods, counts how they finish and sets Complete or Failed."""

    NAME = "job"
    WORKERS = 4
    # Kubernetes' DefaultJobPodFailureBackOff and MaxJobPodFailureBackOff; tests shorten them.
    backoff_base = 10.0
    backoff_max = 360.0

    now: Callable[[], dt.datetime] = staticmethod(lambda: dt.datetime.now(dt.UTC))  # type: ignore[assignment]

    def setup(self) -> None:
        self.expectations = Expectations()
        self._removing: dict[str, set[str]] = {}  # job key → pod uids whose finalizer removal is in flight
        self._last_failure: dict[str, float] = {}
        self.jobs = self.enqueue_handlers(JOBS)
        self.pods = self.watch(PODS, on_add=self._pod_added, on_update=lambda _o, n: self._pod_updated(n),
                               on_delete=self._pod_deleted)

    # ---- handlers --------------------------------------------------------------------------------

    def _owner_key(self, pod: Obj) -> str | None:
        return controller_key(pod, "Job")

    def _pod_added(self, pod: Obj) -> None:
        if (key := self._owner_key(pod)) is not None:
            self.expectations.creation_observed(key)
            self._pod_updated(pod)

    def _pod_updated(self, pod: Obj) -> None:
        if (key := self._owner_key(pod)) is not None:
            if not tracking.has_finalizer(pod):
                self._removing.get(key, set()).discard(pod["metadata"]["uid"])
            self.enqueue_key(key)

    def _pod_deleted(self, pod: Obj) -> None:
        if (key := self._owner_key(pod)) is not None:
            self.expectations.deletion_observed(key)
            self._removing.get(key, set()).discard(pod["metadata"]["uid"])
            self.enqueue_key(key)

    # ---- reconcile -------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        job = self.jobs.get(key)
        if job is None:
            self.expectations.forget(key)
            self._removing.pop(key, None)
            self._last_failure.pop(key, None)
            return
        uid = job["metadata"]["uid"]
        pods = [p for p in self.pods.indexer.by_index("namespace", job["metadata"]["namespace"])
                if (ref := controller_ref(p)) is not None and ref.get("uid") == uid]
        if tracking.is_finished(job):
            for pod in pods:
                if tracking.has_finalizer(pod):
                    await self._remove_finalizer(key, pod)
            await self._expire(job)
            return
        if await self._track(key, job, pods):
            return  # a journal step was written; its watch event brings the next pass
        if self.expectations.satisfied(key):
            await self._sync(key, job, pods)

    async def _track(self, key: str, job: Obj, pods: list[Obj]) -> bool:
        """Advance the counting journal by one step; True when it wrote the Job's status."""
        status = job.get("status") or {}
        uncounted = status.get("uncountedTerminatedPods") or {}
        succeeded, failed = set(uncounted.get("succeeded") or []), set(uncounted.get("failed") or [])
        removing = self._removing.setdefault(key, set())
        fresh = False
        for pod in pods:
            pod_uid = pod["metadata"]["uid"]
            result = tracking.finished_as(pod)
            if (result is None or not tracking.has_finalizer(pod) or pod_uid in removing
                    or pod_uid in succeeded or pod_uid in failed):
                continue
            (succeeded if result == "succeeded" else failed).add(pod_uid)
            fresh = True
        new = deep_copy(status)
        if fresh:  # step 1: journal the uids before any finalizer goes
            new["uncountedTerminatedPods"] = {"succeeded": sorted(succeeded), "failed": sorted(failed)}
            await self._write_status(job, new)
            return True
        if not succeeded and not failed:
            return False
        by_uid = {p["metadata"]["uid"]: p for p in pods}
        for pod_uid in succeeded | failed:  # step 2: let the pods go
            pod = by_uid.get(pod_uid)
            if pod is not None and tracking.has_finalizer(pod) and pod_uid not in removing:
                await self._remove_finalizer(key, pod)
        # step 3: count them
        if job["spec"].get("completionMode") == "Indexed":
            done = tracking.parse_indexes(status.get("completedIndexes"))
            done |= {i for u in succeeded if u in by_uid and (i := tracking.completion_index(by_uid[u])) is not None}
            done = {i for i in done if i < int(job["spec"].get("completions") or 0)}
            new["completedIndexes"] = tracking.format_indexes(done)
            new["succeeded"] = len(done)
        else:
            new["succeeded"] = int(status.get("succeeded") or 0) + len(succeeded)
        new["failed"] = int(status.get("failed") or 0) + len(failed)
        new["uncountedTerminatedPods"] = {}
        if failed:
            self._last_failure[key] = time.monotonic()
        await self._write_status(job, new)
        return True

    async def _sync(self, key: str, job: Obj, pods: list[Obj]) -> None:
        spec, status = job["spec"], deep_copy(job.get("status") or {})
        now = self.now()
        stamp = podstate.format_time(now)
        active = [p for p in pods if tracking.finished_as(p) is None]
        succeeded, failed = int(status.get("succeeded") or 0), int(status.get("failed") or 0)
        completions = spec.get("completions")
        indexed = spec.get("completionMode") == "Indexed"
        finished: tuple[str, str, str] | None = None
        if spec.get("suspend"):
            if active:
                await self._delete_pods(key, job, active)
                active = []
            if (tracking.condition(job, "Suspended") or {}).get("status") != "True":
                tracking.set_condition(status, "Suspended", "True", "JobSuspended", "Job suspended", stamp)
                await self.event(job, "Normal", "Suspended", "Job suspended")
        else:
            if (tracking.condition(job, "Suspended") or {}).get("status") == "True":
                tracking.set_condition(status, "Suspended", "False", "JobResumed", "Job resumed", stamp)
                status["startTime"] = stamp  # the deadline counts from the resume
                await self.event(job, "Normal", "Resumed", "Job resumed")
            status.setdefault("startTime", stamp)
            started = podstate.parse_time(status["startTime"]) or now
            deadline = spec.get("activeDeadlineSeconds")
            if failed > int(spec.get("backoffLimit", 6)):
                finished = ("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
            elif deadline is not None and (now - started).total_seconds() >= int(deadline):
                finished = ("Failed", "DeadlineExceeded", "Job was active longer than specified deadline")
            elif ((completions is not None and succeeded >= int(completions))
                  or (completions is None and succeeded > 0 and not active)):
                finished = ("Complete", "", "")
            elif deadline is not None:
                left = int(deadline) - (now - started).total_seconds()
                self.enqueue_after(key, max(left, 0) + 0.05)
        if finished is not None:
            if active:
                await self._delete_pods(key, job, active)
                if finished[0] == "Failed":
                    status["failed"] = failed + len(active)  # killed pods count as failures, as in Kubernetes
                active = []
            kind, reason, message = finished
            if kind == "Complete":
                tracking.set_condition(status, "SuccessCriteriaMet", "True", "CompletionsReached",
                                       "Reached expected number of succeeded pods", stamp)
                tracking.set_condition(status, "Complete", "True", "CompletionsReached",
                                       "Reached expected number of succeeded pods", stamp)
                status["completionTime"] = stamp
                await self.event(job, "Normal", "Completed", "Job completed")
            else:
                tracking.set_condition(status, "FailureTarget", "True", reason, message, stamp)
                tracking.set_condition(status, "Failed", "True", reason, message, stamp)
                await self.event(job, "Warning", reason, message)
        elif not spec.get("suspend"):
            active = await self._manage(key, job, active, indexed=indexed)
        status["active"] = len(active)
        status["ready"] = sum(1 for p in active if podstate.is_ready(p))
        status["terminating"] = sum(1 for p in pods if podstate.is_terminating(p) and not podstate.is_finished(p))
        status.setdefault("succeeded", succeeded)
        status.setdefault("failed", failed)
        status.setdefault("uncountedTerminatedPods", {})
        if status != (job.get("status") or {}):
            await self._write_status(job, status)

    async def _manage(self, key: str, job: Obj, active: list[Obj], *, indexed: bool) -> list[Obj]:
        """Create or delete pods toward `parallelism`; returns the active pods as they now are."""
        spec, status = job["spec"], job.get("status") or {}
        parallelism = int(spec.get("parallelism", 1))
        completions = spec.get("completions")
        succeeded = int(status.get("succeeded") or 0)
        if indexed:
            done = tracking.parse_indexes(status.get("completedIndexes"))
            running = {tracking.completion_index(p) for p in active}
            wanted = [i for i in range(int(completions or 0)) if i not in done and i not in running]
            indexes: list[int | None] = list(wanted[:max(parallelism - len(active), 0)])
        else:
            want = parallelism
            if completions is not None:
                want = min(parallelism, int(completions) - succeeded)
            elif succeeded > 0:
                want = 0
            if len(active) > want:
                # Not-ready pods go first (a simplified `controller.ActivePods` order).
                order = sorted(active, key=lambda p: (podstate.is_ready(p), p["metadata"].get("creationTimestamp") or ""))
                extras = order[:len(active) - want]
                await self._delete_pods(key, job, extras)
                return [p for p in active if p not in extras]
            indexes = [None] * (want - len(active))
        if not indexes:
            return active
        failed = int(status.get("failed") or 0)
        last = self._last_failure.get(key)
        if failed and last is not None:
            left = min(self.backoff_base * 2 ** (failed - 1), self.backoff_max) - (time.monotonic() - last)
            if left > 0:
                self.enqueue_after(key, left)
                return active
        self.expectations.expect(key, adds=len(indexes))
        created: list[Obj] = []
        batch = 1  # slow start: 1, 2, 4, … so a failing API isn't flooded
        while indexes:
            chunk, indexes = indexes[:batch], indexes[batch:]
            results = await asyncio.gather(*(self._create_pod(job, i) for i in chunk), return_exceptions=True)
            errors = [r for r in results if isinstance(r, BaseException)]
            created.extend(r for r in results if isinstance(r, dict))
            if errors:
                self.expectations.lower(key, adds=len(errors) + len(indexes))
                raise errors[0]
            batch *= 2
        return active + created

    # ---- actions ---------------------------------------------------------------------------------

    async def _create_pod(self, job: Obj, index: int | None) -> Obj:
        template = job["spec"]["template"]
        name = job["metadata"]["name"]
        tmeta = template.get("metadata") or {}
        labels, annotations = dict(tmeta.get("labels") or {}), dict(tmeta.get("annotations") or {})
        spec = copy.deepcopy(template.get("spec") or {})
        if index is not None:
            labels[COMPLETION_INDEX] = annotations[COMPLETION_INDEX] = str(index)
            spec["hostname"] = f"{name}-{index}"
            env = {"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
                "fieldPath": f"metadata.annotations['{COMPLETION_INDEX}']"}}}
            for container in spec.get("containers") or []:
                container["env"] = [*(container.get("env") or []), env]
        meta: Obj = {"generateName": f"{name}-" if index is None else f"{name}-{index}-",
                     "namespace": job["metadata"]["namespace"], "labels": labels,
                     "finalizers": [TRACKING_FINALIZER], "ownerReferences": [owner_reference(job)]}
        if annotations:
            meta["annotations"] = annotations
        try:
            pod = await self.client.create(PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})
        except StatusError as err:
            await self.event(job, "Warning", "FailedCreate", f"Error creating: {err}")
            raise
        await self.event(job, "Normal", "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}")
        return pod

    async def _delete_pods(self, key: str, job: Obj, pods: list[Obj]) -> None:
        self.expectations.expect(key, deletes=len(pods))
        for pod in pods:
            name = pod["metadata"]["name"]
            try:
                await self.client.delete(PODS, name, namespace=pod["metadata"]["namespace"],
                                         preconditions={"uid": pod["metadata"]["uid"]})
            except StatusError as err:
                self.expectations.lower(key, deletes=1)
                if err.code not in (404, 409):
                    raise
                continue
            await self.event(job, "Normal", "SuccessfulDelete", f"Deleted pod: {name}")

    async def _remove_finalizer(self, key: str, pod: Obj) -> None:
        """JSON-patch out exactly our finalizer (the `test` op guards against a concurrent change)."""
        finalizers = pod["metadata"].get("finalizers") or []
        i = finalizers.index(TRACKING_FINALIZER)
        path = f"/metadata/finalizers/{i}"
        try:
            await self.client.patch(PODS, pod["metadata"]["name"], [
                {"op": "test", "path": path, "value": TRACKING_FINALIZER}, {"op": "remove", "path": path}],
                namespace=pod["metadata"]["namespace"], patch_type="json")
        except StatusError as err:
            if err.code == 404:
                return
            raise
        self._removing.setdefault(key, set()).add(pod["metadata"]["uid"])

    async def _write_status(self, job: Obj, status: Obj) -> None:
        """PUT status with the cached resourceVersion: a stale Job gets 409 and the pass is retried."""
        obj = {**deep_copy(job), "status": status}
        try:
            await self.client.update(JOBS, obj, subresource="status")
        except StatusError as err:
            if err.code != 409:
                raise
            self.enqueue_key(f"{job['metadata']['namespace']}/{job['metadata']['name']}")

    async def _expire(self, job: Obj) -> None:
        """ttlSecondsAfterFinished (the ttl-after-finished controller's job, folded in here)."""
        ttl = job["spec"].get("ttlSecondsAfterFinished")
        if ttl is None or job["metadata"].get("deletionTimestamp"):
            return
        status = job.get("status") or {}
        finished_at = podstate.parse_time(status.get("completionTime")) or podstate.parse_time(
            (tracking.condition(job, "Failed") or {}).get("lastTransitionTime"))
        if finished_at is None:
            return
        left = (finished_at + dt.timedelta(seconds=int(ttl)) - self.now()).total_seconds()
        if left > 0:
            self.enqueue_after(f"{job['metadata']['namespace']}/{job['metadata']['name']}", left)
            return
        try:
            await self.client.delete(JOBS, job["metadata"]["name"], namespace=job["metadata"]["namespace"],
                                     propagation_policy="Foreground", preconditions={"uid": job["metadata"]["uid"]})
        except StatusError as err:
            if err.code not in (404, 409):
                raise
