"""Custom resource tables: additionalPrinterColumns evaluated as apiextensions' tableconvertor does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kubeling.api import tables
from kubeling.api.registry import ResourceInfo

NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)
CREATED = (NOW - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")

COLUMNS = [
    {"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"},
    {"name": "Replicas", "type": "integer", "jsonPath": ".status.replicas", "description": "how many"},
    {"name": "Ratio", "type": "number", "jsonPath": ".status.ratio", "priority": 1},
    {"name": "On", "type": "boolean", "jsonPath": ".spec.enabled"},
    {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
    {"name": "First", "type": "string", "jsonPath": ".spec.items[0]"},
    {"name": "Tags", "type": "string", "jsonPath": ".spec.tags"},
    {"name": "Since", "type": "date", "jsonPath": ".status.since", "format": ""},
]

OBJ = {
    "apiVersion": "stable.example.com/v1", "kind": "CronTab",
    "metadata": {"name": "ct", "creationTimestamp": CREATED},
    "spec": {"cronSpec": "* * * * */5", "enabled": True, "items": ["a", "b"], "tags": {"b": 2, "a": "x"}},
    "status": {"replicas": 3.0, "ratio": 2, "since": (NOW - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ"),
               "conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}]},
}


def test_crd_column_definitions() -> None:
    cols = tables.crd_column_definitions(COLUMNS)
    assert cols[0] == tables.column_definitions(ResourceInfo("x.io", "v1", "things", "Thing", True))[0]
    assert [(c["name"], c["type"], c["priority"]) for c in cols[1:4]] == [
        ("Spec", "string", 0), ("Replicas", "integer", 0), ("Ratio", "number", 1)]
    assert cols[1]["description"] == "Custom resource definition column (in JSONPath format): .spec.cronSpec"
    assert cols[2]["description"] == "how many"
    assert all(c["name"] != "Age" for c in cols), "declared columns replace the default Age column"


def test_crd_row_cells_types() -> None:
    assert tables.crd_row_cells(COLUMNS, OBJ, NOW) == [
        "ct", "* * * * */5", 3, 2.0, True, "True", "a", "map[a:x b:2]", "5m"]


@pytest.mark.parametrize(("column", "obj", "want"), [
    ({"name": "X", "type": "string", "jsonPath": ".spec.missing"}, {}, None),
    ({"name": "X", "type": "integer", "jsonPath": ".spec.v"}, {"spec": {"v": "notanint"}}, None),
    ({"name": "X", "type": "date", "jsonPath": ".spec.v"}, {"spec": {"v": "yesterday"}}, "<invalid>"),
    ({"name": "X", "type": "string", "jsonPath": ".spec.v"}, {"spec": {"v": 1.5}}, "1.5"),
    ({"name": "X", "type": "string", "jsonPath": ".spec.v"}, {"spec": {"v": [1, "a"]}}, "[1 a]"),
    ({"name": "X", "type": "string", "jsonPath": ".spec['odd.key']"}, {"spec": {"odd.key": "k"}}, "k"),
    ({"name": "X", "type": "boolean", "jsonPath": ".spec.v"}, {"spec": {"v": "true"}}, None),
], ids=["missing", "int-from-string", "bad-date", "float-as-string", "list-as-string", "quoted-key",
        "bool-from-string"])
def test_crd_cell_edge_cases(column: dict[str, Any], obj: dict[str, Any], want: Any) -> None:
    assert tables.crd_row_cells([column], {"metadata": {"name": "n"}, **obj}, NOW) == ["n", want]


def test_no_columns_defaults_to_age() -> None:
    cols = tables.crd_column_definitions([])
    assert [(c["name"], c["type"]) for c in cols] == [("Name", "string"), ("Age", "date")]
    assert tables.crd_row_cells(None, OBJ, NOW) == ["ct", "3h"]


@pytest.mark.parametrize("crd", [
    {"crd": {"spec": {"versions": [{"name": "v1", "additionalPrinterColumns": COLUMNS[:1]}]}},
     "version": {"name": "v1", "additionalPrinterColumns": COLUMNS[:1]}},
    {"spec": {"versions": [{"name": "v1beta1"}, {"name": "v1", "additionalPrinterColumns": COLUMNS[:1]}]}},
], ids=["registrar-shape", "raw-crd"])
def test_registry_info_with_crd(crd: dict[str, Any]) -> None:
    info = ResourceInfo("stable.example.com", "v1", "crontabs", "CronTab", True, crd=crd)
    assert [c["name"] for c in tables.column_definitions(info)] == ["Name", "Spec"]
    assert tables.row_cells(info, OBJ, NOW) == ["ct", "* * * * */5"]
    table = tables.build_table(info, [OBJ], now=NOW, resource_version="7")
    assert table["rows"][0]["cells"] == ["ct", "* * * * */5"]


def test_unknown_resource_gets_name_and_age() -> None:
    info = ResourceInfo("unknown.example.com", "v1", "widgets", "Widget", True)
    assert [c["name"] for c in tables.column_definitions(info)] == ["Name", "Age"]
    assert tables.row_cells(info, OBJ, NOW) == ["ct", "3h"]
