"""The pure scheduling algorithm: one pod, one snapshot, one profile → one decision.

This is kube-scheduler's `schedulePod` + `RunPostFilterPlugins` without any I/O, in the
Nomad style: the caller owns the snapshot and the binding; this module only reads the
snapshot and returns a `ScheduleResult` that says what to do and why. That keeps the
algorithm testable with plain dicts and lets `kubeling explain pod` show the same
per-node reasoning the scheduler used.

Steps, as upstream: PreFilter (plugins may Skip, or reject the pod everywhere), Filter
on every node (a node's verdict is the first rejecting plugin), PostFilter (preemption)
if nothing fits, PreScore/Score/NormalizeScore on every feasible node, weighted sum,
highest total wins with ties broken by a seeded RNG (upstream picks uniformly at
random among ties; a fixed seed keeps tests and explanations reproducible). With one
feasible node scoring is skipped, as upstream does.

Speed comes from the data layout, not from shortcuts in semantics: plugins walk node
lists in batched loops, each filter only sees the nodes that survived the previous one,
per-pod data is computed once in PodInfo/PreFilter, and a plugin that has nothing to do
for this pod returns Skip so it costs nothing per node. Upstream's other lever,
`percentageOfNodesToScore`, is honoured when configured, but defaults to 100 here:
every node is filtered and every feasible node scored unless the config says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubeling.scheduler import eqcache
from kubeling.scheduler.framework import (
    NO_NODES_AVAILABLE,
    Code,
    CycleState,
    NodeInfo,
    PodInfo,
    Snapshot,
    Status,
    fit_error_message,
)
from kubeling.scheduler.profile import Profile
from kubeling.scheduler.runner import pick, run_filter_chain, run_pre_score, run_score_chain

MIN_FEASIBLE_NODES_TO_FIND = 100  # minFeasibleNodesToFind


@dataclass
class ScheduleResult:
    """Everything one scheduling attempt decided and why.

    `selected_node` is None when the pod is unschedulable; then `message` is the
    Kubernetes FitError text for the PodScheduled condition / FailedScheduling event, and
    `nominated_node` / `victims` say what preemption proposes (the caller evicts the
    victims and sets `status.nominatedNodeName`). `filter_statuses` holds the rejecting
    status of every rejected node; `feasible` the nodes that passed, aligned with the
    per-plugin normalized `scores` and the weighted `totals`.
    """

    pod: str
    selected_node: str | None = None
    num_nodes: int = 0
    filter_statuses: dict[str, Status] = field(default_factory=dict)
    feasible: list[NodeInfo] = field(default_factory=list)
    scores: dict[str, list[int]] = field(default_factory=dict)
    weights: dict[str, int] = field(default_factory=dict)
    totals: list[int] = field(default_factory=list)
    skipped_score_plugins: list[str] = field(default_factory=list)
    message: str = ""
    error: str = ""
    nominated_node: str | None = None
    victims: list[PodInfo] = field(default_factory=list)

    @property
    def scheduled(self) -> bool:
        return self.selected_node is not None

    @property
    def feasible_nodes(self) -> list[str]:
        return [n.name for n in self.feasible]

    def node_scores(self, node_name: str) -> dict[str, int]:
        """Normalized score per plugin for one feasible node ({} if it was not scored)."""
        for i, n in enumerate(self.feasible):
            if n.name == node_name:
                return {plugin: s[i] for plugin, s in self.scores.items()}
        return {}

    def total(self, node_name: str) -> int | None:
        for i, n in enumerate(self.feasible):
            if n.name == node_name:
                return self.totals[i] if self.totals else None
        return None


def schedule_one(pod: dict[str, Any] | PodInfo, snapshot: Snapshot, profile: Profile, *,
                 seed: int | None = None, memo: bool = True) -> ScheduleResult:
    """Decide where `pod` goes. Pure: reads `snapshot`, never changes it (call `snapshot.assume` after).

    `seed` fixes the tie-break; by default it is derived from the pod's uid, so a given
    pod always breaks ties the same way while different pods spread over tied nodes.
    `memo=False` bypasses the equivalence cache (same answers, computed from scratch).
    """
    pi = pod if isinstance(pod, PodInfo) else PodInfo(pod)
    result = ScheduleResult(pod=pi.key, num_nodes=len(snapshot), weights=profile.weights)
    if not snapshot.node_list:
        result.message = NO_NODES_AVAILABLE
        return result
    state = CycleState()

    st = profile.run_pre_filter_plugins(state, pi, snapshot)
    if st is not None:
        if st.code == Code.ERROR:
            result.error = result.message = f"running PreFilter plugin {st.plugin!r}: {st.message()}"
            return result
        # Upstream gives every node the PreFilter's status and reports the message once.
        result.filter_statuses = {ni.name: st for ni in snapshot.node_list}
        _post_filter(result, state, pi, snapshot, profile, pre_filter_msg=st.message())
        return result

    if memo and eqcache.eligible(pi, state, snapshot, profile) and eqcache.schedule(result, state, pi, snapshot, profile, seed):
        return result

    nodes = _find_feasible(state, pi, snapshot, profile, result.filter_statuses)
    result.feasible = nodes

    if not nodes:
        _post_filter(result, state, pi, snapshot, profile)
        return result
    if len(nodes) == 1:
        result.selected_node = nodes[0].name
        return result

    _score(result, state, pi, snapshot, profile, nodes)
    totals = result.totals
    best = max(totals)
    result.selected_node = nodes[pick(totals, best, pi, seed)].name
    return result


def num_feasible_nodes_to_find(percentage: int, num_nodes: int) -> int:
    """`numFeasibleNodesToFind`: 0 means adaptive (50% minus 1% per 125 nodes, at least 5%), never < 100."""
    if num_nodes < MIN_FEASIBLE_NODES_TO_FIND:
        return num_nodes
    if percentage == 0:
        percentage = max(50 - num_nodes // 125, 5)
    return max(num_nodes * percentage // 100, MIN_FEASIBLE_NODES_TO_FIND)


def _find_feasible(state: CycleState, pi: PodInfo, snapshot: Snapshot, profile: Profile,
                   rejected: dict[str, Status]) -> list[NodeInfo]:
    all_nodes = snapshot.node_list
    n = len(all_nodes)
    want = num_feasible_nodes_to_find(profile.percentage_of_nodes_to_score, n)
    if want >= n:
        return run_filter_chain(state, pi, all_nodes, profile.filter_plugins, rejected)
    # Upstream's sampling: search from where the previous cycle stopped (wrapping around)
    # until enough feasible nodes are found; an unschedulable pod still sees every node.
    start = profile.next_start_index % n
    order = all_nodes[start:] + all_nodes[:start]
    feasible: list[NodeInfo] = []
    pos = 0
    while len(feasible) < want and pos < n:
        chunk = order[pos:pos + want - len(feasible)]
        pos += len(chunk)
        feasible += run_filter_chain(state, pi, chunk, profile.filter_plugins, rejected)
    profile.next_start_index = (start + pos) % n
    return feasible


def _score(result: ScheduleResult, state: CycleState, pi: PodInfo, snapshot: Snapshot, profile: Profile,
           nodes: list[NodeInfo]) -> None:
    run_pre_score(state, pi, snapshot, nodes, profile.pre_score_plugins)
    result.scores, result.totals, result.skipped_score_plugins = run_score_chain(state, pi, nodes, profile.score_plugins)


def _post_filter(result: ScheduleResult, state: CycleState, pi: PodInfo, snapshot: Snapshot, profile: Profile,
                 *, pre_filter_msg: str = "") -> None:
    post_msg = ""
    for p in profile.post_filter_plugins:
        pf, st = p.post_filter(state, pi, snapshot, result.filter_statuses)
        if st is None and pf is not None and pf.nominated_node:
            result.nominated_node = pf.nominated_node
            result.victims = pf.victims
            post_msg = ""
            break
        if st is not None:
            post_msg = st.message()
    result.message = fit_error_message(result.num_nodes, result.filter_statuses, pre_filter_msg=pre_filter_msg,
                                       post_filter_msg=post_msg)
