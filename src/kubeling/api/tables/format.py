"""Shared formatting for server-side tables: ages, timestamps and the column helper.

kubectl prints the cells it receives verbatim, so every string here has to be the one
Kubernetes produces. The age rules are apimachinery's `pkg/util/duration`
(`HumanDuration` / `ShortHumanDuration`) ported literally, including Go's truncating
integer arithmetic; the `<unknown>`/`<none>` placeholders are printers.go's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from kubeling.api.tables.descriptions import doc

UNKNOWN = "<unknown>"
NONE = "<none>"
UNSET = "<unset>"

_SECOND = 1_000_000  # durations are handled in whole microseconds, like Go's int64 nanoseconds
_MINUTE = 60 * _SECOND
_HOUR = 60 * _MINUTE


def _micros(d: timedelta) -> int:
    return (d.days * 86400 + d.seconds) * _SECOND + d.microseconds


def _trunc_div(a: int, b: int) -> int:
    """Go's integer division (truncates toward zero, unlike Python's `//`)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def short_human_duration(d: timedelta) -> str:
    """apimachinery `duration.ShortHumanDuration`: one unit, e.g. "5s", "3m", "2h", "4d", "1y"."""
    us = _micros(d)
    seconds = _trunc_div(us, _SECOND)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60:
        return f"{seconds}s"
    minutes = _trunc_div(us, _MINUTE)
    if minutes < 60:
        return f"{minutes}m"
    hours = _trunc_div(us, _HOUR)
    if hours < 24:
        return f"{hours}h"
    if hours < 24 * 365:
        return f"{hours // 24}d"
    return f"{hours // 24 // 365}y"


def human_duration(d: timedelta) -> str:
    """apimachinery `duration.HumanDuration`: ~2-3 significant figures ("3m2s", "2h10m", "3d4h", "2y30d")."""
    us = _micros(d)
    seconds = _trunc_div(us, _SECOND)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60 * 2:
        return f"{seconds}s"
    minutes = _trunc_div(us, _MINUTE)
    if minutes < 10:
        s = seconds % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = _trunc_div(us, _HOUR)
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if dy == 0 else f"{years}y{dy}d"
    return f"{hours // 24 // 365}y"


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 `metav1.Time`/`MicroTime` string as an aware datetime; None if absent or unparsable."""
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def aware(now: datetime) -> datetime:
    """Treat a naive `now` as UTC so callers may pass `datetime.utcnow()`-style values."""
    return now if now.tzinfo else now.replace(tzinfo=UTC)


def since(value: Any, now: datetime) -> str:
    """printers.go `translateTimestampSince`: "<unknown>" for a zero time, else HumanDuration(now - t)."""
    t = parse_time(value)
    if t is None:
        return UNKNOWN
    return human_duration(aware(now) - t)


def age(obj: dict[str, Any], now: datetime) -> str:
    """The AGE cell: time since `metadata.creationTimestamp`."""
    return since(meta(obj).get("creationTimestamp"), now)


def meta(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("metadata") or {}


def name(obj: dict[str, Any]) -> str:
    return meta(obj).get("name") or ""


def get(obj: Any, *path: str, default: Any = None) -> Any:
    """Walk nested dicts; `default` when any step is missing or null."""
    cur = obj
    for key in path:
        if not isinstance(cur, dict):
            return default
        cur = cur.get(key)
        if cur is None:
            return default
    return cur


def column(col_name: str, col_type: str = "string", description: str = "", *,
           priority: int = 0, fmt: str = "") -> dict[str, Any]:
    """One `TableColumnDefinition`, keys in Go's field order."""
    return {"name": col_name, "type": col_type, "format": fmt, "description": description, "priority": priority}


def name_column() -> dict[str, Any]:
    return column("Name", "string", doc("ObjectMeta.name"), fmt="name")


def age_column() -> dict[str, Any]:
    return column("Age", "string", doc("ObjectMeta.creationTimestamp"))


CONTAINERS_DESC = "Names of each container in the template."
IMAGES_DESC = "Images referenced by each container in the template."


def containers_columns() -> list[dict[str, Any]]:
    """The wide `Containers`/`Images` pair every workload table ends with."""
    return [column("Containers", "string", CONTAINERS_DESC, priority=1),
            column("Images", "string", IMAGES_DESC, priority=1)]


def layout_containers(containers: list[dict[str, Any]] | None) -> tuple[str, str]:
    """printers.go `layoutContainerCells`: comma-joined names and images."""
    containers = containers or []
    return (",".join(c.get("name") or "" for c in containers),
            ",".join(c.get("image") or "" for c in containers))


def template_containers(obj: dict[str, Any], *path: str) -> list[dict[str, Any]]:
    return get(obj, *path, "template", "spec", "containers", default=[]) or []


def format_labels(labels: dict[str, str] | None) -> str:
    """apimachinery `labels.FormatLabels`: sorted "k=v,k2=v2", "<none>" when empty."""
    if not labels:
        return NONE
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def print_bool_ptr(value: Any) -> str:
    """printers.go `printBoolPtr`: "True"/"False", "<unset>" for nil."""
    if value is None:
        return UNSET
    return "True" if value else "False"


def condition_true(conditions: list[dict[str, Any]] | None, cond_type: str) -> bool:
    """Status of the first condition of `cond_type` is "True" (printers.go `hasJobCondition`)."""
    for cond in conditions or []:
        if cond.get("type") == cond_type:
            return cond.get("status") == "True"
    return False


RowFn = Callable[[dict[str, Any], datetime], list[Any]]


@dataclass(frozen=True)
class Printer:
    """A resource's table: its column definitions and the function producing one row's cells.

    As in kube-apiserver, rows always carry the wide (priority 1) cells too; kubectl
    hides those columns unless `-o wide`.
    """

    columns: tuple[dict[str, Any], ...]
    row: RowFn
