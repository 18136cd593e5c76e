"""ControllerRevision helpers shared by the StatefulSet and DaemonSet controllers.

Both controllers snapshot their pod template into an immutable
ControllerRevision (`pkg/controller/history`): the revision's name and its
hash label tell every pod which template it was made from, so a rollout can
count "updated" pods and `kubectl rollout undo` can restore an old template.
The hash is FNV-32a over the revision data (plus the collision count, bumped
when two different templates hash alike), encoded with Kubernetes' safe
alphabet so it is a valid label value and never spells a word.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import orjson

from kubeling.api.errors import StatusError
from kubeling.api.labels import selector_from_label_selector
from kubeling.client import Informer, KubeClient
from kubeling.client.resources import CONTROLLERREVISIONS
from kubeling.controllers.base import controller_ref, owner_reference

Obj = dict[str, Any]
log = logging.getLogger(__name__)

CONTROLLER_REVISION_HASH_LABEL = "controller-revision-hash"
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def fnv32a(data: bytes) -> int:
    """FNV-1a, 32 bit (Go's hash/fnv New32a), the hash Kubernetes uses for revisions."""
    h = 0x811C9DC5
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def safe_encode(text: str) -> str:
    """`rand.SafeEncodeString`: map each byte onto an alphabet without vowels or confusable digits."""
    return "".join(_SAFE_ALPHABET[b % len(_SAFE_ALPHABET)] for b in text.encode())


def template_patch(template: Obj) -> Obj:
    """The revision data: a strategic-merge patch that *replaces* the template (as Kubernetes stores it)."""
    return {"spec": {"template": {**template, "$patch": "replace"}}}


def hash_revision(data: Obj, collision_count: int | None = None) -> str:
    raw = orjson.dumps(data, option=orjson.OPT_SORT_KEYS)
    if collision_count:
        raw += str(collision_count).encode()
    return safe_encode(str(fnv32a(raw)))


def revision_template(revision: Obj) -> Obj:
    """The pod template stored in a revision, without the `$patch` directive."""
    template = dict(((revision.get("data") or {}).get("spec") or {}).get("template") or {})
    template.pop("$patch", None)
    return template


def revision_number(revision: Obj) -> int:
    return int(revision.get("revision") or 0)


def owned_revisions(informer: Informer, parent: Obj) -> list[Obj]:
    """Revisions owned by `parent` (by controller ref uid and selector), oldest first."""
    meta = parent["metadata"]
    try:
        selector = selector_from_label_selector((parent.get("spec") or {}).get("selector"))
    except StatusError:
        return []
    out = []
    for rev in informer.indexer.by_index("namespace", meta["namespace"]):
        ref = controller_ref(rev)
        if ref is None or ref.get("uid") != meta["uid"]:
            continue
        if selector.matches((rev.get("metadata") or {}).get("labels") or {}):
            out.append(rev)
    out.sort(key=lambda r: (revision_number(r), r["metadata"].get("creationTimestamp") or ""))
    return out


def new_revision(parent: Obj, *, data: Obj, number: int, collision_count: int | None) -> Obj:
    """An unsaved ControllerRevision of `parent`'s template, named `<parent>-<hash>`."""
    template = ((parent.get("spec") or {}).get("template") or {})
    labels = dict((template.get("metadata") or {}).get("labels") or {})
    rev_hash = hash_revision(data, collision_count)
    labels[CONTROLLER_REVISION_HASH_LABEL] = rev_hash
    meta = parent["metadata"]
    return {
        "apiVersion": "apps/v1", "kind": "ControllerRevision",
        "metadata": {"name": f"{meta['name']}-{rev_hash}", "namespace": meta["namespace"], "labels": labels,
                     "annotations": dict(meta.get("annotations") or {}),
                     "ownerReferences": [owner_reference(parent)]},
        "data": data, "revision": number,
    }


async def ensure_revision(client: KubeClient, parent: Obj, revisions: list[Obj], *,
                          collision_count: int) -> tuple[Obj, int]:
    """Find or create the revision for `parent`'s current template; returns (revision, collision count).

    An existing revision with equal data is reused, and renumbered to be the
    newest if it was an older one (a rollback makes the old revision current
    again, as `history.Interface.UpdateControllerRevision` does). A name taken
    by a revision with *different* data is a hash collision: bump the count
    and try again, like `controllerhistory.CreateControllerRevision`.
    """
    data = template_patch((parent.get("spec") or {}).get("template") or {})
    latest = revision_number(revisions[-1]) if revisions else 0
    equal = [r for r in revisions if r.get("data") == data]
    if equal:
        rev = equal[-1]
        if revision_number(rev) < latest:
            updated = {**rev, "revision": latest + 1}
            rev = await client.update(CONTROLLERREVISIONS, updated)
        return rev, collision_count
    while True:
        candidate = new_revision(parent, data=data, number=latest + 1, collision_count=collision_count)
        try:
            return await client.create(CONTROLLERREVISIONS, candidate), collision_count
        except StatusError as err:
            if err.code != 409:
                raise
            existing = await client.get(CONTROLLERREVISIONS, candidate["metadata"]["name"],
                                        namespace=parent["metadata"]["namespace"])
            ref = controller_ref(existing)
            if existing.get("data") == data and ref is not None and ref.get("uid") == parent["metadata"]["uid"]:
                return existing, collision_count
            collision_count += 1


async def truncate_history(client: KubeClient, parent: Obj, revisions: list[Obj], *,
                           live: Iterable[str]) -> None:
    """Delete the oldest revisions no pod uses beyond `spec.revisionHistoryLimit`."""
    limit = int((parent.get("spec") or {}).get("revisionHistoryLimit", 10))
    keep = set(live)
    history = [r for r in revisions if r["metadata"]["name"] not in keep]
    excess = len(history) - limit
    for rev in history[:max(excess, 0)]:
        try:
            await client.delete(CONTROLLERREVISIONS, rev["metadata"]["name"], namespace=rev["metadata"]["namespace"])
        except StatusError as err:
            if err.code != 404:
                raise
