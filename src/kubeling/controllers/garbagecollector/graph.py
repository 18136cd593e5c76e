"""The garbage collector's dependency graph: owner → dependents, by uid.

Owner references point *up* (a Pod names its ReplicaSet); cascading deletion
needs the other direction (which objects does this ReplicaSet own?). Asking
the API server each time would mean listing every resource, so the collector
keeps this graph, fed by one informer per resource (Kubernetes'
`GraphBuilder`/`uidToNode`). An owner that is referenced but not (yet) seen is
a *virtual* node: the collector checks with the API server whether it really
exists, because a dependent may simply have been observed before its owner.

The graph holds only identities and owner references (small copies), never
the cached objects themselves, so nothing here can mutate an informer's cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubeling.client import Resource

Obj = dict[str, Any]


@dataclass
class Node:
    """One object in the graph (or a virtual placeholder for an owner not observed)."""

    uid: str
    api_version: str
    kind: str
    name: str
    namespace: str | None
    resource: Resource | None = None
    owners: list[Obj] = field(default_factory=list)
    dependents: set[str] = field(default_factory=set)
    virtual: bool = False

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    def ref_to(self, owner_uid: str) -> Obj | None:
        """This node's ownerReference naming `owner_uid`, if any."""
        return next((r for r in self.owners if r.get("uid") == owner_uid), None)

    def describe(self) -> str:
        return f"{self.kind} {self.key}"


@dataclass
class Change:
    """What an upsert or removal means for the work queue."""

    new_virtual: list[str] = field(default_factory=list)
    removed_owners: list[str] = field(default_factory=list)
    dependents: list[str] = field(default_factory=list)
    owners: list[str] = field(default_factory=list)


class Graph:
    """uid → Node, kept consistent in both directions (owners and dependents)."""

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}

    def get(self, uid: str) -> Node | None:
        return self.nodes.get(uid)

    def __len__(self) -> int:
        return len(self.nodes)

    def upsert(self, obj: Obj, res: Resource) -> Change:
        """Record an observed object; returns the owners that became virtual nodes and those it dropped."""
        meta = obj.get("metadata") or {}
        uid = meta.get("uid") or ""
        change = Change()
        if not uid:
            return change
        owners = [dict(r) for r in meta.get("ownerReferences") or [] if r.get("uid")]
        node = self.nodes.get(uid)
        if node is None:
            node = Node(uid, obj.get("apiVersion") or res.api_version, obj.get("kind") or res.kind,
                        meta.get("name") or "", meta.get("namespace") or None, res)
            self.nodes[uid] = node
        old_uids = {r["uid"] for r in node.owners}
        node.virtual, node.resource, node.owners = False, res, owners
        node.namespace = meta.get("namespace") or None
        new_uids = {r["uid"] for r in owners}
        for gone in old_uids - new_uids:
            change.removed_owners.append(gone)
            self._unlink(gone, uid)
        for ref in owners:
            owner = self.nodes.get(ref["uid"])
            if owner is None:
                # Namespaced dependents can only be owned within their namespace (or cluster-wide);
                # the real scope is settled when the owner's resource is resolved.
                owner = Node(ref["uid"], ref.get("apiVersion") or "", ref.get("kind") or "",
                             ref.get("name") or "", node.namespace, virtual=True)
                self.nodes[owner.uid] = owner
                change.new_virtual.append(owner.uid)
            owner.dependents.add(uid)
        return change

    def remove(self, uid: str) -> Change:
        """Forget an object that was deleted; its dependents must now be checked for dangling references."""
        change = Change()
        node = self.nodes.get(uid)
        if node is None:
            return change
        change.dependents = sorted(node.dependents)
        change.owners = [r["uid"] for r in node.owners]
        for owner_uid in change.owners:
            self._unlink(owner_uid, uid)
        if node.dependents:
            # Keep a placeholder so the dependents stay linked until they are collected or re-owned.
            node.virtual, node.owners, node.resource = True, [], None
        else:
            del self.nodes[uid]
        return change

    def remove_resource(self, res: Resource) -> list[str]:
        """Forget every object of a resource that is no longer served; returns their uids."""
        uids = [uid for uid, n in self.nodes.items() if n.resource == res and not n.virtual]
        for uid in uids:
            self.remove(uid)
        return uids

    def _unlink(self, owner_uid: str, dependent_uid: str) -> None:
        owner = self.nodes.get(owner_uid)
        if owner is None:
            return
        owner.dependents.discard(dependent_uid)
        if owner.virtual and not owner.dependents:
            del self.nodes[owner_uid]
