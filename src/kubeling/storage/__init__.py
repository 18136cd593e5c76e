"""kubeling.storage: the revisioned key-value store (etcd's model) behind the API server.

`interface` is the contract every backend implements; `sqlite` the embedded
backend (kine's design); `watchcache` fans one store watch out to many API
watchers. Import backends from their modules; only the contract is re-exported
here, so importing the package does not pull in a backend.
"""

from kubeling.storage.interface import (
    Compacted,
    Event,
    FutureRevision,
    KeyExists,
    KeyNotFound,
    KeyValue,
    RangeResult,
    RevisionMismatch,
    Store,
    StoreError,
)

__all__ = [
    "Compacted",
    "Event",
    "FutureRevision",
    "KeyExists",
    "KeyNotFound",
    "KeyValue",
    "RangeResult",
    "RevisionMismatch",
    "Store",
    "StoreError",
]
