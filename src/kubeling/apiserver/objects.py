"""Object metadata as the API server owns it: names, uids, timestamps,
resourceVersion and generation.

The store keeps each object without `metadata.resourceVersion`; the revision
of the write is the resourceVersion and is put back on every read (as
kube-apiserver's etcd3 store does), so a value never disagrees with its key.
"""

from __future__ import annotations

import copy
import datetime as dt
import secrets
import uuid
from typing import Any

import orjson

from kubeling.api.registry import ResourceInfo
from kubeling.storage.interface import KeyValue

# kube's utilrand alphabet: no vowels and no look-alike digits, so generated names spell nothing.
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

# Metadata fields the server sets; a client's values for these are ignored on write.
SERVER_OWNED_META = ("uid", "creationTimestamp", "generation", "deletionTimestamp",
                     "deletionGracePeriodSeconds", "selfLink")


def now_rfc3339() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_uid() -> str:
    return str(uuid.uuid4())


def generate_name(prefix: str) -> str:
    # kube trims the prefix so the result fits in 63 characters.
    prefix = prefix[: 63 - 5]
    return prefix + "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))


def encode_for_store(obj: dict[str, Any]) -> bytes:
    meta = obj.get("metadata") or {}
    if "resourceVersion" in meta:
        obj = {**obj, "metadata": {k: v for k, v in meta.items() if k != "resourceVersion"}}
    return orjson.dumps(obj)


def decode_from_store(kv: KeyValue) -> dict[str, Any]:
    obj = orjson.loads(kv.value)
    obj.setdefault("metadata", {})["resourceVersion"] = str(kv.mod_revision)
    return obj


def with_revision(value: bytes, revision: int) -> dict[str, Any]:
    obj = orjson.loads(value)
    obj.setdefault("metadata", {})["resourceVersion"] = str(revision)
    return obj


def deepcopy(obj: dict[str, Any]) -> dict[str, Any]:
    # orjson round trip is several times faster than copy.deepcopy for JSON data.
    try:
        return orjson.loads(orjson.dumps(obj))
    except TypeError:
        return copy.deepcopy(obj)


def meta(obj: dict[str, Any]) -> dict[str, Any]:
    m = obj.get("metadata")
    if not isinstance(m, dict):
        m = {}
        obj["metadata"] = m
    return m


def tracks_generation(info: ResourceInfo) -> bool:
    """Kinds whose metadata.generation counts spec changes: those with a status
    subresource (the controllers report observedGeneration) and all custom resources."""
    return info.has_status() or info.crd is not None


def spec_changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Anything but metadata and status differs: that is a change to the desired state."""
    skip = ("metadata", "status", "kind", "apiVersion")
    keys = (set(old) | set(new)) - set(skip)
    return any(old.get(k) != new.get(k) for k in keys)


def semantically_equal(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Equal once resourceVersion and managedFields timestamps are ignored (a no-op write)."""
    def strip(o: dict[str, Any]) -> dict[str, Any]:
        m = dict(o.get("metadata") or {})
        m.pop("resourceVersion", None)
        mf = m.pop("managedFields", None)
        if mf:
            m["managedFields"] = [{k: v for k, v in e.items() if k != "time"} for e in mf]
        return {**o, "metadata": m}
    return strip(old) == strip(new)


def object_name(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")
