"""Which nodes a DaemonSet's pods belong on, and the pod pinned to one node.

Kubernetes (1.12+) does not bind daemon pods itself: it creates each pod with
a required node affinity on `metadata.name` and lets the default scheduler
bind it, so resources, ports and preemption are honoured like for any pod.
The controller still decides *which* nodes should run a daemon pod
(`NodeShouldRunDaemonPod`): the template's nodeSelector and required node
affinity must match, and every NoSchedule/NoExecute taint must be tolerated —
counting the tolerations every daemon pod gets automatically, so daemons keep
running on not-ready, unreachable or pressured nodes. These rules are a small
copy of the scheduler's (components meet at the API, never import each other).
"""

from __future__ import annotations

import copy
from typing import Any

from kubeling.api.taints import tolerates

Obj = dict[str, Any]

# `util.AddOrUpdateDaemonPodTolerations`: (key, effect) every daemon pod tolerates.
AUTO_TOLERATIONS: tuple[tuple[str, str], ...] = (
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
)
NETWORK_UNAVAILABLE = ("node.kubernetes.io/network-unavailable", "NoSchedule")


def daemon_tolerations(pod_spec: Obj) -> list[Obj]:
    """The template's tolerations plus the automatic ones not already present."""
    tolerations = [dict(t) for t in pod_spec.get("tolerations") or []]
    wanted = list(AUTO_TOLERATIONS) + ([NETWORK_UNAVAILABLE] if pod_spec.get("hostNetwork") else [])
    for key, effect in wanted:
        if not any(t.get("key") == key and t.get("effect") == effect for t in tolerations):
            tolerations.append({"key": key, "operator": "Exists", "effect": effect})
    return tolerations


def _requirement_matches(expr: Obj, values_of: dict[str, str]) -> bool:
    key, op, values = expr.get("key") or "", expr.get("operator") or "", list(expr.get("values") or [])
    if op == "In":
        return key in values_of and values_of[key] in values
    if op == "NotIn":
        return key not in values_of or values_of[key] not in values
    if op == "Exists":
        return key in values_of
    if op == "DoesNotExist":
        return key not in values_of
    if op in ("Gt", "Lt") and len(values) == 1 and key in values_of:
        try:
            have, want = int(values_of[key]), int(values[0])
        except ValueError:
            return False
        return have > want if op == "Gt" else have < want
    return False


def _term_matches(term: Obj, node: Obj) -> bool:
    exprs, fields = term.get("matchExpressions") or [], term.get("matchFields") or []
    if not exprs and not fields:
        return False  # an empty term matches nothing
    labels = (node.get("metadata") or {}).get("labels") or {}
    node_fields = {"metadata.name": node["metadata"]["name"]}
    return (all(_requirement_matches(e, labels) for e in exprs)
            and all(_requirement_matches(e, node_fields) for e in fields))


def fits_node(pod_spec: Obj, node: Obj) -> bool:
    """nodeSelector AND required node affinity (terms ORed)."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    if any(labels.get(k) != v for k, v in (pod_spec.get("nodeSelector") or {}).items()):
        return False
    required = (((pod_spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if required is None:
        return True
    return any(_term_matches(t, node) for t in required.get("nodeSelectorTerms") or [])


def should_run(ds: Obj, node: Obj) -> tuple[bool, bool]:
    """(should run a new daemon pod here, should keep an existing one) — `NodeShouldRunDaemonPod`.

    An untolerated NoSchedule taint stops new pods but keeps running ones; an
    untolerated NoExecute taint evicts them too.
    """
    spec = ((ds.get("spec") or {}).get("template") or {}).get("spec") or {}
    if not fits_node(spec, node):
        return False, False
    tolerations = daemon_tolerations(spec)
    untolerated = [t for t in (node.get("spec") or {}).get("taints") or []
                   if t.get("effect") in ("NoSchedule", "NoExecute")
                   and not any(tolerates(tol, t) for tol in tolerations)]
    if untolerated:
        return False, not any(t.get("effect") == "NoExecute" for t in untolerated)
    return True, True


def pin_to_node(pod_spec: Obj, node_name: str) -> Obj:
    """A copy of the pod spec with required node affinity replaced by `metadata.name In [node]`.

    (`util.ReplaceDaemonSetPodNodeNameNodeAffinity`: the node's labels were already
    checked here, so the single matchFields term is all the scheduler needs.)
    """
    spec = copy.deepcopy(pod_spec)
    affinity = spec.setdefault("affinity", {})
    node_affinity = affinity.setdefault("nodeAffinity", {})
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [{"matchFields": [
        {"key": "metadata.name", "operator": "In", "values": [node_name]}]}]}
    spec["tolerations"] = daemon_tolerations(spec)
    return spec


def target_node(pod: Obj) -> str | None:
    """The node a daemon pod is (or will be) on: spec.nodeName, else its metadata.name affinity (`GetTargetNodeName`)."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    required = ((((spec.get("affinity") or {}).get("nodeAffinity") or {})
                 .get("requiredDuringSchedulingIgnoredDuringExecution")) or {})
    for term in required.get("nodeSelectorTerms") or []:
        for field in term.get("matchFields") or []:
            if field.get("key") == "metadata.name" and field.get("operator") == "In" and len(field.get("values") or []) == 1:
                return str(field["values"][0])
    return None
