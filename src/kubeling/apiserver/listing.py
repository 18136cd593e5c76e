"""LIST with Kubernetes' semantics: label and field selectors, limit/continue
paging that is consistent (every page is read at the revision of the first),
and resourceVersion / resourceVersionMatch.

A continue token is opaque to clients; ours is base64 JSON of the revision of
the first page and the last key returned, like kube-apiserver's. When that
revision has been compacted the token is too old → 410 Expired, as Kubernetes.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import orjson

from kubeling.api import errors
from kubeling.api.fields import check_fields, matches_fields, parse_field_selector
from kubeling.api.labels import Selector, parse_selector
from kubeling.api.registry import ResourceInfo
from kubeling.apiserver import objects
from kubeling.apiserver.rest import ResourceStore
from kubeling.storage.interface import Compacted, FutureRevision

Obj = dict[str, Any]

TOO_OLD_CONTINUE = ("The provided continue parameter is too old to display a consistent list result. "
                    "You can start a new list without the continue parameter, or use the continue token "
                    "in this response to retrieve the remainder of the results. Continuing with the "
                    "provided token results in an inconsistent list - objects that were created, modified, "
                    "or deleted between the time the first chunk was returned and now may show up in the list.")


@dataclass
class ListOptions:
    """metav1.ListOptions as parsed from the query string."""

    label_selector: Selector | None = None
    field_selector: list[tuple[str, str, str]] = field(default_factory=list)
    limit: int = 0
    continue_token: str = ""
    resource_version: str = ""
    resource_version_match: str = ""

    @classmethod
    def from_query(cls, info: ResourceInfo, query: Any) -> ListOptions:
        opts = cls()
        ls = query.get("labelSelector", "")
        if ls:
            opts.label_selector = parse_selector(ls)
        fs = query.get("fieldSelector", "")
        if fs:
            opts.field_selector = parse_field_selector(fs)
            # Unknown fields are refused up front, as Kubernetes does.
            check_fields(info, opts.field_selector)
        limit = query.get("limit", "")
        if limit:
            try:
                opts.limit = max(int(limit), 0)
            except ValueError:
                raise errors.BadRequest(f"invalid limit: {limit!r}") from None
        opts.continue_token = query.get("continue", "")
        opts.resource_version = query.get("resourceVersion", "")
        opts.resource_version_match = query.get("resourceVersionMatch", "")
        if opts.resource_version_match and opts.resource_version_match not in ("Exact", "NotOlderThan"):
            raise errors.BadRequest(f"invalid resourceVersionMatch: {opts.resource_version_match}")
        if opts.resource_version_match and not opts.resource_version:
            raise errors.BadRequest("resourceVersionMatch is forbidden unless resourceVersion is provided")
        if opts.continue_token and opts.resource_version and opts.resource_version != "0":
            raise errors.BadRequest("specifying resource version is not allowed when using continue")
        return opts

    def matches(self, info: ResourceInfo, obj: Obj) -> bool:
        if self.label_selector is not None and not self.label_selector.matches(
                (obj.get("metadata") or {}).get("labels")):
            return False
        return not self.field_selector or matches_fields(info, obj, self.field_selector)


def encode_continue(revision: int, last_key: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"v": "meta.k8s.io/v1", "rv": revision,
                                                  "start": last_key})).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, str]:
    try:
        pad = "=" * (-len(token) % 4)
        data = orjson.loads(base64.urlsafe_b64decode(token + pad))
        return int(data["rv"]), str(data["start"])
    except Exception as exc:  # any malformed token is the client's error
        raise errors.BadRequest(f"continue key is not valid: {exc}") from None


@dataclass
class ListResult:
    """One page of a LIST."""

    items: list[Obj]
    resource_version: str
    continue_token: str = ""
    remaining: int | None = None


async def list_objects(rest: ResourceStore, info: ResourceInfo, namespace: str, opts: ListOptions) -> ListResult:
    """Read one page of matching objects, as of one revision."""
    prefix = info.storage_prefix + (f"{namespace}/" if info.namespaced and namespace else "")
    revision = 0
    start_after = ""
    if opts.continue_token:
        revision, start_after = decode_continue(opts.continue_token)
        if not start_after.startswith(prefix):
            raise errors.BadRequest("continue key is not valid: key does not match the request")
    elif opts.resource_version and opts.resource_version != "0":
        try:
            wanted = int(opts.resource_version)
        except ValueError:
            raise errors.BadRequest(f"invalid resource version: {opts.resource_version}") from None
        current = await rest.store.current_revision()
        if opts.resource_version_match == "Exact":
            revision = wanted
        elif wanted > current:
            raise errors.StatusError(504, "Timeout", f"Too large resource version: {wanted}, current: {current}",
                                     retry_after=1)
    items: list[Obj] = []
    page = opts.limit or 0
    more = False
    last_key = start_after
    try:
        while True:
            # Read in chunks, filtering, until the page is full or the keys run out.
            chunk = max(page - len(items), 0) if page else 0
            if page:
                chunk = max(chunk, 64)
            res = await rest.store.range(prefix, start_after=last_key, limit=chunk, revision=revision)
            revision = res.revision
            full = False
            for i, kv in enumerate(res.kvs):
                last_key = kv.key
                obj = rest.from_storage(info, objects.decode_from_store(kv))
                if opts.matches(info, obj):
                    items.append(obj)
                    if page and len(items) >= page:
                        more = res.more or i < len(res.kvs) - 1
                        full = True
                        break
            if full:
                break
            if not res.more:
                break
    except Compacted:
        if opts.continue_token:
            raise errors.Gone(TOO_OLD_CONTINUE) from None
        raise errors.Gone(f"too old resource version: {revision}") from None
    except FutureRevision as exc:
        raise errors.StatusError(504, "Timeout", f"Too large resource version: {exc.requested}, "
                                                 f"current: {exc.current}", retry_after=1) from None
    token = encode_continue(revision, last_key) if more else ""
    return ListResult(items, str(revision), token)
