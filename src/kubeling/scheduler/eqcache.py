"""Equivalence cache: reuse per-node verdicts and scores across pods that schedule identically.

Replicas of one workload are interchangeable to the node-local plugins: same requests,
tolerations, node selector, host ports. Between two such pods, the only nodes whose
verdict or score can differ are the ones changed by `Snapshot.assume`/`forget` — usually
exactly one. So, per (profile, pod signature, skipped plugins), the snapshot memoizes
each node's filter status, raw score per plugin and weighted total, and the next
equivalent pod recomputes only the nodes in the snapshot's change log. The decision is
then a C-level `max`/`count` over a list of ints instead of re-running every plugin on
every node. (kube-scheduler once had an "equivalence class cache" for the same reason.)

It is only used when it cannot change the outcome: every active Filter plugin must be
`node_local_filter` and every active Score plugin `node_local_score` (no normalization,
which would depend on the other nodes). Inter-pod affinity, topology spread, preferred
node affinity and PreferNoSchedule taints therefore take the full path. A pod that fits
nowhere also takes the full path, which builds the FitError message and runs preemption.
"""

from __future__ import annotations

from itertools import compress
from typing import TYPE_CHECKING, Any

from kubeling.scheduler.framework import CycleState, PodInfo, Snapshot, Status
from kubeling.scheduler.runner import pick, run_filter_chain, run_pre_score, run_score_chain

if TYPE_CHECKING:
    from kubeling.scheduler.core import ScheduleResult
    from kubeling.scheduler.profile import Profile

MAX_ENTRIES = 32


class _Entry:
    __slots__ = ("pos", "mask", "rejected", "raw", "totals", "feasible_count")

    def __init__(self, pos: int, mask: list[bool], rejected: dict[str, Status], raw: dict[str, list[int]],
                 totals: list[int]) -> None:
        self.pos = pos
        self.mask = mask
        self.rejected = rejected
        self.raw = raw
        self.totals = totals
        self.feasible_count = sum(mask)


def signature(pi: PodInfo) -> tuple[Any, ...]:
    """Everything the node-local plugins read from a pod."""
    spec = pi.pod.get("spec") or {}
    r = pi.requests
    return (
        r.milli_cpu, r.memory, r.ephemeral_storage, tuple(sorted(r.scalar.items())), pi.non_zero_cpu,
        pi.non_zero_mem, tuple(pi.host_ports), pi.node_name, repr(pi.tolerations), repr(spec.get("nodeSelector")),
        repr((spec.get("affinity") or {}).get("nodeAffinity")),
    )


def eligible(pi: PodInfo, state: CycleState, snapshot: Snapshot, profile: Profile) -> bool:
    """True when the memoized path gives the same answer as the full one (runs PreScore as a side effect)."""
    if pi.preferred_affinity or pi.preferred_anti_affinity or (pi.pod.get("spec") or {}).get("topologySpreadConstraints"):
        return False  # these would make cluster-wide PreScore work we'd have to redo; go the full path
    for p in profile.filter_plugins:
        if p.name not in state.skip_filter and not getattr(p, "node_local_filter", False):
            return False
    run_pre_score(state, pi, snapshot, snapshot.node_list, profile.pre_score_plugins)
    for p, _ in profile.score_plugins:
        if p.name not in state.skip_score and not getattr(p, "node_local_score", False):
            state.skip_score.clear()  # the full path re-runs PreScore on the feasible nodes
            return False
    return True


def _build(state: CycleState, pi: PodInfo, snapshot: Snapshot, profile: Profile) -> _Entry | None:
    nodes = snapshot.node_list
    rejected: dict[str, Status] = {}
    feasible = run_filter_chain(state, pi, nodes, profile.filter_plugins, rejected)
    if not feasible:
        return None
    scores, _, _ = run_score_chain(state, pi, feasible, profile.score_plugins)
    mask = [ni.name not in rejected for ni in nodes]
    where = list(compress(range(len(nodes)), mask))
    raw: dict[str, list[int]] = {}
    for name, s in scores.items():
        arr = [0] * len(nodes)
        for i, v in zip(where, s, strict=True):
            arr[i] = v
        raw[name] = arr
    totals = [-1] * len(nodes)
    weights = profile.weights
    for k, i in enumerate(where):
        totals[i] = sum(scores[name][k] * weights[name] for name in scores)
    return _Entry(len(snapshot.changes), mask, rejected, raw, totals)


def _refresh(entry: _Entry, state: CycleState, pi: PodInfo, snapshot: Snapshot, profile: Profile) -> None:
    nodes = snapshot.node_list
    active = [(p, w) for p, w in profile.score_plugins if p.name in entry.raw]
    for name in set(snapshot.changes[entry.pos:]):
        i = snapshot.index[name]
        ni = nodes[i]
        st = profile.run_filter_plugins(state, pi, ni)
        if st is not None:
            entry.feasible_count -= entry.mask[i]
            entry.mask[i] = False
            entry.rejected[name] = st
            entry.totals[i] = -1
            for arr in entry.raw.values():
                arr[i] = 0
            continue
        entry.feasible_count += not entry.mask[i]
        entry.mask[i] = True
        entry.rejected.pop(name, None)
        total = 0
        for p, w in active:
            s = p.score(state, pi, ni)
            entry.raw[p.name][i] = s
            total += s * w
        entry.totals[i] = total
    entry.pos = len(snapshot.changes)


def schedule(result: ScheduleResult, state: CycleState, pi: PodInfo, snapshot: Snapshot, profile: Profile,
             seed: int | None) -> bool:
    """Fill `result` from the memo; False when the full path must run instead (nothing fits)."""
    key = (profile, signature(pi), frozenset(state.skip_filter), frozenset(state.skip_score))
    memo = snapshot.memo
    entry = memo.pop(key, None)
    nodes = snapshot.node_list
    if entry is not None and len(snapshot.changes) - entry.pos > len(nodes) // 8:
        entry = None  # so much changed that a batched rebuild is cheaper
    if entry is None:
        entry = _build(state, pi, snapshot, profile)
        if entry is None:
            return False
    else:
        _refresh(entry, state, pi, snapshot, profile)
    memo[key] = entry  # re-insert: most recently used last
    while len(memo) > MAX_ENTRIES:
        memo.pop(next(iter(memo)))
    if entry.feasible_count == 0:
        return False
    mask = entry.mask
    result.filter_statuses = dict(entry.rejected)
    result.feasible = list(compress(nodes, mask))
    if entry.feasible_count == 1:
        result.selected_node = result.feasible[0].name
        return True
    totals = entry.totals
    result.selected_node = nodes[pick(totals, max(totals), pi, seed)].name
    result.scores = {name: list(compress(arr, mask)) for name, arr in entry.raw.items()}
    result.totals = list(compress(totals, mask))
    result.skipped_score_plugins = [p.name for p, _ in profile.score_plugins if p.name in state.skip_score]
    return True
