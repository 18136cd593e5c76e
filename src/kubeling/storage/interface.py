"""The revisioned key-value contract every store backend implements (etcd's model).

One global, strictly increasing revision. Every write (create, update, delete)
gets the next revision. `mod_revision` of a key is the revision of its last
write; the API server uses it as `metadata.resourceVersion`. Watches deliver
every change after a revision, in order, without gaps, until the history they
need is compacted, at which point they raise `Compacted` (the API's 410 Gone).

The API server only ever sees this Protocol, never a concrete backend, so
SQLite and etcd are interchangeable (see tests/unit/storage/contract.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, Protocol


@dataclass(frozen=True, slots=True)
class KeyValue:
    """One key at one revision."""

    key: str
    value: bytes
    create_revision: int
    mod_revision: int


@dataclass(frozen=True, slots=True)
class Event:
    """A change to one key. For DELETE, `kv.value` is the last value and
    `kv.mod_revision` the revision of the deletion."""

    type: Literal["PUT", "DELETE"]
    kv: KeyValue
    prev_kv: KeyValue | None

    @property
    def revision(self) -> int:
        return self.kv.mod_revision


@dataclass(frozen=True, slots=True)
class RangeResult:
    """A page of keys (sorted by key) as of `revision`; `more` when keys remain after the page."""

    kvs: list[KeyValue]
    revision: int
    more: bool
    count: int  # keys remaining from this page on (this page included), as etcd reports


class StoreError(Exception):
    """Base of store failures; the API server maps each to a `Status`."""


class KeyExists(StoreError):
    """create() found the key already present."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class KeyNotFound(StoreError):
    """update()/delete() found no live key."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class RevisionMismatch(StoreError):
    """A compare-and-swap lost: the key's mod_revision is no longer the expected one."""

    def __init__(self, key: str, current: KeyValue | None) -> None:
        super().__init__(key)
        self.key = key
        self.current = current


class Compacted(StoreError):
    """The requested revision is older than the compacted revision (410 Gone)."""

    def __init__(self, requested: int, compacted: int) -> None:
        super().__init__(f"required revision {requested} has been compacted (compacted to {compacted})")
        self.requested = requested
        self.compacted = compacted


class FutureRevision(StoreError):
    """The requested revision is newer than the store's current revision."""

    def __init__(self, requested: int, current: int) -> None:
        super().__init__(f"required revision {requested} is a future revision (current {current})")
        self.requested = requested
        self.current = current


class Store(Protocol):
    """The contract. All methods are coroutine-safe; writes are atomic and durable once they return."""

    async def start(self) -> None:
        """Open the backend and start background work (compaction)."""

    async def close(self) -> None:
        """Stop background work, end every open watch, release the backend."""

    async def current_revision(self) -> int:
        """The revision of the latest write (0 on an empty store)."""

    async def compacted_revision(self) -> int:
        """The revision history is compacted up to (watches from older revisions fail)."""

    async def get(self, key: str, *, revision: int = 0) -> KeyValue | None:
        """The live value of `key` (as of `revision` when non-zero), or None."""

    async def create(self, key: str, value: bytes) -> KeyValue:
        """Create `key`; raise KeyExists if it is live."""

    async def update(self, key: str, value: bytes, *, expected_revision: int) -> KeyValue:
        """Replace `key` if its mod_revision equals `expected_revision`.

        Raises KeyNotFound if absent, RevisionMismatch (carrying the current kv) otherwise.
        """

    async def delete(self, key: str, *, expected_revision: int = 0) -> KeyValue:
        """Delete `key` (guarded by `expected_revision` when non-zero).

        Returns the deleted kv with `mod_revision` set to the deletion's revision.
        Raises KeyNotFound / RevisionMismatch.
        """

    async def range(self, prefix: str, *, start_after: str = "", limit: int = 0,
                    revision: int = 0) -> RangeResult:
        """Live keys under `prefix`, sorted, strictly after `start_after`, at most `limit` (0 = all),
        as of `revision` (0 = now). Raises Compacted / FutureRevision."""

    async def count(self, prefix: str) -> int:
        """Number of live keys under `prefix`."""

    def watch(self, prefix: str, *, after_revision: int) -> AsyncIterator[Event]:
        """Every event under `prefix` with revision > `after_revision`, in order, then the tail.

        Raises Compacted (on first iteration) when `after_revision` < compacted revision.
        The iterator ends when the store closes.
        """

    async def compact(self, revision: int) -> None:
        """Drop history older than `revision` (the latest value of each live key is kept)."""
