"""Object builders shared by the garbage-collector, namespace, node and pod-GC tests."""

from __future__ import annotations

from typing import Any

from kubeling.client import KubeClient, Resource
from kubeling.client.resources import CRDS

Obj = dict[str, Any]
WIDGETS = Resource("example.com", "v1", "widgets", "Widget", True)


def owner_ref(owner: Obj, *, block: bool = True, controller: bool = True) -> Obj:
    meta = owner["metadata"]
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": meta["name"], "uid": meta["uid"],
            "controller": controller, "blockOwnerDeletion": block}


def template(app: str) -> Obj:
    return {"metadata": {"labels": {"app": app}}, "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}


def deployment(name: str, ns: str = "default") -> Obj:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}}, "template": template(name)}}


def replicaset(name: str, owner: Obj | None, ns: str = "default", app: str = "web") -> Obj:
    meta: Obj = {"name": name, "namespace": ns, "labels": {"app": app}}
    if owner is not None:
        meta["ownerReferences"] = [owner_ref(owner)]
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": meta,
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": app}}, "template": template(app)}}


def pod(name: str, owner: Obj | None = None, *, ns: str = "default", node: str | None = None,
        finalizers: list[str] | None = None, **spec: Any) -> Obj:
    meta: Obj = {"name": name, "namespace": ns, "labels": {"app": "web"}}
    if owner is not None:
        meta["ownerReferences"] = [owner_ref(owner)]
    if finalizers:
        meta["finalizers"] = finalizers
    body: Obj = {"containers": [{"name": "c", "image": "nginx:1"}], **spec}
    if node:
        body["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": body}


def configmap(name: str, *owners: Obj, ns: str = "default") -> Obj:
    meta: Obj = {"name": name, "namespace": ns}
    if owners:
        meta["ownerReferences"] = list(owners)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": "v"}}


async def create_widget_crd(client: KubeClient) -> None:
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "widgets.example.com"},
           "spec": {"group": "example.com", "scope": "Namespaced",
                    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                    "versions": [{"name": "v1", "served": True, "storage": True,
                                  "schema": {"openAPIV3Schema": {"type": "object",
                                                                 "x-kubernetes-preserve-unknown-fields": True}}}]}}
    await client.create(CRDS, crd)


def widget(name: str, ns: str = "default") -> Obj:
    return {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": name, "namespace": ns},
            "spec": {"size": 1}}
