"""The informer's local cache: objects by key, plus secondary indexes.

Controllers answer "which pods does this ReplicaSet own?" thousands of times a
second; asking the API server each time would flood it, so every read comes
from this cache (client-go's `cache.Indexer`). Objects are kept exactly as the
watch delivered them and handed out *without copying* for speed: callers must
treat them as read-only and copy before changing anything
(`copy.deepcopy(obj)`), the same contract as client-go's listers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

log = logging.getLogger(__name__)

Object = dict[str, Any]
IndexFunc = Callable[[Object], list[str]]
LabelSelector = Mapping[str, str] | Callable[[Mapping[str, str]], bool]

NAMESPACE_INDEX = "namespace"


def meta_key(obj: Mapping[str, Any]) -> str:
    """The cache key of an object: "namespace/name", or "name" when cluster-scoped."""
    meta = obj.get("metadata") or {}
    namespace, name = meta.get("namespace"), meta.get("name", "")
    return f"{namespace}/{name}" if namespace else name


def split_key(key: str) -> tuple[str | None, str]:
    """Invert `meta_key`: (namespace or None, name)."""
    namespace, sep, name = key.partition("/")
    return (namespace, name) if sep else (None, key)


def namespace_index(obj: Object) -> list[str]:
    """Index function of the built-in "namespace" index."""
    namespace = (obj.get("metadata") or {}).get("namespace")
    return [namespace] if namespace else []


def label_index(label: str) -> IndexFunc:
    """An index function over one label's value, e.g. `{"app": label_index("app")}`."""
    def index(obj: Object) -> list[str]:
        value = ((obj.get("metadata") or {}).get("labels") or {}).get(label)
        return [value] if value is not None else []
    return index


def labels_match(labels: Mapping[str, str], selector: LabelSelector) -> bool:
    """Whether labels satisfy an equality map (every pair present) or a predicate."""
    if callable(selector):
        return bool(selector(labels))
    return all(labels.get(k) == v for k, v in selector.items())


class Indexer:
    """A keyed, indexed store of objects; written only by its informer, read by everyone.

    Read methods return the cached dicts themselves: never mutate them.
    """

    def __init__(self, indexers: Mapping[str, IndexFunc] | None = None) -> None:
        self._items: dict[str, Object] = {}
        self._indexers: dict[str, IndexFunc] = {NAMESPACE_INDEX: namespace_index, **(indexers or {})}
        self._indices: dict[str, dict[str, set[str]]] = {name: {} for name in self._indexers}

    # -- reads ----------------------------------------------------------------------------------

    def get(self, key: str) -> Object | None:
        """The object under "ns/name" (or "name"), or None."""
        return self._items.get(key)

    def list(self) -> list[Object]:
        """Every cached object (a new list of the shared dicts)."""
        return list(self._items.values())

    def keys(self) -> list[str]:
        """Every cached key."""
        return list(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def index_keys(self, index_name: str, value: str) -> list[str]:
        """The keys of the objects whose index function returned `value`."""
        if index_name not in self._indices:
            raise KeyError(f"no index named {index_name!r}")
        return sorted(self._indices[index_name].get(value, ()))

    def by_index(self, index_name: str, value: str) -> list[Object]:
        """The objects whose index function returned `value` (e.g. by_index("namespace", "default"))."""
        return [self._items[k] for k in self.index_keys(index_name, value)]

    def list_by_labels(self, namespace: str | None, selector: LabelSelector) -> list[Object]:
        """Objects in `namespace` (all when None) whose labels match the selector.

        `selector` is an equality map ({"app": "web"}) or a predicate over the
        labels dict, so callers can pass a compiled label selector.
        """
        candidates = self.list() if namespace is None else self.by_index(NAMESPACE_INDEX, namespace)
        return [o for o in candidates
                if labels_match((o.get("metadata") or {}).get("labels") or {}, selector)]

    def add_indexer(self, name: str, func: IndexFunc) -> None:
        """Add an index (also after objects arrived: it is built from the current contents)."""
        self._indexers[name] = func
        self._indices[name] = {}
        for key, obj in self._items.items():
            self._index_one(name, func, key, obj)

    # -- writes (the informer's) ----------------------------------------------------------------

    def upsert(self, obj: Object) -> Object | None:
        """Store an object; returns the one it replaced, if any."""
        key = meta_key(obj)
        old = self._items.get(key)
        if old is not None:
            self._unindex(key, old)
        self._items[key] = obj
        for name, func in self._indexers.items():
            self._index_one(name, func, key, obj)
        return old

    def remove(self, key: str) -> Object | None:
        """Drop an object; returns it, or None if it was not cached."""
        old = self._items.pop(key, None)
        if old is not None:
            self._unindex(key, old)
        return old

    def replace(self, objs: Iterable[Object]) -> tuple[list[Object], list[tuple[Object, Object]], list[Object]]:
        """Make the cache hold exactly `objs` (a relist); returns (added, updated (old, new), deleted)."""
        added: list[Object] = []
        updated: list[tuple[Object, Object]] = []
        seen: set[str] = set()
        for obj in objs:
            seen.add(meta_key(obj))
            old = self.upsert(obj)
            if old is None:
                added.append(obj)
            else:
                updated.append((old, obj))
        deleted = [o for k in [k for k in self._items if k not in seen] if (o := self.remove(k)) is not None]
        return added, updated, deleted

    def _index_one(self, name: str, func: IndexFunc, key: str, obj: Object) -> None:
        try:
            values = func(obj)
        except Exception:  # a buggy index function must not take the informer down
            log.exception("index function %r failed", name, extra={"key": key})
            return
        index = self._indices[name]
        for value in values:
            index.setdefault(value, set()).add(key)

    def _unindex(self, key: str, obj: Object) -> None:
        for name, func in self._indexers.items():
            try:
                values = func(obj)
            except Exception:
                values = [v for v, keys in self._indices[name].items() if key in keys]
            index = self._indices[name]
            for value in values:
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]
