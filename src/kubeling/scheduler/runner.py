"""The Filter and Score chains over a list of nodes, shared by the core and the equivalence cache.

Filters run plugin by plugin over the shrinking list of surviving nodes (batched
`filter_nodes` when a plugin offers it); the verdict of a rejected node is the first
plugin that rejected it — the same outcome as upstream's node-by-node loop that stops at
the first failure. Scores run plugin by plugin too, then normalize, then weigh.
"""

from __future__ import annotations

import random
import zlib
from itertools import compress, repeat
from operator import add, mul
from typing import Any

from kubeling.scheduler.framework import CycleState, NodeInfo, PodInfo, Snapshot, Status


def run_filter_chain(state: CycleState, pi: PodInfo, nodes: list[NodeInfo], filter_plugins: list[Any],
                     rejected: dict[str, Status]) -> list[NodeInfo]:
    """The nodes passing every non-skipped filter; rejected ones land in `rejected` (name → status)."""
    for p in filter_plugins:
        if p.name in state.skip_filter:
            continue
        batch = getattr(p, "filter_nodes", None)
        if batch is not None:
            nodes, bad = batch(state, pi, nodes)
            for ni, s in bad:
                rejected[ni.name] = s
        else:
            f = p.filter
            ok = []
            for ni in nodes:
                s = f(state, pi, ni)
                if s is None:
                    ok.append(ni)
                else:
                    s.plugin = s.plugin or p.name
                    rejected[ni.name] = s
            nodes = ok
        if not nodes:
            break
    return nodes


def run_pre_score(state: CycleState, pi: PodInfo, snapshot: Snapshot, nodes: list[NodeInfo],
                  pre_score_plugins: list[Any]) -> None:
    """PreScore for every plugin; Skips are recorded in `state.skip_score`."""
    for p in pre_score_plugins:
        s = p.pre_score(state, pi, snapshot, nodes)
        if s is not None and s.is_skip():
            state.skip_score.add(p.name)


def run_score_chain(state: CycleState, pi: PodInfo, nodes: list[NodeInfo], score_plugins: list[tuple[Any, int]]
                    ) -> tuple[dict[str, list[int]], list[int], list[str]]:
    """(normalized scores per plugin, weighted totals, skipped plugin names) for `nodes`."""
    scores_by_plugin: dict[str, list[int]] = {}
    skipped: list[str] = []
    totals = [0] * len(nodes)
    for p, weight in score_plugins:
        if p.name in state.skip_score:
            skipped.append(p.name)
            continue
        batch = getattr(p, "score_nodes", None)
        scores = batch(state, pi, nodes) if batch is not None else [p.score(state, pi, n) for n in nodes]
        normalize = getattr(p, "normalize_score", None)
        if normalize is not None:
            normalize(state, pi, scores, nodes)
        scores_by_plugin[p.name] = scores
        # map() over operator functions keeps the per-node arithmetic in C.
        weighted = scores if weight == 1 else map(mul, scores, repeat(weight))
        totals = list(map(add, totals, weighted))
    return scores_by_plugin, totals, skipped


def pick(totals: list[int], best: int, pi: PodInfo, seed: int | None) -> int:
    """Index of the winner: the only maximum, or a seeded random choice among tied maxima.

    The seed defaults to the pod's uid, so a pod breaks ties the same way every time while
    different pods spread over tied nodes (upstream picks uniformly at random).
    """
    count = totals.count(best)
    if count == 1:
        return totals.index(best)
    ties = list(compress(range(len(totals)), map(best.__eq__, totals)))
    rng = random.Random(seed if seed is not None else zlib.crc32(pi.uid.encode()))
    return rng.choice(ties)
