"""DefaultPreemption: when no node fits, find one where evicting lower-priority pods makes it fit.

Follows `pkg/scheduler/framework/preemption` without PodDisruptionBudgets or extenders:

1. a pod with `preemptionPolicy: Never` may not preempt;
2. only nodes rejected as `Unschedulable` are candidates — `UnschedulableAndUnresolvable`
   (taints, affinity, ...) cannot be fixed by evicting pods;
3. on each candidate, remove every pod of lower priority; if the pod still doesn't fit,
   the node is out; otherwise re-add ("reprieve") victims from the most important down,
   keeping each one whose return still lets the pod fit — so the fewest, least
   important pods are evicted;
4. among candidates prefer the lowest highest-victim priority, then the lowest sum of
   priorities, then the fewest victims, then the latest start of the top victims, then
   the first node.

When nothing works the status message reproduces upstream's nested FitError, e.g.
"preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.".
"""

from __future__ import annotations

from typing import Any

from kubeling.scheduler.framework import (
    Code,
    CycleState,
    Handle,
    NodeInfo,
    PodInfo,
    PostFilterResult,
    Snapshot,
    Status,
    fit_error_message,
)

NAME = "DefaultPreemption"
NO_VICTIMS = "No preemption victims found for incoming pod"
NOT_HELPFUL = "Preemption is not helpful for scheduling"
# PreFilter state computed over the whole cluster: must be recomputed when victims leave.
_CLUSTER_WIDE = ("InterPodAffinity", "PodTopologySpread")


def _importance(p: PodInfo) -> tuple[int, str]:
    # MoreImportantPod: higher priority first, then the earlier start; a pod that never
    # started counts as starting "now", i.e. last.
    return (-p.priority, p.start_time or "\uffff")


class DefaultPreemption:
    """PostFilter plugin that nominates a node and lists the pods to evict there."""

    name = NAME

    def __init__(self, handle: Handle) -> None:
        self.handle = handle

    def post_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot,
                    statuses: dict[str, Status]) -> tuple[PostFilterResult | None, Status | None]:
        if pod.preemption_policy == "Never":
            return None, Status.unschedulable("preemption: not eligible due to preemptionPolicy=Never.", plugin=NAME)
        potential = [ni for ni in snapshot.node_list
                     if (st := statuses.get(ni.name)) is not None and st.code == Code.UNSCHEDULABLE]
        node_statuses: dict[str, Status] = {}
        candidates: list[tuple[NodeInfo, list[PodInfo]]] = []
        for ni in potential:
            victims, st = self.select_victims(state, pod, snapshot, ni)
            if st is None and victims is not None:
                candidates.append((ni, victims))
            elif st is not None:
                node_statuses[ni.name] = st
        if not candidates:
            msg = fit_error_message(len(snapshot), node_statuses, absent_reasons=[NOT_HELPFUL])
            return PostFilterResult(), Status.unschedulable("preemption: " + msg, plugin=NAME)
        node, victims = min(candidates, key=_candidate_rank)
        return PostFilterResult(nominated_node=node.name, victims=victims), None

    def select_victims(self, state: CycleState, pod: PodInfo, snapshot: Snapshot,
                       node: NodeInfo) -> tuple[list[PodInfo] | None, Status | None]:
        """`SelectVictimsOnNode`: the minimal set of lower-priority pods to evict, or why there is none."""
        potential = [p for p in node.pods if p.priority < pod.priority]
        if not potential:
            return None, Status.unresolvable(NO_VICTIMS, plugin=NAME)
        what_if = node.clone()
        for p in potential:
            what_if.remove_pod(p.key)
        st = self._fits(state, pod, snapshot, what_if)
        if st is not None:
            return None, st
        victims = []
        for p in sorted(potential, key=_importance):
            what_if.add_pod(p)
            if self._fits(state, pod, snapshot, what_if) is not None:
                what_if.remove_pod(p.key)
                victims.append(p)
        return victims, None

    def _fits(self, state: CycleState, pod: PodInfo, snapshot: Snapshot, node: NodeInfo) -> Status | None:
        if any(name in state and name not in state.skip_filter for name in _CLUSTER_WIDE):
            state = CycleState()
            st = self.handle.run_pre_filter_plugins(state, pod, snapshot.with_node(node))
            if st is not None:
                return st
        return self.handle.run_filter_plugins(state, pod, node)


def _candidate_rank(c: tuple[NodeInfo, list[PodInfo]]) -> tuple[int, int, int, str]:
    _, victims = c
    top = max(v.priority for v in victims) if victims else -(2**31)
    total = sum(v.priority + 2**31 for v in victims)
    starts = [v.start_time or "\uffff" for v in victims if v.priority == top]
    earliest = min(starts) if starts else ""
    # min() over the tuple: lower top priority, lower sum, fewer victims, *later* start.
    return (top, total, len(victims), _invert(earliest))


def _invert(s: str) -> str:
    return "".join(chr(0x10FFFF - ord(ch)) for ch in s)


def new(args: dict[str, Any], handle: Handle) -> DefaultPreemption:
    return DefaultPreemption(handle)
