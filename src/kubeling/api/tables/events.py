"""The event table (printers.go `printEvent`), shared by core/v1 and events.k8s.io/v1.

kube-apiserver prints both groups' Events from the internal type, so `kubectl get
events.v1.events.k8s.io` shows the same columns as `kubectl get events`. We convert an
events.k8s.io object to its core/v1 shape first and print that. "Last seen" falls back
to the first timestamp, then `eventTime`; a series overrides both time and count, and a
singleton event from the new API (count 0) counts as 1.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kubeling.api.conversion import EVENTS_V1, v1_event_to_core
from kubeling.api.tables.descriptions import doc
from kubeling.api.tables.format import Printer, column, name, since

COLUMNS = (
    column("Last Seen", "string", doc("Event.lastTimestamp")),
    column("Type", "string", doc("Event.type")),
    column("Reason", "string", doc("Event.reason")),
    column("Object", "string", doc("Event.involvedObject")),
    column("Subobject", "string", doc("ObjectReference.fieldPath"), priority=1),
    column("Source", "string", doc("Event.source"), priority=1),
    column("Message", "string", doc("Event.message")),
    column("First Seen", "string", doc("Event.firstTimestamp"), priority=1),
    column("Count", "string", doc("Event.count"), priority=1),
    column("Name", "string", doc("ObjectMeta.name"), priority=1, fmt="name"),
)


def event_source(ev: dict[str, Any]) -> str:
    """printers.go `formatEventSource`: "component, host", falling back to the reporting fields."""
    source = ev.get("source") or {}
    component = source.get("component") or ev.get("reportingComponent") or ""
    instance = source.get("host") or ev.get("reportingInstance") or ""
    return f"{component}, {instance}" if instance else component


def event_row(obj: dict[str, Any], now: datetime) -> list[Any]:
    ev = v1_event_to_core(obj) if obj.get("apiVersion") == EVENTS_V1 else obj
    if ev.get("firstTimestamp"):
        first = since(ev["firstTimestamp"], now)
    else:
        first = since(ev.get("eventTime"), now)
    last = since(ev["lastTimestamp"], now) if ev.get("lastTimestamp") else first
    count = int(ev.get("count") or 0)
    series = ev.get("series")
    if series is not None:
        last = since(series.get("lastObservedTime"), now)
        count = int(series.get("count") or 0)
    elif count == 0:
        count = 1
    involved = ev.get("involvedObject") or {}
    kind = (involved.get("kind") or "").lower()
    target = f"{kind}/{involved['name']}" if involved.get("name") else kind
    return [
        last, ev.get("type") or "", ev.get("reason") or "", target, involved.get("fieldPath") or "",
        event_source(ev), (ev.get("message") or "").strip(), first, count, name(ev),
    ]


_PRINTER = Printer(COLUMNS, event_row)
PRINTERS = {"events": _PRINTER, "events.events.k8s.io": _PRINTER}
