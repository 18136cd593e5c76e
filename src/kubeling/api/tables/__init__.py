"""Server-side printing: the `meta.k8s.io/v1` Table kubectl asks for on every `get`.

kubectl sends `Accept: application/json;as=Table;...` and prints the columns and cells it
gets back without interpreting them, so this package *is* the output of `kubectl get`.
It follows kube-apiserver: the column definitions and cells come from
`pkg/printers/internalversion/printers.go` (always generated "wide", kubectl hides
priority-1 columns), custom resources use their CRD's `additionalPrinterColumns`, and
built-ins without a printer fall back to the generic NAME / CREATED AT table.

Printers are grouped by API group in sibling modules, each exporting `PRINTERS` keyed by
`ResourceInfo.key`; this module only dispatches and assembles the Table.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from kubeling.api.errors import BadRequest
from kubeling.api.registry import ResourceInfo
from kubeling.api.tables import apps, batch, core, events, other, pods
from kubeling.api.tables.custom import (
    DEFAULT_PRINTER,
    crd_column_definitions,
    crd_row_cells,
)
from kubeling.api.tables.format import Printer, human_duration, short_human_duration

__all__ = [
    "build_table", "column_definitions", "crd_column_definitions", "crd_row_cells", "human_duration",
    "row_cells", "short_human_duration",
]

PRINTERS: dict[str, Printer] = {
    **core.PRINTERS, **pods.PRINTERS, **events.PRINTERS, **apps.PRINTERS, **batch.PRINTERS, **other.PRINTERS,
}

# Groups whose kinds are compiled into kube-apiserver: a kind there without a printer gets
# the default table, while anything else is a custom resource.
BUILTIN_GROUPS = frozenset({
    "", "apps", "batch", "autoscaling", "policy", "networking.k8s.io", "storage.k8s.io", "scheduling.k8s.io",
    "coordination.k8s.io", "discovery.k8s.io", "events.k8s.io", "apiextensions.k8s.io", "node.k8s.io",
    "rbac.authorization.k8s.io", "certificates.k8s.io", "admissionregistration.k8s.io", "flowcontrol.apiserver.k8s.io",
    "resource.k8s.io", "authentication.k8s.io", "authorization.k8s.io", "apiregistration.k8s.io",
})

_POD_DONE_CONDITIONS = {
    "Succeeded": [{"type": "Completed", "status": "True", "reason": "Succeeded",
                   "message": "The pod has completed successfully."}],
    "Failed": [{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}],
}

INCLUDE_OBJECT_VALUES = ("Metadata", "Object", "None", "")


def _printer_columns(info: ResourceInfo) -> list[dict[str, Any]] | None:
    """The served version's `additionalPrinterColumns` from `info.crd` (either registry shape)."""
    crd = info.crd or {}
    if isinstance(crd.get("version"), dict):
        return crd["version"].get("additionalPrinterColumns")
    source = crd.get("crd") if isinstance(crd.get("crd"), dict) else crd
    spec = source.get("spec") or {}
    for version in spec.get("versions") or []:
        if version.get("name") == info.version:
            return version.get("additionalPrinterColumns") or spec.get("additionalPrinterColumns")
    return spec.get("additionalPrinterColumns")


def _is_custom(info: ResourceInfo) -> bool:
    return info.crd is not None or (info.key not in PRINTERS and info.group not in BUILTIN_GROUPS)


def column_definitions(info: ResourceInfo) -> list[dict[str, Any]]:
    """The Table's `columnDefinitions` for `info` (fresh copies, safe to mutate)."""
    if _is_custom(info):
        return crd_column_definitions(_printer_columns(info))
    printer = PRINTERS.get(info.key, DEFAULT_PRINTER)
    return copy.deepcopy(list(printer.columns))


def row_cells(info: ResourceInfo, obj: dict[str, Any], now: datetime) -> list[Any]:
    """One row's cells, wide columns included, ages computed against `now`."""
    if _is_custom(info):
        return crd_row_cells(_printer_columns(info), obj, now)
    return PRINTERS.get(info.key, DEFAULT_PRINTER).row(obj, now)


def _row_conditions(info: ResourceInfo, obj: dict[str, Any]) -> list[dict[str, str]] | None:
    if info.key != "pods":
        return None
    return _POD_DONE_CONDITIONS.get(((obj.get("status") or {}).get("phase")) or "")


def _row_object(obj: dict[str, Any], include_object: str) -> dict[str, Any] | None:
    if include_object == "Object":
        return obj
    if include_object == "None":
        return None  # Go marshals the emptied RawExtension as `null`
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": copy.deepcopy(obj.get("metadata") or {})}


def build_table(info: ResourceInfo, objs: list[dict[str, Any]], *, now: datetime,
                include_object: str = "Metadata", resource_version: str, continue_token: str = "",
                no_headers: bool = False, remaining: int | None = None) -> dict[str, Any]:
    """A complete `meta.k8s.io/v1` Table for a list (or a single object / watch event).

    `include_object` is the `includeObject` query parameter: rows carry a
    PartialObjectMetadata ("Metadata", the default), the whole object ("Object") or null
    ("None"). `no_headers` leaves `columnDefinitions` null, as the apiserver does for every
    watch event after the first.
    """
    if include_object not in INCLUDE_OBJECT_VALUES:
        raise BadRequest(f'unrecognized includeObject value: "{include_object}"')
    list_meta: dict[str, Any] = {"resourceVersion": resource_version}
    if continue_token:
        list_meta["continue"] = continue_token
    if remaining is not None:
        list_meta["remainingItemCount"] = remaining
    rows = []
    for obj in objs:
        row: dict[str, Any] = {"cells": row_cells(info, obj, now)}
        conditions = _row_conditions(info, obj)
        if conditions:
            row["conditions"] = copy.deepcopy(conditions)
        row["object"] = _row_object(obj, include_object)
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": None if no_headers else column_definitions(info),
        "rows": rows,
    }
