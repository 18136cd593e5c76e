"""CrashLoopBackOff: how long a crashed container waits before its next restart.

Kubernetes' kubelet keeps one `flowcontrol.Backoff` entry per container
(`<pod uid>/<container name>`), keyed on the time the container *finished*:

- a container that crashes with no entry (or whose entry is older than
  `reset_after`, i.e. it ran fine that long) restarts at once and the entry
  starts at `base` (10 s);
- a container that crashes again while `now - finishedAt < delay` is "in
  back-off": its waiting reason is CrashLoopBackOff and a BackOff event is
  recorded; once the delay has passed it restarts and the delay doubles, capped
  at `maximum` (5 min).

So restarts come after 0 s, 10 s, 20 s, 40 s … 300 s, as users see on a real
cluster. The clock is injectable so tests need not sleep.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Entry:
    delay: float
    last_update: float


class Backoff:
    """Per-key exponential back-off with a cap and an idle reset (client-go's flowcontrol.Backoff)."""

    def __init__(self, *, base: float = 10.0, maximum: float = 300.0, reset_after: float | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.base = base
        self.maximum = maximum
        # Kubernetes resets an entry idle for twice the cap (10 min with the default 5 min cap).
        self.reset_after = 2 * maximum if reset_after is None else reset_after
        self._clock = clock
        self._entries: dict[str, _Entry] = {}

    def remaining(self, key: str, finished_at: float) -> float:
        """Seconds `key`, which finished at `finished_at`, must still wait (0: restart now)."""
        entry = self._entries.get(key)
        if entry is None or finished_at - entry.last_update > self.reset_after:
            return 0.0
        return max(0.0, entry.delay - (self._clock() - finished_at))

    def next(self, key: str, finished_at: float) -> float:
        """Record a restart of `key` and return the delay the *next* crash will wait."""
        entry = self._entries.get(key)
        if entry is None or finished_at - entry.last_update > self.reset_after:
            self._entries[key] = _Entry(self.base, self._clock())
            return self.base
        entry.delay = min(entry.delay * 2, self.maximum)
        entry.last_update = self._clock()
        return entry.delay

    def delay(self, key: str) -> float:
        """The current delay of `key` (0 when it never restarted)."""
        entry = self._entries.get(key)
        return entry.delay if entry else 0.0

    def forget(self, prefix: str) -> None:
        """Drop every entry whose key starts with `prefix` (a deleted pod's uid)."""
        for key in [k for k in self._entries if k.startswith(prefix)]:
            del self._entries[key]
