"""A StatefulSet pod's stable identity: its ordinal, name, hostname and claims.

What makes a StatefulSet different from a ReplicaSet is that pod N is always
`<set>-N`, always has hostname `<set>-N` under the set's governing Service,
and always mounts the same PersistentVolumeClaims `<template>-<set>-N` — so a
recreated pod picks up the data its predecessor left (`stateful_set_utils.go`).
"""

from __future__ import annotations

import copy
import re
from typing import Any

from kubeling.controllers.base import owner_reference
from kubeling.controllers.history import CONTROLLER_REVISION_HASH_LABEL

Obj = dict[str, Any]

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
_ORDINAL = re.compile(r"^(.*)-([0-9]+)$")


def parent_name_and_ordinal(pod: Obj) -> tuple[str, int]:
    """("web", 2) for pod "web-2"; ("", -1) when the name carries no ordinal."""
    match = _ORDINAL.match((pod.get("metadata") or {}).get("name", ""))
    if not match:
        return "", -1
    return match.group(1), int(match.group(2))


def ordinal_of(pod: Obj) -> int:
    return parent_name_and_ordinal(pod)[1]


def is_member(sts: Obj, pod: Obj) -> bool:
    return parent_name_and_ordinal(pod)[0] == sts["metadata"]["name"]


def start_ordinal(sts: Obj) -> int:
    return int(((sts.get("spec") or {}).get("ordinals") or {}).get("start") or 0)


def pod_name(sts: Obj, ordinal: int) -> str:
    return f"{sts['metadata']['name']}-{ordinal}"


def claim_name(template: Obj, sts: Obj, ordinal: int) -> str:
    return f"{template['metadata']['name']}-{pod_name(sts, ordinal)}"


def claim_templates(sts: Obj) -> list[Obj]:
    return [t for t in (sts.get("spec") or {}).get("volumeClaimTemplates") or [] if (t.get("metadata") or {}).get("name")]


def claims_for(sts: Obj, ordinal: int) -> dict[str, Obj]:
    """The PVCs pod `ordinal` needs, by volume name (`getPersistentVolumeClaims`)."""
    out: dict[str, Obj] = {}
    selector_labels = ((sts["spec"].get("selector") or {}).get("matchLabels") or {})
    for template in claim_templates(sts):
        claim = copy.deepcopy(template)
        meta = claim.setdefault("metadata", {})
        meta["name"] = claim_name(template, sts, ordinal)
        meta["namespace"] = sts["metadata"]["namespace"]
        meta["labels"] = {**(meta.get("labels") or {}), **selector_labels}
        for key in ("uid", "resourceVersion", "creationTimestamp"):
            meta.pop(key, None)
        claim["apiVersion"], claim["kind"] = "v1", "PersistentVolumeClaim"
        claim.pop("status", None)
        out[template["metadata"]["name"]] = claim
    return out


def new_pod(sts: Obj, template: Obj, ordinal: int, revision_name: str) -> Obj:
    """Pod `ordinal` of the set, made from `template` (a revision's) and labelled with that revision."""
    name = pod_name(sts, ordinal)
    tmeta = template.get("metadata") or {}
    labels = {**(tmeta.get("labels") or {}), POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ordinal),
              CONTROLLER_REVISION_HASH_LABEL: revision_name}
    spec = copy.deepcopy(template.get("spec") or {})
    spec["hostname"] = name
    if sts["spec"].get("serviceName"):
        spec["subdomain"] = sts["spec"]["serviceName"]
    claims = claims_for(sts, ordinal)
    volumes = [v for v in spec.get("volumes") or [] if v.get("name") not in claims]
    for volume_name, claim in claims.items():
        volumes.append({"name": volume_name, "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]}})
    if volumes:
        spec["volumes"] = volumes
    meta: Obj = {"name": name, "namespace": sts["metadata"]["namespace"], "labels": labels,
                 "ownerReferences": [owner_reference(sts)]}
    if tmeta.get("annotations"):
        meta["annotations"] = dict(tmeta["annotations"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def pod_revision(pod: Obj) -> str:
    return ((pod.get("metadata") or {}).get("labels") or {}).get(CONTROLLER_REVISION_HASH_LABEL, "")
