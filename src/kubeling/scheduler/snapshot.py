"""A read-only view of the cluster for one scheduling decision (Nomad's state snapshot).

kube-scheduler schedules against a snapshot of its cache taken at the start of each
cycle; plugins never see live objects change under them. Here the snapshot is built
from plain wire dicts and then only changed through `assume` / `forget`, which play the
role of the scheduler cache's assumed pods: once a pod is decided, its resources count
on the chosen node before the binding has round-tripped through the API server.

Everything the per-node loops touch is precomputed here as ints and small tuples, and
the snapshot keeps cluster-wide facts (are there any unschedulable nodes? any taints?
any pods with affinity?) so plugins can return Skip without walking all nodes.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from typing import Any

from kubeling.scheduler.helpers import LabelMatcher, compile_label_selector
from kubeling.scheduler.resources import Resource, int_value, pod_requests

_TERMINAL = ("Succeeded", "Failed")


class AffinityTerm:
    """A parsed PodAffinityTerm: which pods (namespaces + selector) within which topology."""

    __slots__ = ("namespaces", "namespace_selector", "selector", "topology_key", "weight")

    def __init__(self, term: dict[str, Any], pod_namespace: str, weight: int = 0) -> None:
        self.namespaces = frozenset(term.get("namespaces") or ())
        ns_sel = term.get("namespaceSelector")
        self.namespace_selector: LabelMatcher | None = compile_label_selector(ns_sel) if ns_sel is not None else None
        if not self.namespaces and ns_sel is None:
            self.namespaces = frozenset((pod_namespace,))  # an unset namespace list means the pod's own
        self.selector = compile_label_selector(term.get("labelSelector"))
        self.topology_key: str = term.get("topologyKey") or ""
        self.weight = weight

    def matches(self, pod: PodInfo, namespace_labels: dict[str, dict[str, str]]) -> bool:
        """`AffinityTerm.Matches`: the pod's namespace is selected and its labels match."""
        if pod.namespace in self.namespaces or (
            self.namespace_selector is not None and self.namespace_selector(namespace_labels.get(pod.namespace, {}))
        ):
            return self.selector(pod.labels)
        return False


def _terms(pod_affinity: dict[str, Any], namespace: str) -> tuple[list[AffinityTerm], list[AffinityTerm]]:
    required = [AffinityTerm(t, namespace) for t in pod_affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or []]
    preferred = [
        AffinityTerm(w.get("podAffinityTerm") or {}, namespace, int(w.get("weight") or 0))
        for w in pod_affinity.get("preferredDuringSchedulingIgnoredDuringExecution") or []
    ]
    return required, preferred


class PodInfo:
    """A pod plus everything the plugins would otherwise re-derive from it on every node."""

    __slots__ = (
        "pod", "namespace", "name", "key", "uid", "labels", "priority", "node_name", "requests",
        "non_zero_cpu", "non_zero_mem", "host_ports", "tolerations", "required_affinity", "preferred_affinity",
        "required_anti_affinity", "preferred_anti_affinity", "start_time", "preemption_policy",
    )

    def __init__(self, pod: dict[str, Any]) -> None:
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        self.pod = pod
        self.namespace: str = meta.get("namespace") or "default"
        self.name: str = meta.get("name") or ""
        self.key = f"{self.namespace}/{self.name}"
        self.uid: str = meta.get("uid") or self.key
        self.labels: dict[str, str] = meta.get("labels") or {}
        self.priority: int = int(spec.get("priority") or 0)
        self.preemption_policy: str = spec.get("preemptionPolicy") or "PreemptLowerPriority"
        self.node_name: str = spec.get("nodeName") or ""
        self.requests: Resource = pod_requests(pod)
        nz = pod_requests(pod, non_zero=True)
        self.non_zero_cpu: int = nz.milli_cpu
        self.non_zero_mem: int = nz.memory
        self.tolerations: list[dict[str, Any]] = spec.get("tolerations") or []
        self.start_time: str = (pod.get("status") or {}).get("startTime") or ""
        ports = []
        for c in (spec.get("containers") or []) + [
            c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"
        ]:
            for p in c.get("ports") or []:
                hp = int(p.get("hostPort") or 0)
                if hp > 0:
                    ports.append((p.get("hostIP") or "0.0.0.0", p.get("protocol") or "TCP", hp))
        self.host_ports: list[tuple[str, str, int]] = ports
        affinity = spec.get("affinity") or {}
        self.required_affinity, self.preferred_affinity = _terms(affinity.get("podAffinity") or {}, self.namespace)
        self.required_anti_affinity, self.preferred_anti_affinity = _terms(
            affinity.get("podAntiAffinity") or {}, self.namespace
        )

    @property
    def has_affinity(self) -> bool:
        return bool(self.required_affinity or self.preferred_affinity or self.required_anti_affinity
                    or self.preferred_anti_affinity)

    def __repr__(self) -> str:
        return f"PodInfo({self.key})"


class NodeInfo:
    """One node and the pods on it, with allocatable and requested amounts as ints.

    `req_*` are the summed requests (used for fit); `nz_*` the non-zero-defaulted sums
    (used for scoring), exactly the `Requested` / `NonZeroRequested` pair of the Go NodeInfo.
    """

    __slots__ = (
        "name", "node", "labels", "taints", "unschedulable", "pods", "alloc_cpu", "alloc_mem", "alloc_eph",
        "alloc_scalar", "allowed_pods", "req_cpu", "req_mem", "req_eph", "req_scalar", "nz_cpu", "nz_mem",
        "used_ports", "pods_with_affinity", "pods_with_required_anti_affinity", "free_cpu", "free_mem", "free_pods",
    )

    def __init__(self, node: dict[str, Any]) -> None:
        meta = node.get("metadata") or {}
        spec = node.get("spec") or {}
        self.name: str = meta.get("name") or ""
        self.node = node
        self.labels: dict[str, str] = meta.get("labels") or {}
        self.taints: list[dict[str, Any]] = spec.get("taints") or []
        self.unschedulable = bool(spec.get("unschedulable"))
        alloc_list = (node.get("status") or {}).get("allocatable") or {}
        alloc = Resource.from_list(alloc_list)
        self.alloc_cpu, self.alloc_mem, self.alloc_eph = alloc.milli_cpu, alloc.memory, alloc.ephemeral_storage
        self.alloc_scalar: dict[str, int] = alloc.scalar
        self.allowed_pods = int_value(alloc_list["pods"]) if "pods" in alloc_list else 0
        self.pods: list[PodInfo] = []
        self.req_cpu = self.req_mem = self.req_eph = self.nz_cpu = self.nz_mem = 0
        # allocatable - requested, kept up to date so the fit filter's hot loop reads one slot each
        self.free_cpu, self.free_mem, self.free_pods = self.alloc_cpu, self.alloc_mem, self.allowed_pods
        self.req_scalar: dict[str, int] = {}
        self.used_ports: list[tuple[str, str, int]] = []
        self.pods_with_affinity: list[PodInfo] = []
        self.pods_with_required_anti_affinity: list[PodInfo] = []

    def add_pod(self, pi: PodInfo) -> None:
        """Account a pod on this node (`NodeInfo.AddPod`)."""
        self.pods.append(pi)
        self._account(pi, 1)
        if pi.has_affinity:
            self.pods_with_affinity.append(pi)
        if pi.required_anti_affinity:
            self.pods_with_required_anti_affinity.append(pi)

    def remove_pod(self, key: str) -> PodInfo | None:
        """Forget a pod by `namespace/name`; returns it, or None if it was not here."""
        for i, pi in enumerate(self.pods):
            if pi.key == key:
                del self.pods[i]
                self._account(pi, -1)
                self.pods_with_affinity = [p for p in self.pods_with_affinity if p is not pi]
                self.pods_with_required_anti_affinity = [p for p in self.pods_with_required_anti_affinity if p is not pi]
                return pi
        return None

    def _account(self, pi: PodInfo, sign: int) -> None:
        r = pi.requests
        self.req_cpu += sign * r.milli_cpu
        self.req_mem += sign * r.memory
        self.req_eph += sign * r.ephemeral_storage
        for k, v in r.scalar.items():
            self.req_scalar[k] = self.req_scalar.get(k, 0) + sign * v
        self.nz_cpu += sign * pi.non_zero_cpu
        self.nz_mem += sign * pi.non_zero_mem
        self.free_cpu = self.alloc_cpu - self.req_cpu
        self.free_mem = self.alloc_mem - self.req_mem
        self.free_pods -= sign
        if pi.host_ports:
            if sign > 0:
                self.used_ports.extend(pi.host_ports)
            else:
                for p in pi.host_ports:
                    self.used_ports.remove(p)

    def clone(self) -> NodeInfo:
        """A copy whose pod list and sums can change without touching this one (for preemption)."""
        c = NodeInfo.__new__(NodeInfo)
        for slot in NodeInfo.__slots__:
            setattr(c, slot, getattr(self, slot))
        c.pods = list(self.pods)
        c.req_scalar = dict(self.req_scalar)
        c.used_ports = list(self.used_ports)
        c.pods_with_affinity = list(self.pods_with_affinity)
        c.pods_with_required_anti_affinity = list(self.pods_with_required_anti_affinity)
        return c

    def __repr__(self) -> str:
        return f"NodeInfo({self.name}, pods={len(self.pods)})"


class Snapshot:
    """Node name → NodeInfo for one scheduling decision, plus cluster-wide indexes.

    Build with `Snapshot.build(nodes, pods)`; only pods bound to a known node
    (`spec.nodeName`) and not terminal (Succeeded/Failed) are counted.
    """

    def __init__(self, node_infos: list[NodeInfo], *, namespace_labels: dict[str, dict[str, str]] | None = None) -> None:
        self.node_list: list[NodeInfo] = node_infos
        self.node_infos: dict[str, NodeInfo] = {ni.name: ni for ni in node_infos}
        self.namespace_labels: dict[str, dict[str, str]] = namespace_labels or {}
        # Counters rather than flags so node updates (heartbeats) stay O(1).
        self._unschedulable = self._hard_tainted = self._prefer_tainted = 0
        for ni in node_infos:
            self._count_node(ni, 1)
        self.affinity_pods = sum(len(ni.pods_with_affinity) for ni in node_infos)
        self.required_anti_affinity_pods = sum(len(ni.pods_with_required_anti_affinity) for ni in node_infos)
        self._where: dict[str, str] = {pi.key: ni.name for ni in node_infos for pi in ni.pods}
        # Names of nodes changed by assume/forget, in order: lets memoized per-node results
        # (eqcache) recompute only what changed. Mutate NodeInfos only through the snapshot.
        self.changes: list[str] = []
        self.index: dict[str, int] = {ni.name: i for i, ni in enumerate(node_infos)}
        self.memo: dict[Any, Any] = {}

    def _count_node(self, ni: NodeInfo, sign: int) -> None:
        self._unschedulable += sign * ni.unschedulable
        self._hard_tainted += sign * any(t.get("effect") in ("NoSchedule", "NoExecute") for t in ni.taints)
        self._prefer_tainted += sign * any(t.get("effect") == "PreferNoSchedule" for t in ni.taints)

    @property
    def has_unschedulable_nodes(self) -> bool:
        return self._unschedulable > 0

    @property
    def has_hard_taints(self) -> bool:
        return self._hard_tainted > 0

    @property
    def has_prefer_taints(self) -> bool:
        return self._prefer_tainted > 0

    @classmethod
    def build(cls, nodes: list[dict[str, Any]], pods: list[dict[str, Any]], *,
              namespace_labels: dict[str, dict[str, str]] | None = None) -> Snapshot:
        """Index nodes (sorted by name, for determinism) and account every bound, non-terminal pod."""
        infos = sorted((NodeInfo(n) for n in nodes), key=lambda ni: ni.name)
        by_name = {ni.name: ni for ni in infos}
        for p in pods:
            node_name = (p.get("spec") or {}).get("nodeName")
            if not node_name or (p.get("status") or {}).get("phase") in _TERMINAL:
                continue
            ni = by_name.get(node_name)
            if ni is not None:
                ni.add_pod(PodInfo(p))
        return cls(infos, namespace_labels=namespace_labels)

    def __len__(self) -> int:
        return len(self.node_list)

    def get(self, name: str) -> NodeInfo | None:
        return self.node_infos.get(name)

    def pods(self) -> Iterator[PodInfo]:
        """Every accounted pod, node by node."""
        for ni in self.node_list:
            yield from ni.pods

    def pods_in_namespace(self, namespace: str) -> Iterator[PodInfo]:
        """Every accounted pod of one namespace (what affinity terms and spread constraints count)."""
        return (pi for pi in self.pods() if pi.namespace == namespace)

    def nodes_with_affinity_pods(self) -> list[NodeInfo]:
        """Nodes holding a pod with any (anti-)affinity term; empty without a scan when there are none."""
        return [ni for ni in self.node_list if ni.pods_with_affinity] if self.affinity_pods else []

    def nodes_with_required_anti_affinity_pods(self) -> list[NodeInfo]:
        if not self.required_anti_affinity_pods:
            return []
        return [ni for ni in self.node_list if ni.pods_with_required_anti_affinity]

    def assume(self, pod: dict[str, Any] | PodInfo, node_name: str) -> PodInfo:
        """Account `pod` on `node_name` right after the decision (the cache's assumed pod).

        The pod dict is not mutated; the returned PodInfo records the node.
        """
        pi = pod if isinstance(pod, PodInfo) else PodInfo(pod)
        ni = self.node_infos.get(node_name)
        if ni is None:
            raise KeyError(f"node {node_name!r} is not in the snapshot")
        if pi.key in self._where:
            self.forget(pi.key)
        pi.node_name = node_name
        ni.add_pod(pi)
        self._where[pi.key] = node_name
        self.changes.append(node_name)
        self.affinity_pods += pi.has_affinity
        self.required_anti_affinity_pods += bool(pi.required_anti_affinity)
        return pi

    def forget(self, key: str) -> PodInfo | None:
        """Remove a pod (`namespace/name`) from wherever it is accounted (deleted or binding failed)."""
        node_name = self._where.pop(key, None)
        if node_name is None:
            return None
        pi = self.node_infos[node_name].remove_pod(key)
        self.changes.append(node_name)
        if pi is not None:
            self.affinity_pods -= pi.has_affinity
            self.required_anti_affinity_pods -= bool(pi.required_anti_affinity)
        return pi

    def add_pod(self, pod: dict[str, Any]) -> PodInfo | None:
        """Account a pod the informer saw bound (`spec.nodeName`); terminal or unbound pods are forgotten."""
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name or (pod.get("status") or {}).get("phase") in _TERMINAL or node_name not in self.node_infos:
            meta = pod.get("metadata") or {}
            self.forget(f"{meta.get('namespace') or 'default'}/{meta.get('name') or ''}")
            return None
        return self.assume(pod, node_name)

    def update_node(self, node: dict[str, Any]) -> NodeInfo:
        """Add a node or replace its spec/status, keeping the pods accounted on it."""
        fresh = NodeInfo(node)
        old = self.node_infos.get(fresh.name)
        if old is None:
            names = [ni.name for ni in self.node_list]
            self.node_list.insert(bisect.bisect(names, fresh.name), fresh)
            self.index = {ni.name: i for i, ni in enumerate(self.node_list)}
            self.memo.clear()  # memoized per-node arrays are aligned with node_list
        else:
            self._count_node(old, -1)
            for pi in old.pods:
                fresh.add_pod(pi)
            self.node_list[self.index[fresh.name]] = fresh
            self.changes.append(fresh.name)
        self.node_infos[fresh.name] = fresh
        self._count_node(fresh, 1)
        return fresh

    def remove_node(self, name: str) -> None:
        """Drop a node and forget the pods accounted on it."""
        ni = self.node_infos.pop(name, None)
        if ni is None:
            return
        self._count_node(ni, -1)
        for pi in ni.pods:
            self._where.pop(pi.key, None)
            self.affinity_pods -= pi.has_affinity
            self.required_anti_affinity_pods -= bool(pi.required_anti_affinity)
        self.node_list = [n for n in self.node_list if n.name != name]
        self.index = {n.name: i for i, n in enumerate(self.node_list)}
        self.memo.clear()

    def with_node(self, replacement: NodeInfo) -> Snapshot:
        """A shallow copy in which one NodeInfo is replaced (preemption's what-if view)."""
        infos = [replacement if ni.name == replacement.name else ni for ni in self.node_list]
        return Snapshot(infos, namespace_labels=self.namespace_labels)
