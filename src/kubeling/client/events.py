"""Recording core/v1 Events about objects, as client-go's EventRecorder does.

Events are how components tell a user *why* ("FailedScheduling: 0/3 nodes are
available…") in `kubectl describe`. A controller retrying every few seconds
would bury the API server in identical Events, so like client-go's
EventCorrelator the same (object, type, reason, message) seen again within ten
minutes bumps `count` and `lastTimestamp` of the existing Event with a PATCH
instead of creating a new one. Recording is best-effort by design: a failure
to record must never fail the work being recorded, so `event()` never raises.
"""

from __future__ import annotations

import logging
import socket
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from kubeling.api.errors import StatusError
from kubeling.client.resources import EVENTS
from kubeling.client.rest import KubeClient

log = logging.getLogger(__name__)

EventType = Literal["Normal", "Warning"]
AGGREGATION_WINDOW = 600.0  # seconds: client-go's defaultAggregateIntervalInSeconds
MAX_CACHED = 4096  # client-go's maxLruCacheEntries


@dataclass
class _Seen:
    name: str
    namespace: str
    count: int
    first_timestamp: str
    last_seen: float


def _timestamp(now: float) -> str:
    # firstTimestamp/lastTimestamp are metav1.Time: second precision.
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventRecorder:
    """Creates (and aggregates) Events on behalf of one component, e.g. "default-scheduler"."""

    def __init__(self, client: KubeClient, *, component: str, host: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.component = component
        self.host = host if host is not None else socket.gethostname()
        self._clock = clock
        self._seen: OrderedDict[tuple[str, ...], _Seen] = OrderedDict()
        self._last_suffix = 0

    async def event(self, obj: Mapping[str, Any], type_: EventType | str, reason: str, message: str) -> None:
        """Record that `reason: message` happened to `obj`; logs instead of raising on failure."""
        try:
            await self._record(obj, type_, reason, message)
        except Exception as err:  # best effort: see the module docstring
            meta = obj.get("metadata") or {}
            log.warning("could not record event %s for %s/%s: %s", reason, meta.get("namespace", ""),
                        meta.get("name", ""), err)

    async def _record(self, obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        involved = self._reference(obj)
        # Events about cluster-scoped objects (Nodes, PVs) live in "default", as client-go puts them.
        namespace = involved.get("namespace") or "default"
        key = (involved.get("kind", ""), namespace, involved.get("name", ""), involved.get("uid", ""),
               type_, reason, message)
        now = self._clock()
        stamp = _timestamp(now)
        seen = self._seen.get(key)
        if seen is not None and now - seen.last_seen <= AGGREGATION_WINDOW:
            patch = {"count": seen.count + 1, "lastTimestamp": stamp}
            try:
                await self.client.patch(EVENTS, seen.name, patch, namespace=seen.namespace, patch_type="merge")
                seen.count += 1
                seen.last_seen = now
                self._seen.move_to_end(key)
                return
            except StatusError as err:
                if err.code != 404:
                    raise
                # Events expire server-side (TTL); start a new series.
        name = f"{involved.get('name', 'unknown')}.{self._suffix()}"
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": type_,
            "source": {"component": self.component, **({"host": self.host} if self.host else {})},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
            "reportingComponent": self.component,
            "reportingInstance": self.host,
        }
        await self.client.create(EVENTS, body, namespace=namespace)
        self._seen[key] = _Seen(name, namespace, 1, stamp, now)
        self._seen.move_to_end(key)
        while len(self._seen) > MAX_CACHED:
            self._seen.popitem(last=False)

    def _suffix(self) -> str:
        # client-go names events "<name>.<unix nanos in hex>"; keep it strictly increasing so names never collide.
        suffix = max(time.time_ns(), self._last_suffix + 1)
        self._last_suffix = suffix
        return f"{suffix:016x}"

    @staticmethod
    def _reference(obj: Mapping[str, Any]) -> dict[str, str]:
        meta = obj.get("metadata") or {}
        ref = {
            "kind": obj.get("kind", ""),
            "namespace": meta.get("namespace", ""),
            "name": meta.get("name", ""),
            "uid": meta.get("uid", ""),
            "apiVersion": obj.get("apiVersion", ""),
            "resourceVersion": meta.get("resourceVersion", ""),
        }
        return {k: v for k, v in ref.items() if v}
