"""The scheduling framework's vocabulary: statuses, cycle state and extension-point protocols.

Mirrors `k8s.io/kubernetes/pkg/scheduler/framework/interface.go`. A plugin implements only
the extension points it needs; the profile discovers them by the methods a plugin has.
Plugins *return* a `Status` (None means success) instead of raising, so one bad node
or one bad plugin turns into a readable reason, never into a crashed scheduling loop.

Two deliberate departures from the Go interfaces, both for speed in pure Python:

* plugins receive a precomputed `PodInfo` (requests, tolerations, parsed affinity), not the
  raw pod dict, so nothing is re-parsed per node;
* a Filter/Score plugin may also offer a batched `filter_nodes` / `score_nodes` that walks
  the node list in one tight loop. Semantics are identical to calling `filter`/`score`
  per node (the core still stops at the first rejecting plugin per node).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Protocol, runtime_checkable

from kubeling.scheduler.snapshot import NodeInfo, PodInfo, Snapshot

__all__ = [
    "MAX_NODE_SCORE", "Code", "Status", "CycleState", "NodeInfo", "PodInfo", "Snapshot",
    "PreFilterPlugin", "FilterPlugin", "PostFilterPlugin", "PostFilterResult", "PreScorePlugin",
    "ScorePlugin", "NormalizeScorePlugin", "Handle", "PluginFactory", "default_normalize_score", "filter_each",
]

MAX_NODE_SCORE = 100  # framework.MaxNodeScore


class Code(IntEnum):
    """Status codes, numbered as in the Go framework."""

    SUCCESS = 0
    ERROR = 1
    UNSCHEDULABLE = 2
    UNSCHEDULABLE_AND_UNRESOLVABLE = 3
    WAIT = 4
    SKIP = 5


_CODE_NAMES = {
    Code.SUCCESS: "Success", Code.ERROR: "Error", Code.UNSCHEDULABLE: "Unschedulable",
    Code.UNSCHEDULABLE_AND_UNRESOLVABLE: "UnschedulableAndUnresolvable", Code.WAIT: "Wait", Code.SKIP: "Skip",
}


@dataclass(slots=True)
class Status:
    """The outcome of one plugin at one extension point; `None` stands for success.

    `Unschedulable` means preemption might help, `UnschedulableAndUnresolvable` that it
    cannot (the preemption plugin skips such nodes), `Skip` that the plugin has nothing
    to do for this pod, so its Filter/Score are not called.
    """

    code: Code
    reasons: list[str] = field(default_factory=list)
    plugin: str = ""

    @classmethod
    def unschedulable(cls, *reasons: str, plugin: str = "") -> Status:
        return cls(Code.UNSCHEDULABLE, list(reasons), plugin)

    @classmethod
    def unresolvable(cls, *reasons: str, plugin: str = "") -> Status:
        return cls(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, list(reasons), plugin)

    @classmethod
    def error(cls, reason: str, plugin: str = "") -> Status:
        return cls(Code.ERROR, [reason], plugin)

    @classmethod
    def skip(cls) -> Status:
        return cls(Code.SKIP)

    @property
    def code_name(self) -> str:
        return _CODE_NAMES[self.code]

    def is_skip(self) -> bool:
        return self.code == Code.SKIP

    def is_rejected(self) -> bool:
        return self.code in (Code.UNSCHEDULABLE, Code.UNSCHEDULABLE_AND_UNRESOLVABLE)

    def message(self) -> str:
        return ", ".join(self.reasons)


class CycleState(dict[str, Any]):
    """Per-scheduling-cycle scratch space, keyed by plugin name (Go's `CycleState`).

    Also records which plugins asked to be skipped at PreFilter/PreScore.
    """

    def __init__(self) -> None:
        super().__init__()
        self.skip_filter: set[str] = set()
        self.skip_score: set[str] = set()

    def clone(self) -> CycleState:
        c = CycleState()
        c.update(self)
        c.skip_filter = set(self.skip_filter)
        c.skip_score = set(self.skip_score)
        return c


@runtime_checkable
class PreFilterPlugin(Protocol):
    """Computes per-pod data once; may return Skip (no Filter needed) or reject the pod outright."""

    name: str

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status | None: ...


@runtime_checkable
class FilterPlugin(Protocol):
    """Decides whether the pod can run on one node."""

    name: str

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None: ...


@dataclass(slots=True)
class PostFilterResult:
    """What a PostFilter (preemption) found: a node to nominate and the pods to evict there."""

    nominated_node: str | None = None
    victims: list[PodInfo] = field(default_factory=list)


@runtime_checkable
class PostFilterPlugin(Protocol):
    """Runs only when no node fits; the default one is preemption."""

    name: str

    def post_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot,
                    statuses: dict[str, Status]) -> tuple[PostFilterResult | None, Status | None]: ...


@runtime_checkable
class PreScorePlugin(Protocol):
    """Prepares scoring over the feasible nodes; may return Skip."""

    name: str

    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot,
                  nodes: list[NodeInfo]) -> Status | None: ...


@runtime_checkable
class ScorePlugin(Protocol):
    """Ranks a feasible node from 0 to MAX_NODE_SCORE (after optional `normalize_score`)."""

    name: str

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int: ...


@runtime_checkable
class NormalizeScorePlugin(Protocol):
    """ScoreExtensions: rescales one plugin's raw scores over all feasible nodes, in place."""

    name: str

    def normalize_score(self, state: CycleState, pod: PodInfo, scores: list[int], nodes: list[NodeInfo]) -> None: ...


class Handle(Protocol):
    """What a plugin may call back into: the profile's own filter chain (used by preemption)."""

    def run_pre_filter_plugins(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status | None: ...

    def run_filter_plugins(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None: ...


# `new(args, handle) -> plugin`: every plugin module exposes one, the registry maps names to them.
PluginFactory = Callable[[dict[str, Any], Handle], object]


def filter_each(filter_: Callable[[CycleState, PodInfo, NodeInfo], Status | None], state: CycleState,
                pod: PodInfo, nodes: list[NodeInfo]) -> tuple[list[NodeInfo], list[tuple[NodeInfo, Status]]]:
    """A batched `filter_nodes` built from a per-node `filter`: (passing nodes, (node, status) rejections)."""
    ok: list[NodeInfo] = []
    bad: list[tuple[NodeInfo, Status]] = []
    for n in nodes:
        st = filter_(state, pod, n)
        if st is None:
            ok.append(n)
        else:
            bad.append((n, st))
    return ok, bad


def default_normalize_score(scores: list[int], reverse: bool) -> None:
    """`helper.DefaultNormalizeScore`: scale to 0..100 by the maximum, optionally reversed, in place."""
    max_count = max(scores, default=0)
    if max_count == 0:
        if reverse:
            for i in range(len(scores)):
                scores[i] = MAX_NODE_SCORE
        return
    for i, s in enumerate(scores):
        s = MAX_NODE_SCORE * s // max_count
        scores[i] = MAX_NODE_SCORE - s if reverse else s


NO_NODES_AVAILABLE = "no nodes available to schedule pods"  # ErrNoNodesAvailable


def fit_error_message(num_nodes: int, statuses: dict[str, Status], *, pre_filter_msg: str = "",
                      post_filter_msg: str = "", absent_reasons: list[str] | None = None) -> str:
    """`FitError.Error()`: "0/N nodes are available: <count> <reason>, ... .[ <postfilter>.]".

    Reasons are counted across nodes (a node may contribute several) and the
    "<count> <reason>" strings are sorted as strings, exactly as Go's `sort.Strings`
    does — so "2 node(s) ..." sorts before "3 Insufficient cpu". Nodes without a status
    (preemption's unconsidered nodes) count under `absent_reasons`.
    """
    msg = f"0/{num_nodes} nodes are available:"
    if pre_filter_msg:
        msg += f" {pre_filter_msg}."
    else:
        hist: dict[str, int] = {}
        for st in statuses.values():
            for r in st.reasons:
                hist[r] = hist.get(r, 0) + 1
        if absent_reasons and len(statuses) < num_nodes:
            for r in absent_reasons:
                hist[r] = hist.get(r, 0) + num_nodes - len(statuses)
        parts = sorted(f"{count} {reason}" for reason, count in hist.items())
        if parts:
            msg += " " + ", ".join(parts) + "."
    if post_filter_msg:
        msg += f" {post_filter_msg}."
    return msg
