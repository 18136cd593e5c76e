"""Everything the scheduler writes to the API, done off the scheduling loop.

The loop decides in microseconds; a write takes a round trip. If the loop awaited each
binding, throughput would be the API's latency, not the algorithm's. So, as
kube-scheduler's binding cycle, every write here runs as its own task, at most
`concurrency` requests in flight (a bounded pool: a slow API server slows binding, it
is not flooded), and reports back through callbacks: a failed binding makes the
scheduler forget its assumption and retry the pod after its backoff.

What is written, as upstream:

* success — POST pods/NAME/binding (with the explanation annotation), then a Normal
  `Scheduled` event "Successfully assigned ns/pod to node";
* failure — the `PodScheduled=False, reason Unschedulable` condition with the FitError
  message (a strategic-merge patch of status.conditions, merged by type, as
  `updatePod` does) and a `FailedScheduling` Warning event with the same message;
  skipped when the pod already says exactly that, so retries don't churn the pod;
* preemption — `status.nominatedNodeName` on the preemptor, a graceful delete of
  each victim (guarded by its uid) and a `Preempted` event on it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import orjson

from kubeling.api.errors import StatusError
from kubeling.client.errors import APIUnavailable
from kubeling.client.events import EventRecorder
from kubeling.client.resources import PODS
from kubeling.client.rest import KubeClient
from kubeling.scheduler.core import ScheduleResult
from kubeling.scheduler.record import ANNOTATION

log = logging.getLogger(__name__)
Obj = dict[str, Any]


def _meta(pod: Obj) -> tuple[str, str, str]:
    m = pod.get("metadata") or {}
    return m.get("namespace") or "default", m.get("name") or "", m.get("uid") or ""


class Binder:
    """Runs bindings, status updates, events and preemption deletes as bounded background tasks."""

    def __init__(self, client: KubeClient, *, recorder_for: Callable[[str], EventRecorder],
                 on_bound: Callable[[str], None], on_bind_failed: Callable[[str, Obj], None],
                 concurrency: int = 64) -> None:
        self.client = client
        self.recorder_for = recorder_for
        self.on_bound = on_bound
        self.on_bind_failed = on_bind_failed
        self._sem = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, None], what: str) -> None:
        task = asyncio.create_task(coro, name=f"scheduler:{what}")
        self._tasks.add(task)
        task.add_done_callback(self._reap)

    def _reap(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("scheduler task %s failed", task.get_name(), exc_info=task.exception())

    async def wait_below(self, limit: int) -> None:
        """Backpressure for the loop: wait while more than `limit` writes are queued."""
        while len(self._tasks) > limit:
            await asyncio.wait(list(self._tasks), return_when=asyncio.FIRST_COMPLETED)

    async def close(self) -> None:
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- success --------------------------------------------------------------------------------

    def bind(self, pod: Obj, node: str, *, profile: str, explanation: dict[str, Any] | None) -> None:
        self.spawn(self._bind(pod, node, profile, explanation), f"bind {_meta(pod)[1]}")

    async def _bind(self, pod: Obj, node: str, profile: str, explanation: dict[str, Any] | None) -> None:
        ns, name, uid = _meta(pod)
        key = f"{ns}/{name}"
        meta: Obj = {"name": name, "namespace": ns, "uid": uid}
        if explanation is not None:
            meta["annotations"] = {ANNOTATION: orjson.dumps(explanation).decode()}
        binding = {"apiVersion": "v1", "kind": "Binding", "metadata": meta,
                   "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
        try:
            async with self._sem:
                await self.client.create(PODS, binding, namespace=ns, subresource="binding", name=name)
        except (StatusError, APIUnavailable) as err:
            log.info("binding %s to %s failed: %s", key, node, err)
            self.on_bind_failed(key, pod)
            if not (isinstance(err, StatusError) and err.code in (404, 409)):
                await self._event(profile, pod, "Warning", "FailedScheduling", f"Binding rejected: {err}")
            return
        self.on_bound(key)
        await self._event(profile, pod, "Normal", "Scheduled", f"Successfully assigned {key} to {node}")

    # -- failure --------------------------------------------------------------------------------

    def record_failure(self, pod: Obj, result: ScheduleResult, *, profile: str,
                       explanation: dict[str, Any] | None) -> None:
        self.spawn(self._record_failure(pod, result, profile, explanation), f"fail {_meta(pod)[1]}")

    async def _record_failure(self, pod: Obj, result: ScheduleResult, profile: str,
                              explanation: dict[str, Any] | None) -> None:
        ns, name, _ = _meta(pod)
        message = result.message or result.error or "scheduling failed"
        reason = "SchedulerError" if result.error else "Unschedulable"
        status: Obj = {}
        if not _has_condition(pod, reason, message):
            status["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": reason,
                                     "message": message, "lastProbeTime": None,
                                     "lastTransitionTime": _now()}]
        nominated = result.nominated_node
        if nominated and (pod.get("status") or {}).get("nominatedNodeName") != nominated:
            status["nominatedNodeName"] = nominated
        async with self._sem:
            try:
                if explanation is not None:
                    # Metadata is not writable through status: the annotation is its own patch.
                    body = {"metadata": {"annotations": {ANNOTATION: orjson.dumps(explanation).decode()}}}
                    await self.client.patch(PODS, name, body, namespace=ns, patch_type="merge")
                if status:
                    await self.client.patch(PODS, name, {"status": status}, namespace=ns,
                                            patch_type="strategic", subresource="status")
            except (StatusError, APIUnavailable) as err:
                # The pod may be gone; the next attempt writes the condition again.
                log.info("recording the scheduling failure of %s/%s failed: %s", ns, name, err)
        await self._event(profile, pod, "Warning", "FailedScheduling", message)

    # -- preemption -----------------------------------------------------------------------------

    def preempt(self, pod: Obj, result: ScheduleResult, *, profile: str) -> None:
        self.spawn(self._preempt(pod, result, profile), f"preempt for {_meta(pod)[1]}")

    async def _preempt(self, pod: Obj, result: ScheduleResult, profile: str) -> None:
        _, _, uid = _meta(pod)
        for victim in result.victims:
            v = victim.pod
            vns, vname, vuid = _meta(v)
            if (v.get("metadata") or {}).get("deletionTimestamp"):
                continue  # already terminating from an earlier preemption
            try:
                async with self._sem:
                    await self.client.delete(PODS, vname, namespace=vns,
                                             preconditions={"uid": vuid} if vuid else None)
            except (StatusError, APIUnavailable) as err:
                log.info("preempting %s/%s failed: %s", vns, vname, err)
                continue
            await self._event(profile, v, "Normal", "Preempted",
                              f"Preempted by pod {uid} on node {result.nominated_node}")

    async def _event(self, profile: str, obj: Obj, type_: str, reason: str, message: str) -> None:
        involved = obj if obj.get("kind") else {**obj, "kind": "Pod", "apiVersion": "v1"}
        async with self._sem:
            await self.recorder_for(profile).event(involved, type_, reason, message)


def _has_condition(pod: Obj, reason: str, message: str) -> bool:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "PodScheduled":
            return c.get("status") == "False" and c.get("reason") == reason and c.get("message") == message
    return False


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
