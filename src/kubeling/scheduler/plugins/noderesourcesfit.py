"""NodeResourcesFit: does the pod's request fit in what the node has left, and how full is it then.

Filter compares the pod's effective request (see `resources.pod_requests`) with
`allocatable - requested` per resource and reports every shortfall ("Insufficient cpu",
"Insufficient memory", "Insufficient nvidia.com/gpu", "Too many pods") with code
Unschedulable, so preemption may try to make room.

Score implements `NodeResourcesFitArgs.scoringStrategy`: LeastAllocated (spread, the
default), MostAllocated (bin-pack) and RequestedToCapacityRatio (a piecewise-linear
shape over utilization). Scoring uses the non-zero requests (100m / 200Mi for containers
without requests) so best-effort pods still count. Both Filter and Score offer batched
`*_nodes` variants whose loops read only int slots: this is the hot path of the scheduler.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubeling.scheduler.framework import (
    MAX_NODE_SCORE,
    CycleState,
    Handle,
    NodeInfo,
    PodInfo,
    Snapshot,
    Status,
)
from kubeling.scheduler.resources import CPU, EPHEMERAL_STORAGE, MEMORY

NAME = "NodeResourcesFit"
LEAST, MOST, RATIO = "LeastAllocated", "MostAllocated", "RequestedToCapacityRatio"
DEFAULT_RESOURCES = [{"name": CPU, "weight": 1}, {"name": MEMORY, "weight": 1}]
_MAX_CUSTOM_SCORE = 10  # shape scores are 0..10, scaled to 0..MAX_NODE_SCORE


def insufficient(pod: PodInfo, node: NodeInfo) -> list[str]:
    """`fitsRequest`: every reason the pod does not fit on the node (empty list: it fits)."""
    reasons = []
    if len(node.pods) + 1 > node.allowed_pods:
        reasons.append("Too many pods")
    r = pod.requests
    if r.milli_cpu and r.milli_cpu > node.alloc_cpu - node.req_cpu:
        reasons.append("Insufficient cpu")
    if r.memory and r.memory > node.alloc_mem - node.req_mem:
        reasons.append("Insufficient memory")
    if r.ephemeral_storage and r.ephemeral_storage > node.alloc_eph - node.req_eph:
        reasons.append("Insufficient ephemeral-storage")
    for name, q in r.scalar.items():
        if q and q > node.alloc_scalar.get(name, 0) - node.req_scalar.get(name, 0):
            reasons.append(f"Insufficient {name}")
    return reasons


def allocatable_and_requested(node: NodeInfo, resource: str, pod_request: int, use_requested: bool) -> tuple[int, int]:
    """`calculateResourceAllocatableRequest`: (allocatable, requested incl. the pod); (0, 0) skips a resource."""
    if resource == CPU:
        return node.alloc_cpu, (node.req_cpu if use_requested else node.nz_cpu) + pod_request
    if resource == MEMORY:
        return node.alloc_mem, (node.req_mem if use_requested else node.nz_mem) + pod_request
    if resource == EPHEMERAL_STORAGE:
        return node.alloc_eph, node.req_eph + pod_request
    if pod_request == 0 or resource not in node.alloc_scalar:
        return 0, 0  # an extended resource the pod doesn't ask for does not influence the score
    return node.alloc_scalar[resource], node.req_scalar.get(resource, 0) + pod_request


def pod_score_requests(pod: PodInfo, resources: list[tuple[str, int]], use_requested: bool) -> list[int]:
    out = []
    for name, _ in resources:
        if name == CPU:
            out.append(pod.requests.milli_cpu if use_requested else pod.non_zero_cpu)
        elif name == MEMORY:
            out.append(pod.requests.memory if use_requested else pod.non_zero_mem)
        else:
            out.append(pod.requests.get(name))
    return out


def least_requested(requested: int, capacity: int) -> int:
    if capacity == 0 or requested > capacity:
        return 0
    return (capacity - requested) * MAX_NODE_SCORE // capacity


def most_requested(requested: int, capacity: int) -> int:
    if capacity == 0:
        return 0
    return min(requested, capacity) * MAX_NODE_SCORE // capacity


def broken_linear(shape: list[tuple[int, int]]) -> Callable[[int], int]:
    """`buildBrokenLinearFunction` over (utilization, score) points, scores already scaled."""

    def f(p: int) -> int:
        for i, (u, s) in enumerate(shape):
            if p <= u:
                if i == 0:
                    return s
                pu, ps = shape[i - 1]
                # Go integer division truncates toward zero; mirror it for falling shapes.
                num = (s - ps) * (p - pu)
                den = u - pu
                q = abs(num) // den
                return ps + (q if num >= 0 else -q)
        return shape[-1][1]

    return f


class NodeResourcesFit:
    """Filters on free resources; scores with the configured strategy."""

    name = NAME
    node_local_filter = True  # Filter reads only the pod and this node (see eqcache)
    node_local_score = True  # Score reads only the pod and this node, no normalization

    def __init__(self, strategy: str, resources: list[tuple[str, int]], shape: list[tuple[int, int]] | None) -> None:
        self.strategy = strategy
        self.resources = resources
        self.weight_sum = sum(w for _, w in resources)
        self._fast = [n for n, _ in resources] == [CPU, MEMORY]
        self._ratio = broken_linear(shape) if shape else None

    # --- filter ---------------------------------------------------------------------------

    def pre_filter(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status | None:
        return None

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        reasons = insufficient(pod, node)
        return Status.unschedulable(*reasons, plugin=NAME) if reasons else None

    def filter_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]
                     ) -> tuple[list[NodeInfo], list[tuple[NodeInfo, Status]]]:
        r = pod.requests
        cpu, mem = r.milli_cpu, r.memory
        if r.ephemeral_storage or r.scalar:
            ok = []
            bad = []
            for n in nodes:
                reasons = insufficient(pod, n)
                if reasons:
                    bad.append((n, Status.unschedulable(*reasons, plugin=NAME)))
                else:
                    ok.append(n)
            return ok, bad
        # Hot path: only pods/cpu/memory matter; one pass, no allocation for fitting nodes.
        # A zero request is never "insufficient", even on an overcommitted node (fitsRequest),
        # hence the "anything goes" bound instead of 0.
        cpu = cpu or -(1 << 62)
        mem = mem or -(1 << 62)
        ok = [n for n in nodes if n.free_pods > 0 and n.free_cpu >= cpu and n.free_mem >= mem]
        if len(ok) == len(nodes):
            return ok, []
        okset = {id(n) for n in ok}
        bad = [(n, Status.unschedulable(*insufficient(pod, n), plugin=NAME)) for n in nodes if id(n) not in okset]
        return ok, bad

    # --- score ----------------------------------------------------------------------------

    def pre_score(self, state: CycleState, pod: PodInfo, snapshot: Snapshot, nodes: list[NodeInfo]) -> Status | None:
        state[NAME] = pod_score_requests(pod, self.resources, use_requested=False)
        return None

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        reqs = state[NAME] if NAME in state else pod_score_requests(pod, self.resources, False)
        total = weights = 0
        for (name, w), pr in zip(self.resources, reqs, strict=True):
            alloc, req = allocatable_and_requested(node, name, pr, use_requested=False)
            if alloc == 0:
                continue
            if self.strategy == LEAST:
                s = least_requested(req, alloc)
            elif self.strategy == MOST:
                s = most_requested(req, alloc)
            else:
                assert self._ratio is not None
                s = self._ratio(100 if req > alloc else req * 100 // alloc)
                if s <= 0:
                    continue  # RequestedToCapacityRatio only weighs resources that scored
            total += s * w
            weights += w
        if weights == 0:
            return 0
        if self.strategy == RATIO:
            return int(total / weights + 0.5)  # math.Round on a non-negative value
        return total // weights

    def score_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        if not self._fast or self.strategy == RATIO:
            return [self.score(state, pod, n) for n in nodes]
        pc, pm = pod.non_zero_cpu, pod.non_zero_mem
        (_, wc), (_, wm) = self.resources
        ws = self.weight_sum
        out = []
        append = out.append
        least = self.strategy == LEAST
        for n in nodes:
            ac = n.alloc_cpu
            am = n.alloc_mem
            if not (ac and am):
                append(self.score(state, pod, n))
                continue
            rc = n.nz_cpu + pc
            rm = n.nz_mem + pm
            if least:
                sc = (ac - rc) * 100 // ac if rc <= ac else 0
                sm = (am - rm) * 100 // am if rm <= am else 0
            else:
                sc = (rc if rc < ac else ac) * 100 // ac
                sm = (rm if rm < am else am) * 100 // am
            append((sc * wc + sm * wm) // ws)
        return out


def _parse_args(args: dict[str, Any]) -> tuple[str, list[tuple[str, int]], list[tuple[int, int]] | None]:
    strategy = args.get("scoringStrategy") or {}
    kind = strategy.get("type") or LEAST
    if kind not in (LEAST, MOST, RATIO):
        raise ValueError(f"NodeResourcesFit: scoringStrategy.type: Unsupported value: {kind!r}: "
                         f"supported values: {LEAST!r}, {MOST!r}, {RATIO!r}")
    resources = []
    for r in strategy.get("resources") or DEFAULT_RESOURCES:
        name, weight = r.get("name"), r.get("weight", 1)
        if not name or not isinstance(weight, int) or not 1 <= weight <= 100:
            raise ValueError(f"NodeResourcesFit: scoringStrategy.resources: invalid resource {r!r} "
                             "(need a name and an integer weight in 1..100)")
        resources.append((str(name), weight))
    shape = None
    if kind == RATIO:
        points = ((strategy.get("requestedToCapacityRatio") or {}).get("shape")) or []
        if not points:
            raise ValueError("NodeResourcesFit: scoringStrategy.requestedToCapacityRatio.shape: Required value")
        shape = []
        for p in points:
            u, s = p.get("utilization"), p.get("score")
            if not isinstance(u, int) or not isinstance(s, int) or not 0 <= u <= 100 or not 0 <= s <= _MAX_CUSTOM_SCORE:
                raise ValueError(f"NodeResourcesFit: shape point {p!r}: utilization must be 0..100 and score 0..10")
            if shape and u <= shape[-1][0]:
                raise ValueError("NodeResourcesFit: shape utilization values must be strictly increasing")
            shape.append((u, s * (MAX_NODE_SCORE // _MAX_CUSTOM_SCORE)))
    return kind, resources, shape


def new(args: dict[str, Any], handle: Handle) -> NodeResourcesFit:
    """Factory; raises ValueError on invalid `NodeResourcesFitArgs` (profile loading reports it)."""
    return NodeResourcesFit(*_parse_args(args or {}))
