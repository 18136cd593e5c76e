"""The scheduler cache: the Snapshot kept current from informer events, plus assumed pods.

kube-scheduler never waits for its own binding to round-trip through the API server
before scheduling the next pod: it *assumes* the pod onto the chosen node in its cache,
binds asynchronously, and later either *confirms* the assumption (the informer shows
the pod bound) or *forgets* it (the binding failed). An assumption whose confirmation
never arrives expires, so a lost watch event cannot leak capacity forever.

The Snapshot is the only node state; it is changed only through its own methods
(`assume`, `forget`, `add_pod`, `update_node`, `remove_node`) so the equivalence
cache's change log stays truthful. Informer objects are never mutated: where the
scheduler needs a different view of a pod (its priority resolved from a PriorityClass,
which the API server's Priority admission would do upstream) it works on a copy.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubeling.scheduler.snapshot import PodInfo, Snapshot

Obj = dict[str, Any]
ASSUMED_TTL = 30.0  # seconds an assumption may wait for the informer once its binding succeeded
MAX_CHANGE_LOG = 200_000  # the snapshot's change log is trimmed (with its memo) past this length


def pod_key(pod: Obj) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name') or ''}"


@dataclass
class Assumed:
    """One assumed pod: where it went and, once bound, when the assumption expires."""

    node: str
    info: PodInfo
    deadline: float | None = None  # None while the binding is in flight


class SchedulerCache:
    """Snapshot + assumed pods + PriorityClass values, fed by the informers' events."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, assumed_ttl: float = ASSUMED_TTL) -> None:
        self.snapshot = Snapshot([])
        self.assumed: dict[str, Assumed] = {}
        self.priority_classes: dict[str, tuple[int, str, bool]] = {}  # name → (value, preemptionPolicy, default)
        self._clock = clock
        self.assumed_ttl = assumed_ttl

    # -- priorities -----------------------------------------------------------------------------

    def set_priority_class(self, pc: Obj, *, deleted: bool = False) -> None:
        name = (pc.get("metadata") or {}).get("name") or ""
        if deleted:
            self.priority_classes.pop(name, None)
        else:
            self.priority_classes[name] = (int(pc.get("value") or 0), pc.get("preemptionPolicy") or "",
                                           bool(pc.get("globalDefault")))

    def effective_pod(self, pod: Obj) -> Obj:
        """The pod with `spec.priority` resolved from its PriorityClass when the API left it unset.

        Returns the informer's dict itself when nothing needs resolving, else a copy.
        """
        spec = pod.get("spec") or {}
        if spec.get("priority") is not None:
            return pod
        cls = spec.get("priorityClassName")
        value, policy = 0, ""
        if cls and cls in self.priority_classes:
            value, policy, _ = self.priority_classes[cls]
        elif not cls:
            defaults = [(v, p) for v, p, d in self.priority_classes.values() if d]
            if defaults:
                value, policy = min(defaults)
        new_spec = {**spec, "priority": value}
        if policy and not spec.get("preemptionPolicy"):
            new_spec["preemptionPolicy"] = policy
        return {**pod, "spec": new_spec}

    def priority(self, pod: Obj) -> int:
        return int((self.effective_pod(pod).get("spec") or {}).get("priority") or 0)

    # -- nodes ----------------------------------------------------------------------------------

    def update_node(self, old: Obj | None, new: Obj) -> bool:
        """Add or update a node; True when something the plugins read changed (worth a queue move)."""
        if old is not None and self.snapshot.get((new.get("metadata") or {}).get("name") or "") is not None \
                and _node_view(old) == _node_view(new):
            return False  # a status-only change (conditions, heartbeat times): nothing to recompute
        self.snapshot.update_node(new)
        return True

    def remove_node(self, node: Obj) -> None:
        name = (node.get("metadata") or {}).get("name") or ""
        self.snapshot.remove_node(name)
        for key, a in list(self.assumed.items()):
            if a.node == name:
                del self.assumed[key]

    def set_namespace_labels(self, ns: Obj, *, deleted: bool = False) -> None:
        meta = ns.get("metadata") or {}
        if deleted:
            self.snapshot.namespace_labels.pop(meta.get("name") or "", None)
        else:
            self.snapshot.namespace_labels[meta.get("name") or ""] = dict(meta.get("labels") or {})

    # -- pods -----------------------------------------------------------------------------------

    def add_bound_pod(self, old: Obj | None, pod: Obj) -> None:
        """Account a pod the informer shows bound; confirms our own assumption of it."""
        key = pod_key(pod)
        node = (pod.get("spec") or {}).get("nodeName")
        assumed = self.assumed.pop(key, None)
        if assumed is not None and assumed.node == node and not _terminal(pod):
            return  # confirmed: already accounted on that node
        if old is not None and assumed is None and _same_accounting(old, pod):
            return  # a status update of a running pod: nothing the plugins read changed
        self.snapshot.add_pod(self.effective_pod(pod))

    def remove_pod(self, pod: Obj) -> None:
        key = pod_key(pod)
        self.assumed.pop(key, None)
        self.snapshot.forget(key)

    def assume(self, pi: PodInfo, node: str) -> None:
        self.snapshot.assume(pi, node)
        self.assumed[pi.key] = Assumed(node, pi)
        self._trim_change_log()

    def finish_binding(self, key: str) -> None:
        """The binding succeeded: start the clock on the informer's confirmation."""
        a = self.assumed.get(key)
        if a is not None:
            a.deadline = self._clock() + self.assumed_ttl

    def forget(self, key: str) -> None:
        """The binding failed: give the node's capacity back."""
        if self.assumed.pop(key, None) is not None:
            self.snapshot.forget(key)

    def is_assumed(self, key: str) -> bool:
        return key in self.assumed

    def cleanup_expired(self) -> list[str]:
        """Forget bound assumptions the informer never confirmed; returns their keys."""
        now = self._clock()
        expired = [k for k, a in self.assumed.items() if a.deadline is not None and a.deadline <= now]
        for key in expired:
            self.forget(key)
        return expired

    def _trim_change_log(self) -> None:
        # The change log only matters relative to the memo's positions: drop both together.
        if len(self.snapshot.changes) > MAX_CHANGE_LOG:
            self.snapshot.memo.clear()
            self.snapshot.changes.clear()


def _terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _same_accounting(old: Obj, new: Obj) -> bool:
    """Whether a bound pod's update leaves everything the snapshot accounts unchanged."""
    return ((old.get("spec") or {}).get("nodeName") == (new.get("spec") or {}).get("nodeName")
            and _terminal(old) == _terminal(new)
            and (old.get("metadata") or {}).get("labels") == (new.get("metadata") or {}).get("labels")
            and old.get("spec") == new.get("spec"))


def _node_view(node: Obj) -> tuple[Any, ...]:
    meta = node.get("metadata") or {}
    return meta.get("labels"), node.get("spec"), (node.get("status") or {}).get("allocatable")
