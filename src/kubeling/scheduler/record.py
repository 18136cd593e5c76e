"""The last scheduling attempt, stored on the pod so `kubeling explain pod` can show it.

The scheduler's reasoning lives in a ScheduleResult that dies with the cycle; a user
asking "why is my pod here / why is it Pending?" needs it later, from another process,
through the API only. So the scheduler writes a compact JSON record into the pod
annotation `scheduler.kubeling.io/explanation`: in the Binding's metadata on success
(the API server copies Binding annotations onto the pod, one write instead of two) and
with a metadata patch on failure.

The record is bounded so a 5,000-node cluster does not put 5,000 rows on every pod:
at most `max_nodes` rows, preferring the top-scored feasible nodes (the chosen one
always) and the rejected ones, with the number left out. The FitError message still
counts every node. A bound pod carries its record in every watch event and every GET
for the rest of its life, so the scheduler keeps that one short (`BOUND_MAX_NODES`: the
runners-up and a sample of rejections); a pending pod's record is for debugging and
gets the full `MAX_NODES`. `format_record` renders the same table as `scheduler.explain`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import compress, islice
from operator import attrgetter
from typing import Any

from kubeling.scheduler.core import ScheduleResult
from kubeling.scheduler.snapshot import Snapshot

ANNOTATION = "scheduler.kubeling.io/explanation"
MAX_NODES = 100
BOUND_MAX_NODES = 20
VERSION = 1


def explanation_record(result: ScheduleResult, *, max_nodes: int = MAX_NODES, profile: str = "",
                       snapshot: Snapshot | None = None) -> dict[str, Any]:
    """A JSON-ready summary of `result`: verdicts per node, per-plugin scores, totals (bounded).

    `snapshot` (the one the decision was made on) only speeds up finding the chosen node.
    """
    plugins = list(result.scores)
    n_feasible = len(result.feasible)
    n_rejected = len(result.filter_statuses)
    # Half the rows for the best feasible nodes, the rest for rejections; unused room goes to the other side.
    want_rejected = min(n_rejected, max(max_nodes // 2, max_nodes - n_feasible))
    want_feasible = min(n_feasible, max_nodes - want_rejected)
    totals = result.totals
    if totals and want_feasible < n_feasible:
        order = _top(totals, want_feasible)
    elif totals:
        order = sorted(range(n_feasible), key=totals.__getitem__, reverse=True)
    else:
        order = list(range(want_feasible))
    selected = snapshot.get(result.selected_node) if snapshot is not None and result.selected_node else None
    if result.selected_node and all(result.feasible[i].name != result.selected_node for i in order):
        # A tie wider than the rows kept: make room for the chosen node. With the snapshot's
        # NodeInfo the search is an identity scan in C; without it, a scan of the names.
        try:
            chosen = result.feasible.index(selected) if selected is not None else \
                list(map(attrgetter("name"), result.feasible)).index(result.selected_node)
        except ValueError:
            chosen = None
        if chosen is not None:
            order = [*order[:-1], chosen] if order else [chosen]
    feasible_rows = [[result.feasible[i].name, result.totals[i] if result.totals else None,
                      [result.scores[p][i] for p in plugins]] for i in order]
    # Which rejections are kept does not matter (the message counts them all): take the first ones.
    rejected_rows = sorted([name, st.plugin or "", st.message()]
                           for name, st in islice(result.filter_statuses.items(), want_rejected))
    record: dict[str, Any] = {
        "v": VERSION,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "profile": profile,
        "node": result.selected_node,
        "nodes": result.num_nodes,
        "feasible": n_feasible,
        "message": result.message,
        "weights": {p: result.weights.get(p, 1) for p in plugins},
        "skipped": list(result.skipped_score_plugins),
        "fits": feasible_rows,
        "rejected": rejected_rows,
        "omitted": n_feasible + n_rejected - len(feasible_rows) - len(rejected_rows),
    }
    if result.nominated_node:
        record["nominated"] = result.nominated_node
        record["victims"] = [v.key for v in result.victims]
    return record


def _top(totals: list[int], k: int) -> list[int]:
    """Indices of the k best totals, best first, without a Python-level pass over every node.

    Totals take few distinct values, so walk those down from the best until k nodes are
    covered; `list.count` and `compress` do the per-node work in C.
    """
    threshold, covered = 0, 0
    for value in sorted(set(totals), reverse=True):
        covered += totals.count(value)
        threshold = value
        if covered >= k:
            break
    above = list(compress(range(len(totals)), map(threshold.__lt__, totals)))
    ties = islice(compress(range(len(totals)), map(threshold.__eq__, totals)), k - len(above))
    order = above + list(ties)
    order.sort(key=totals.__getitem__, reverse=True)
    return order


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def format_record(record: dict[str, Any]) -> str:
    """The record as the per-node table `kubeling explain pod` prints (chosen node marked `*`)."""
    lines: list[str] = []
    when = f" (attempt at {record['time']}, profile {record.get('profile') or 'default-scheduler'})"
    node = record.get("node")
    if node:
        lines.append(f"Scheduled to {node}: {record.get('feasible', 0)}/{record.get('nodes', 0)} nodes feasible{when}")
    else:
        lines.append(f"Unschedulable{when}")
        if record.get("message"):
            lines.append(f"  {record['message']}")
        if record.get("nominated"):
            victims = ", ".join(record.get("victims") or []) or "none"
            lines.append(f"  preemption: nominated {record['nominated']}, evicting {victims}")
    weights: dict[str, int] = record.get("weights") or {}
    plugins = list(weights)
    if plugins:
        lines.append("Score weights: " + ", ".join(f"{p}×{w}" for p, w in weights.items()))
    if record.get("skipped"):
        lines.append("Skipped at PreScore (no effect on the ranking): " + ", ".join(record["skipped"]))
    fits = record.get("fits") or []
    if len(fits) == 1 and not plugins and node:
        lines.append("Only one feasible node: scoring skipped.")
    rows: list[list[str]] = [["", "NODE", *plugins, "TOTAL" if plugins else "", "VERDICT"]]
    for name, total, scores in fits:
        rows.append(["*" if name == node else "", name, *(str(s) for s in scores),
                     "" if total is None else str(total), "fits"])
    for name, plugin, reason in record.get("rejected") or []:
        rows.append(["", name, *([""] * len(plugins)), "", f"rejected by {plugin or '?'}: {reason}"])
    lines.append("")
    lines.extend(_table(rows))
    if record.get("omitted"):
        lines.append(f"... and {record['omitted']} more node(s) not recorded")
    return "\n".join(lines) + "\n"
