"""Taint-based eviction (Kubernetes' NoExecuteTaintManager, "taint-eviction-controller").

A NoExecute taint on a node means "pods must not keep running here". Pods
that do not tolerate every NoExecute taint are deleted at once; pods that
tolerate them with `tolerationSeconds` are deleted that many seconds after the
taint's `timeAdded` (the smallest such value wins); pods tolerating without a
time limit stay. Counting from `timeAdded` rather than from when we noticed
keeps the deadline the same across controller restarts (level-triggered).

The API server gives every pod the tolerations not-ready/unreachable for 300 s
(DefaultTolerationSeconds admission); `pod_eviction_timeout`, when set,
replaces those default 300 s — kube-controller-manager's old
--pod-eviction-timeout, handy for tests and small clusters.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from kubeling.api.errors import StatusError
from kubeling.api.taints import tolerates
from kubeling.client import Indexer, resources
from kubeling.controllers.base import Controller

Obj = dict[str, Any]
log = logging.getLogger(__name__)

NODE_NAME_INDEX = "spec.nodeName"
DEFAULT_TOLERATION_KEYS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
DEFAULT_TOLERATION_SECONDS = 300


def node_name_index(pod: Obj) -> list[str]:
    name = (pod.get("spec") or {}).get("nodeName")
    return [name] if name else []


def ensure_node_name_index(indexer: Indexer) -> None:
    """Add the pods-by-node index to a (shared) pod informer's indexer unless another controller did."""
    try:
        indexer.index_keys(NODE_NAME_INDEX, "")
    except KeyError:
        indexer.add_indexer(NODE_NAME_INDEX, node_name_index)


def parse_time(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class TaintEvictionController(Controller):
    """Deletes pods from nodes whose NoExecute taints they do not (or no longer) tolerate."""

    NAME = "taint-eviction-controller"
    WORKERS = 2
    pod_eviction_timeout: float | None = None

    def setup(self) -> None:
        self.pods = self.watch(resources.PODS, on_add=self._pod_changed,
                               on_update=lambda _old, new: self._pod_changed(new))
        ensure_node_name_index(self.pods.indexer)
        self.nodes = self.watch(resources.NODES, on_add=self._node_changed, on_update=self._node_updated)

    def component_name(self) -> str:
        return "taint-eviction-controller"

    def _pod_changed(self, pod: Obj) -> None:
        if (pod.get("spec") or {}).get("nodeName"):
            self.enqueue(pod)

    def _node_changed(self, node: Obj) -> None:
        if _no_execute(node):
            self._enqueue_pods_on(node)

    def _node_updated(self, old: Obj, new: Obj) -> None:
        if _no_execute(old) != _no_execute(new):
            self._enqueue_pods_on(new)

    def _enqueue_pods_on(self, node: Obj) -> None:
        for key in self.pods.indexer.index_keys(NODE_NAME_INDEX, node["metadata"]["name"]):
            self.enqueue_key(key)

    def effective_seconds(self, toleration: Obj) -> float | None:
        seconds = toleration.get("tolerationSeconds")
        if seconds is None:
            return None
        if self.pod_eviction_timeout is not None and toleration.get("key") in DEFAULT_TOLERATION_KEYS \
                and toleration.get("operator") == "Exists" and seconds == DEFAULT_TOLERATION_SECONDS:
            return self.pod_eviction_timeout
        return max(float(seconds), 0.0)

    def eviction_delay(self, pod: Obj, taints: list[Obj], now: float) -> float | None:
        """Seconds until the pod must go (0 = now), or None when it may stay."""
        tolerations = (pod.get("spec") or {}).get("tolerations") or []
        deadline: float | None = None
        for taint in taints:
            # Kubernetes' GetMatchingTolerations: the first toleration that matches each taint is "used".
            used = next((t for t in tolerations if tolerates(t, taint)), None)
            if used is None:
                return 0.0
            seconds = self.effective_seconds(used)
            if seconds is None:
                continue  # tolerated for as long as the taint stays
            due = (parse_time(taint.get("timeAdded")) or now) + seconds
            deadline = due if deadline is None else min(deadline, due)
        if deadline is None:
            return None
        return max(deadline - now, 0.0)

    async def reconcile(self, key: str) -> None:
        pod = self.pods.get(key)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            return
        node_name = (pod.get("spec") or {}).get("nodeName")
        node = self.nodes.get(node_name) if node_name else None
        if node is None:
            return
        taints = _no_execute(node)
        if not taints:
            return
        delay = self.eviction_delay(pod, list(taints), dt.datetime.now(dt.UTC).timestamp())
        if delay is None:
            return
        if delay > 0:
            self.queue.add_after(key, delay)
            return
        ns, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        await self.event(pod, "Normal", "TaintManagerEviction", f"Marking for deletion Pod {ns}/{name}")
        try:
            await self.client.delete(resources.PODS, name, namespace=ns,
                                     preconditions={"uid": pod["metadata"]["uid"]})
        except StatusError as err:
            if err.code not in (404, 409):
                raise
        log.info("evicted pod %s/%s from tainted node %s", ns, name, node_name)


def _no_execute(node: Obj) -> tuple[Obj, ...]:
    return tuple(t for t in (node.get("spec") or {}).get("taints") or [] if t.get("effect") == "NoExecute")
