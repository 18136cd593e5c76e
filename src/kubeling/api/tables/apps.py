"""Tables for apps/v1: deployments, replicasets, statefulsets, daemonsets, controllerrevisions.

Mirrors printers.go. Note the two selector renderings it uses: deployments print
`LabelSelectorAsSelector(...).String()` (empty string when it selects everything,
"<invalid>" on error) while the others go through `metav1.FormatLabelSelector`
("<none>" / "<error>").
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kubeling.api.errors import StatusError
from kubeling.api.labels import format_label_selector, format_label_selector_or_none
from kubeling.api.tables.descriptions import doc
from kubeling.api.tables.format import (
    NONE,
    Printer,
    age,
    age_column,
    column,
    containers_columns,
    format_labels,
    get,
    layout_containers,
    meta,
    name,
    name_column,
    template_containers,
)


def _replicas(obj: dict[str, Any]) -> int:
    # The API server defaults spec.replicas to 1; an explicit 0 stays 0.
    value = get(obj, "spec", "replicas")
    return 1 if value is None else int(value)


def _status_int(obj: dict[str, Any], field: str) -> int:
    return int(get(obj, "status", field, default=0) or 0)


def _deployment_row(obj: dict[str, Any], now: datetime) -> list[Any]:
    try:
        selector = format_label_selector(get(obj, "spec", "selector"))
    except StatusError:
        selector = "<invalid>"
    names, images = layout_containers(template_containers(obj, "spec"))
    return [
        name(obj), f"{_status_int(obj, 'readyReplicas')}/{_replicas(obj)}", _status_int(obj, "updatedReplicas"),
        _status_int(obj, "availableReplicas"), age(obj, now), names, images, selector,
    ]


def _replicaset_row(obj: dict[str, Any], now: datetime) -> list[Any]:
    names, images = layout_containers(template_containers(obj, "spec"))
    return [
        name(obj), _replicas(obj), _status_int(obj, "replicas"), _status_int(obj, "readyReplicas"), age(obj, now),
        names, images, format_label_selector_or_none(get(obj, "spec", "selector")),
    ]


def _statefulset_row(obj: dict[str, Any], now: datetime) -> list[Any]:
    names, images = layout_containers(template_containers(obj, "spec"))
    return [name(obj), f"{_status_int(obj, 'readyReplicas')}/{_replicas(obj)}", age(obj, now), names, images]


def _daemonset_row(obj: dict[str, Any], now: datetime) -> list[Any]:
    names, images = layout_containers(template_containers(obj, "spec"))
    return [
        name(obj), _status_int(obj, "desiredNumberScheduled"), _status_int(obj, "currentNumberScheduled"),
        _status_int(obj, "numberReady"), _status_int(obj, "updatedNumberScheduled"),
        _status_int(obj, "numberAvailable"), format_labels(get(obj, "spec", "template", "spec", "nodeSelector")),
        age(obj, now), names, images, format_label_selector_or_none(get(obj, "spec", "selector")),
    ]


def controller_name(obj: dict[str, Any]) -> str:
    """"<kind>.<group>/<name>" of the controlling owner, lower-cased like `formatResourceName`."""
    for ref in meta(obj).get("ownerReferences") or []:
        if ref.get("controller"):
            api_version = ref.get("apiVersion") or ""
            group = api_version.split("/")[0] if "/" in api_version else ""
            kind = ref.get("kind") or ""
            group_kind = f"{kind}.{group}" if group else kind
            if not group_kind:
                return ref.get("name") or ""
            return f"{group_kind.lower()}/{ref.get('name') or ''}"
    return NONE


def _controllerrevision_row(obj: dict[str, Any], now: datetime) -> list[Any]:
    return [name(obj), controller_name(obj), int(obj.get("revision") or 0), age(obj, now)]


N, A, C = name_column, age_column, column
PRINTERS = {
    "deployments.apps": Printer((
        N(), C("Ready", "string", "Number of the pod with ready state"),
        C("Up-to-date", "string", doc("DeploymentStatus.updatedReplicas")),
        C("Available", "string", doc("DeploymentStatus.availableReplicas")), A(), *containers_columns(),
        C("Selector", "string", doc("DeploymentSpec.selector"), priority=1),
    ), _deployment_row),
    "replicasets.apps": Printer((
        N(), C("Desired", "integer", doc("ReplicaSetSpec.replicas")),
        C("Current", "integer", doc("ReplicaSetStatus.replicas")),
        C("Ready", "integer", doc("ReplicaSetStatus.readyReplicas")), A(), *containers_columns(),
        C("Selector", "string", doc("ReplicaSetSpec.selector"), priority=1),
    ), _replicaset_row),
    "statefulsets.apps": Printer((
        N(), C("Ready", "string", "Number of the pod with ready state"), A(), *containers_columns(),
    ), _statefulset_row),
    "daemonsets.apps": Printer((
        N(), C("Desired", "integer", doc("DaemonSetStatus.desiredNumberScheduled")),
        C("Current", "integer", doc("DaemonSetStatus.currentNumberScheduled")),
        C("Ready", "integer", doc("DaemonSetStatus.numberReady")),
        C("Up-to-date", "integer", doc("DaemonSetStatus.updatedNumberScheduled")),
        C("Available", "integer", doc("DaemonSetStatus.numberAvailable")),
        C("Node Selector", "string", doc("PodSpec.nodeSelector")), A(), *containers_columns(),
        C("Selector", "string", doc("DaemonSetSpec.selector"), priority=1),
    ), _daemonset_row),
    "controllerrevisions.apps": Printer((
        N(), C("Controller", "string", "Controller of the object"),
        C("Revision", "string", doc("ControllerRevision.revision")), A(),
    ), _controllerrevision_row),
}
