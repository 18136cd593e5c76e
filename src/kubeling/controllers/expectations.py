"""Expectations: how many creates/deletes a controller is still waiting to see.

A controller that just created 5 pods must not create 5 more before its
informer has observed them; it records what it expects and reconciles again
only when the expectations are met (or expire, in case an event was lost) —
Kubernetes' ControllerExpectations.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

EXPECTATIONS_TIMEOUT = 300.0


@dataclass
class _Expectation:
    add: int = 0
    delete: int = 0
    timestamp: float = field(default_factory=time.monotonic)


class Expectations:
    """Per-controller-key counters of outstanding creates and deletes."""

    def __init__(self, clock=time.monotonic) -> None:  # type: ignore[no-untyped-def]
        self._items: dict[str, _Expectation] = {}
        self._clock = clock

    def satisfied(self, key: str) -> bool:
        exp = self._items.get(key)
        if exp is None:
            return True
        if exp.add <= 0 and exp.delete <= 0:
            return True
        return self._clock() - exp.timestamp > EXPECTATIONS_TIMEOUT

    def expect(self, key: str, *, adds: int = 0, deletes: int = 0) -> None:
        self._items[key] = _Expectation(adds, deletes, self._clock())

    def creation_observed(self, key: str) -> None:
        exp = self._items.get(key)
        if exp is not None:
            exp.add -= 1

    def deletion_observed(self, key: str) -> None:
        exp = self._items.get(key)
        if exp is not None:
            exp.delete -= 1

    def lower(self, key: str, *, adds: int = 0, deletes: int = 0) -> None:
        """A create/delete we expected failed: stop waiting for it."""
        exp = self._items.get(key)
        if exp is not None:
            exp.add -= adds
            exp.delete -= deletes

    def forget(self, key: str) -> None:
        self._items.pop(key, None)
