"""The scheduler as a control-plane component: informers → queue → schedule_one → binder.

This is the I/O shell around the pure core (Nomad's split): informers keep the
`SchedulerCache` (the Snapshot) and the `SchedulingQueue` current; one loop pops a
pod, decides with `schedule_one` over the snapshot, assumes the decision at once and
hands the API writes to the `Binder`. The loop never awaits the API per pod, so its
throughput is the core's; it yields to the event loop once per pod so informers and
bindings make progress.

Only the holder of the `kube-scheduler` Lease in kube-system schedules: two schedulers
binding the same pods would race and double-book nodes. Informers start when
leadership is won and everything is torn down when it is lost, after which the
scheduler campaigns again with a fresh cache (a lost lease means our view may be old).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from typing import Any

import orjson

from kubeling.client.events import EventRecorder
from kubeling.client.informer import Informer
from kubeling.client.leaderelection import LeaderElector, LostLeadership
from kubeling.client.resources import NAMESPACES, NODES, PODS, PRIORITYCLASSES
from kubeling.client.rest import KubeClient
from kubeling.scheduler.binder import Binder
from kubeling.scheduler.cache import SchedulerCache, pod_key
from kubeling.scheduler.core import schedule_one
from kubeling.scheduler.profile import DEFAULT_SCHEDULER_NAME, Profile, parse_config
from kubeling.scheduler.queue import SchedulingQueue
from kubeling.scheduler.record import ANNOTATION, BOUND_MAX_NODES, MAX_NODES, explanation_record
from kubeling.scheduler.snapshot import PodInfo, Snapshot

log = logging.getLogger(__name__)
Obj = dict[str, Any]
LEASE_NAME = "kube-scheduler"
MAX_QUEUED_WRITES = 2048  # loop backpressure: writes waiting for the binder's pool


class Scheduler:
    """kube-scheduler: assigns pending pods of its profiles' schedulerNames to nodes.

    `run()` is the supervised entry point; it campaigns for the Lease and schedules
    while leading. `explain=False` skips the explanation annotation (benchmarks).
    """

    def __init__(self, client: KubeClient, *, profiles: dict[str, Profile] | None = None,
                 identity: str | None = None, lease_duration: float = 15.0, renew_deadline: float = 10.0,
                 retry_period: float = 2.0, bind_concurrency: int = 64, explain: bool = True) -> None:
        self.client = client
        self.profiles = profiles or parse_config(None)
        self.identity = identity or f"{socket.gethostname()}_{uuid.uuid4()}"
        self.elector = LeaderElector(client, name=LEASE_NAME, namespace="kube-system", identity=self.identity,
                                     lease_duration=lease_duration, renew_deadline=renew_deadline,
                                     retry_period=retry_period)
        self.bind_concurrency = bind_concurrency
        self.explain = explain
        self._recorders: dict[str, EventRecorder] = {}
        self.cache = SchedulerCache()
        self.queue = SchedulingQueue()
        self.scheduled = 0  # pods assumed (decisions), for tests and benchmarks
        self.pods: Informer | None = None
        self.binder: Binder | None = None

    async def run(self) -> None:
        """Campaign, schedule while leading, campaign again after losing the Lease; forever."""
        while True:
            try:
                await self.elector.run(self._lead)
            except LostLeadership as err:
                log.warning("%s; campaigning again", err)
            else:
                return

    # -- leading --------------------------------------------------------------------------------

    async def _lead(self) -> None:
        self.cache = SchedulerCache()
        self.queue = SchedulingQueue()
        binder = Binder(self.client, recorder_for=self._recorder, on_bound=self.cache.finish_binding,
                        on_bind_failed=self._bind_failed, concurrency=self.bind_concurrency)
        nodes = Informer(self.client, NODES)
        pods = Informer(self.client, PODS)
        namespaces = Informer(self.client, NAMESPACES)
        classes = Informer(self.client, PRIORITYCLASSES)
        self.pods = pods
        c = self.cache
        classes.add_handler(c.set_priority_class, lambda _o, n: c.set_priority_class(n),
                            lambda o: c.set_priority_class(o, deleted=True))
        namespaces.add_handler(c.set_namespace_labels, lambda _o, n: c.set_namespace_labels(n),
                               lambda o: c.set_namespace_labels(o, deleted=True))
        pods.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)
        informers = [classes, namespaces, nodes, pods]
        try:
            # PriorityClasses and nodes first: pods are accounted against both.
            for inf in informers[:3]:
                await inf.start()
                await inf.wait_synced()
            # Index the listed nodes in one sorted build (adding 5,000 one by one is quadratic);
            # the handler then replays them as updates of known nodes, which is cheap.
            c.snapshot = Snapshot.build(nodes.list(), [], namespace_labels=c.snapshot.namespace_labels)
            nodes.add_handler(self._node_added, self._node_updated, self._node_deleted)
            await pods.start()
            await pods.wait_synced()
            self.binder = binder
            janitor = asyncio.create_task(self._expire_assumed(), name="scheduler:assumed-expiry")
            try:
                await self._schedule_loop(binder)
            finally:
                janitor.cancel()
                with contextlib.suppress(BaseException):
                    await janitor
        finally:
            await binder.close()
            for inf in informers:
                await inf.stop()

    async def _schedule_loop(self, binder: Binder) -> None:
        assert self.pods is not None
        while True:
            key = await self.queue.pop()
            pod = self.pods.get(key)
            if pod is None or not self._wants(pod) or self.cache.is_assumed(key):
                self.queue.done(key)
                continue
            self.schedule_pod(pod, binder)
            await binder.wait_below(MAX_QUEUED_WRITES)
            await asyncio.sleep(0)  # let informers and bindings run between decisions

    def schedule_pod(self, pod: Obj, binder: Binder) -> None:
        """One scheduling cycle for one pod: decide, assume, hand the writes to the binder."""
        key = pod_key(pod)
        name = (pod.get("spec") or {}).get("schedulerName") or DEFAULT_SCHEDULER_NAME
        profile = self.profiles[name]
        effective = self.cache.effective_pod(pod)
        pi = PodInfo(effective)
        try:
            result = schedule_one(pi, self.cache.snapshot, profile)
        except Exception:  # guard: one pod that trips a plugin bug must not stop scheduling
            log.exception("scheduling %s failed", key)
            self.queue.add_backoff(key, priority=pi.priority, created=_created(pod))
            return
        if result.nominated_node and self._preemption_in_progress(pod, pi):
            # upstream's PodEligibleToPreemptOthers: victims on the node we nominated earlier are
            # still terminating; evicting more pods elsewhere now would be a cascade. Wait for them.
            result.nominated_node = (pod.get("status") or {}).get("nominatedNodeName")
            result.victims = []
        rows = BOUND_MAX_NODES if result.selected_node else MAX_NODES
        record = explanation_record(result, profile=name, max_nodes=rows, snapshot=self.cache.snapshot) \
            if self.explain else None
        if result.selected_node is not None:
            self.cache.assume(pi, result.selected_node)
            self.queue.done(key)
            self.scheduled += 1
            binder.bind(pod, result.selected_node, profile=name, explanation=record)
            return
        if record is not None and _same_record(pod, record):
            record = None  # nothing new to say: don't rewrite the annotation on every retry
        binder.record_failure(pod, result, profile=name, explanation=record)
        if result.nominated_node:
            binder.preempt(pod, result, profile=name)
            # Retried when the victims' deletions arrive (a pod delete moves unschedulable pods).
        self.queue.add_unschedulable(key)

    def _preemption_in_progress(self, pod: Obj, pi: PodInfo) -> bool:
        nominated = (pod.get("status") or {}).get("nominatedNodeName")
        ni = self.cache.snapshot.get(nominated) if nominated else None
        return ni is not None and any(
            (p.pod.get("metadata") or {}).get("deletionTimestamp") and p.priority < pi.priority for p in ni.pods)

    def _bind_failed(self, key: str, pod: Obj) -> None:
        self.cache.forget(key)
        current = self.pods.get(key) if self.pods else None
        if current is not None and self._wants(current):
            self.queue.add_backoff(key, priority=self.cache.priority(current), created=_created(current))

    def _recorder(self, profile: str) -> EventRecorder:
        if profile not in self._recorders:
            self._recorders[profile] = EventRecorder(self.client, component=profile)
        return self._recorders[profile]

    async def _expire_assumed(self) -> None:
        while True:
            await asyncio.sleep(5.0)
            for key in self.cache.cleanup_expired():
                log.warning("assumed pod %s expired without being seen bound", key)
                current = self.pods.get(key) if self.pods else None
                if current is not None and self._wants(current):
                    self.queue.add(key, priority=self.cache.priority(current), created=_created(current))

    # -- informer handlers (they only update the cache and the queue) --------------------------

    def _wants(self, pod: Obj) -> bool:
        """Pending, not terminating, and addressed to one of our profiles."""
        spec = pod.get("spec") or {}
        return (not spec.get("nodeName") and not (pod.get("metadata") or {}).get("deletionTimestamp")
                and (spec.get("schedulerName") or DEFAULT_SCHEDULER_NAME) in self.profiles
                and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"))

    def _pod_added(self, pod: Obj) -> None:
        if (pod.get("spec") or {}).get("nodeName"):
            self.cache.add_bound_pod(None, pod)
        elif self._wants(pod) and not self.cache.is_assumed(pod_key(pod)):
            self.queue.add(pod_key(pod), priority=self.cache.priority(pod), created=_created(pod))

    def _pod_updated(self, old: Obj, pod: Obj) -> None:
        key = pod_key(pod)
        if (pod.get("spec") or {}).get("nodeName"):
            self.queue.delete(key)
            self.cache.add_bound_pod(old, pod)
        elif not self._wants(pod):
            self.queue.delete(key)
        elif not self.cache.is_assumed(key) and _spec_changed(old, pod):
            self.queue.update(key, priority=self.cache.priority(pod), created=_created(pod))
        elif key not in self.queue and not self.cache.is_assumed(key):
            self.queue.add(key, priority=self.cache.priority(pod), created=_created(pod))

    def _pod_deleted(self, pod: Obj) -> None:
        key = pod_key(pod)
        self.queue.delete(key)
        bound = bool((pod.get("spec") or {}).get("nodeName")) or self.cache.is_assumed(key)
        self.cache.remove_pod(pod)
        if bound:
            self.queue.move_all_to_active_or_backoff("AssignedPodDelete")

    def _node_added(self, node: Obj) -> None:
        self.cache.update_node(None, node)
        self.queue.move_all_to_active_or_backoff("NodeAdd")

    def _node_updated(self, old: Obj, node: Obj) -> None:
        if self.cache.update_node(old, node):
            self.queue.move_all_to_active_or_backoff("NodeUpdate")

    def _node_deleted(self, node: Obj) -> None:
        self.cache.remove_node(node)


def _created(pod: Obj) -> str:
    return (pod.get("metadata") or {}).get("creationTimestamp") or ""


def _spec_changed(old: Obj, new: Obj) -> bool:
    """upstream's isPodUpdated: ignore status and our own bookkeeping, not the spec or labels."""
    om, nm = old.get("metadata") or {}, new.get("metadata") or {}
    if old.get("spec") != new.get("spec") or om.get("labels") != nm.get("labels"):
        return True
    oa = {k: v for k, v in (om.get("annotations") or {}).items() if k != ANNOTATION}
    na = {k: v for k, v in (nm.get("annotations") or {}).items() if k != ANNOTATION}
    return oa != na


def _same_record(pod: Obj, record: dict[str, Any]) -> bool:
    raw = ((pod.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION)
    if not raw:
        return False
    try:
        old = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return False
    return {k: v for k, v in old.items() if k != "time"} == {k: v for k, v in record.items() if k != "time"}
