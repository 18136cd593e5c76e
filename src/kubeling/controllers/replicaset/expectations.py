"""Expectations that track deletions by pod key (`UIDTrackingControllerExpectations`).

A pod deleted with grace is seen twice: once when it gains a deletionTimestamp
and again when it is really gone. Counting both would satisfy the
expectations of *other* pending deletions early and let the controller delete
more pods than it meant to, so — like Kubernetes — deletions are expected by
pod key and each key is observed at most once.
"""

from __future__ import annotations

from collections.abc import Iterable

from kubeling.controllers.expectations import Expectations


class UIDTrackingExpectations(Expectations):
    """Expectations whose deletions are keyed by pod, so a deletion is observed once."""

    def __init__(self) -> None:
        super().__init__()
        self._deleting: dict[str, set[str]] = {}

    def expect_deletions(self, key: str, pod_keys: Iterable[str]) -> None:
        keys = set(pod_keys)
        self._deleting[key] = keys
        self.expect(key, deletes=len(keys))

    def deletion_observed_for(self, key: str, pod_key: str) -> None:
        pending = self._deleting.get(key)
        if pending is None or pod_key not in pending:
            return
        pending.discard(pod_key)
        self.deletion_observed(key)

    def forget(self, key: str) -> None:
        super().forget(key)
        self._deleting.pop(key, None)
