"""Subresources with their own shapes: `scale`, `pods/binding`, `pods/eviction`.

`scale` is the autoscaling/v1 Scale view of anything with spec.replicas (what
`kubectl scale` and the HPA use); a write to it changes only the parent's
spec.replicas. `binding` is how the scheduler assigns a pod to a node, once.
`eviction` is a delete that policy (PodDisruptionBudgets) may refuse.
"""

from __future__ import annotations

from typing import Any

from kubeling.api import errors
from kubeling.api.labels import format_label_selector
from kubeling.api.registry import ResourceInfo
from kubeling.apiserver import objects
from kubeling.apiserver.deletion import DeleteOptions, Deleter
from kubeling.apiserver.rest import ResourceStore, WriteOptions

Obj = dict[str, Any]


def to_scale(obj: Obj) -> Obj:
    """The autoscaling/v1 Scale of a workload."""
    meta = obj["metadata"]
    status = obj.get("status") or {}
    selector = (obj.get("spec") or {}).get("selector")
    scale_status: Obj = {"replicas": int(status.get("replicas") or 0)}
    if isinstance(selector, dict):
        scale_status["selector"] = format_label_selector(selector)
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                     if k in meta},
        "spec": {"replicas": int((obj.get("spec") or {}).get("replicas") or 0)},
        "status": scale_status,
    }


def validate_scale(info: ResourceInfo, name: str, scale: Obj) -> int:
    replicas = (scale.get("spec") or {}).get("replicas", 0)
    if not isinstance(replicas, int) or isinstance(replicas, bool):
        raise errors.BadRequest(f"Scale in version \"v1\" cannot be handled as a Scale: "
                                f"spec.replicas: expected an integer, got {replicas!r}")
    if replicas < 0:
        raise errors.Invalid("Scale", name, [errors.invalid("spec.replicas", replicas,
                                                            "must be greater than or equal to 0")],
                             "autoscaling")
    return replicas


async def update_scale(rest: ResourceStore, info: ResourceInfo, namespace: str, name: str,
                       scale_of: Any, opts: WriteOptions) -> Obj:
    """Apply `scale_of(current_scale) -> new_scale` and write spec.replicas to the parent."""
    async def mutate(current: Obj | None) -> Obj:
        if current is None:
            raise errors.NotFound(info.resource, name, info.group)
        new_scale = scale_of(to_scale(current))
        wanted_rv = str((new_scale.get("metadata") or {}).get("resourceVersion") or "")
        if wanted_rv and wanted_rv != current["metadata"]["resourceVersion"]:
            raise errors.Conflict(info.resource, name, info.group)
        current.setdefault("spec", {})["replicas"] = validate_scale(info, name, new_scale)
        return current
    obj, _ = await rest.guaranteed_update(info, namespace, name, mutate, opts)
    return to_scale(obj)


async def bind_pod(rest: ResourceStore, info: ResourceInfo, namespace: str, name: str, binding: Obj,
                   opts: WriteOptions) -> Obj:
    """POST pods/NAME/binding: set spec.nodeName once and mark the pod scheduled."""
    target = binding.get("target") or {}
    node = target.get("name")
    if not node:
        raise errors.Invalid("Binding", name, [errors.required("target.name")])
    bname = (binding.get("metadata") or {}).get("name") or name
    if bname != name:
        raise errors.BadRequest(f"the name of the object ({bname}) does not match the name on the URL ({name})")

    async def mutate(current: Obj | None) -> Obj:
        if current is None:
            raise errors.NotFound("pods", name)
        meta = current["metadata"]
        if meta.get("deletionTimestamp"):
            raise errors.Conflict("pods", name, detail="pod is being deleted, cannot be assigned to a host")
        spec = current.setdefault("spec", {})
        if spec.get("nodeName"):
            raise errors.Conflict("pods", name,
                                  detail=f"pod {name} is already assigned to node \"{spec['nodeName']}\"")
        spec["nodeName"] = node
        annotations = (binding.get("metadata") or {}).get("annotations")
        if annotations:
            meta.setdefault("annotations", {}).update(annotations)
        status = current.setdefault("status", {})
        conds = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
        conds.append({"type": "PodScheduled", "status": "True", "lastProbeTime": None,
                      "lastTransitionTime": objects.now_rfc3339()})
        status["conditions"] = conds
        return current

    # The binding writes status too, so it is applied as a status-and-spec write.
    await rest.guaranteed_update(info, namespace, name, mutate, opts, subresource="binding")
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}


async def evict_pod(deleter: Deleter, info: ResourceInfo, namespace: str, name: str, eviction: Obj,
                    dry_run: bool) -> Obj:
    """POST pods/NAME/eviction: a policy-checked delete."""
    opts = DeleteOptions.from_body(eviction.get("deleteOptions"), {}, dry_run)
    await deleter.delete(info, namespace, name, opts)
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
