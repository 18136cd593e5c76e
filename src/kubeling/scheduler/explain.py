"""Human-readable explanation of one scheduling decision (`kubeling explain pod NAME`).

SwarmKit's filters can explain why nodes were rejected; kube-scheduler only prints the
aggregated "0/N nodes are available" line. Here the ScheduleResult already holds every
node's verdict and every plugin's normalized score, so the explanation is a table:
one row per node with the rejecting plugin and reason, or the per-plugin scores and the
weighted total, the chosen node marked with `*`. Feasible nodes come first, best first.
"""

from __future__ import annotations

from kubeling.scheduler.core import ScheduleResult


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def format_explanation(result: ScheduleResult, *, max_nodes: int | None = None) -> str:
    """The decision as text: a headline, the score weights, then a per-node table.

    `max_nodes` caps the number of rows (feasible nodes first); the rest are summarized.
    """
    lines: list[str] = []
    if result.selected_node:
        lines.append(f"Pod {result.pod}: scheduled to {result.selected_node} "
                     f"({len(result.feasible)}/{result.num_nodes} nodes feasible)")
    else:
        lines.append(f"Pod {result.pod}: unschedulable")
        if result.message:
            lines.append(f"  {result.message}")
        if result.nominated_node:
            victims = ", ".join(v.key for v in result.victims) or "none"
            lines.append(f"  preemption: nominated {result.nominated_node}, evicting {victims}")
    plugins = list(result.scores)
    if plugins:
        lines.append("Score weights: " + ", ".join(f"{p}×{result.weights.get(p, 1)}" for p in plugins))
    if result.skipped_score_plugins:
        lines.append("Skipped (Skip at PreScore: no effect on the ranking for this pod): " + ", ".join(result.skipped_score_plugins))
    if len(result.feasible) == 1 and not plugins:
        lines.append("Only one feasible node: scoring skipped.")

    header = ["", "NODE", *plugins, "TOTAL" if plugins else "", "VERDICT"]
    rows: list[list[str]] = [header]
    order = sorted(range(len(result.feasible)), key=lambda i: -result.totals[i]) if result.totals else \
        list(range(len(result.feasible)))
    for i in order:
        n = result.feasible[i].name
        mark = "*" if n == result.selected_node else ""
        scores = [str(result.scores[p][i]) for p in plugins]
        rows.append([mark, n, *scores, str(result.totals[i]) if result.totals else "", "fits"])
    for name in sorted(result.filter_statuses):
        st = result.filter_statuses[name]
        verdict = f"rejected by {st.plugin or '?'}: {st.message()}"
        rows.append(["", name, *([""] * len(plugins)), "", verdict])
    shown = rows if max_nodes is None else rows[: max_nodes + 1]
    lines.append("")
    lines.extend(_table(shown))
    if len(shown) < len(rows):
        lines.append(f"... and {len(rows) - len(shown)} more node(s)")
    return "\n".join(lines) + "\n"
