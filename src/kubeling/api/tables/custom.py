"""Tables without a printers.go handler: the default convertor and custom resources.

* Built-ins without a printer (limitranges, customresourcedefinitions) get the generic
  `rest.DefaultTableConvertor`: NAME and a `date`-typed "Created At" holding the raw
  RFC 3339 timestamp, which kubectl prints as is.
* Custom resources get apiextensions' `tableconvertor`: NAME, then the version's
  `additionalPrinterColumns` (or, when it declares none, a single Age column). Each column
  is a simple JSONPath evaluated against the object; `date` columns are turned into ages
  on the server (`ConvertToHumanReadableDateType`), other types are coerced as
  `cellForJSONValue` does, and a missing value is a null cell.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from kubeling.api.tables.descriptions import doc
from kubeling.api.tables.format import UNKNOWN, Printer, column, meta, name, name_column, parse_time, since

# --- default convertor ------------------------------------------------------------------------------


def _created_at(obj: dict[str, Any], now: datetime) -> list[Any]:
    # Go: creationTimestamp.Time.UTC().Format(time.RFC3339); a zero time prints as year 1.
    t = parse_time(meta(obj).get("creationTimestamp"))
    stamp = t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if t is not None else "0001-01-01T00:00:00Z"
    return [name(obj), stamp]


DEFAULT_PRINTER = Printer((name_column(), column("Created At", "date", doc("ObjectMeta.creationTimestamp"))),
                          _created_at)

# --- custom resources -------------------------------------------------------------------------------

_DEFAULT_CR_COLUMNS = [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp",
                        "description": doc("ObjectMeta.creationTimestamp")}]


def crd_columns_or_default(additional_printer_columns: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """apiextensions `serveDefaultColumnsIfEmpty`: no declared columns means one Age column."""
    return list(additional_printer_columns or []) or [dict(c) for c in _DEFAULT_CR_COLUMNS]


def crd_column_definitions(additional_printer_columns: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The Table columns for a custom resource version: NAME, then each printer column."""
    out = [name_column()]
    for col in crd_columns_or_default(additional_printer_columns):
        desc = col.get("description") or (
            f"Custom resource definition column (in JSONPath format): {col.get('jsonPath', '')}")
        out.append(column(col.get("name", ""), col.get("type", "string"), desc,
                          priority=int(col.get("priority") or 0), fmt=col.get("format") or ""))
    return out


_STEP = re.compile(r"""\.([^.\[\]]+)|\[(\d+|\*|'[^']*'|"[^"]*"|\?\(@\.([^=!<>]+?)\s*(==|!=)\s*(.+?)\))\]""")
_MISS = object()


def _jsonpath_first(obj: Any, path: str) -> Any:
    """First result of a simple JSONPath (`.a.b`, `[0]`, `['k']`, `[*]`, `[?(@.x=="y")]`), or `_MISS`."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    if path.startswith("$"):
        path = path[1:]
    current = [obj]
    pos = 0
    while pos < len(path):
        m = _STEP.match(path, pos)
        if m is None:
            return _MISS
        pos = m.end()
        nxt: list[Any] = []
        for cur in current:
            if m.group(1) is not None:
                if isinstance(cur, dict) and m.group(1) in cur:
                    nxt.append(cur[m.group(1)])
                continue
            sel = m.group(2)
            if sel == "*":
                nxt.extend(cur.values() if isinstance(cur, dict) else cur if isinstance(cur, list) else [])
            elif sel.isdigit():
                if isinstance(cur, list) and int(sel) < len(cur):
                    nxt.append(cur[int(sel)])
            elif sel[0] in "'\"":
                if isinstance(cur, dict) and sel[1:-1] in cur:
                    nxt.append(cur[sel[1:-1]])
            elif isinstance(cur, list):
                field_path, op, want = m.group(3), m.group(4), m.group(5).strip().strip("'\"")
                for item in cur:
                    have = _jsonpath_first(item, "." + field_path)
                    text = _go_text(have) if have is not _MISS else None
                    if (text == want) == (op == "=="):
                        nxt.append(item)
        current = nxt
        if not current:
            return _MISS
    return current[0] if current else _MISS


def _go_float(value: float) -> str:
    """Go's `%v` for float64 (strconv 'g' with the shortest representation)."""
    if value == int(value) and abs(value) < 1e21:
        return str(int(value))
    text = repr(value)
    if "e" in text:
        mantissa, exp = text.split("e")
        sign = "-" if exp.startswith("-") else "+"
        digits = exp.lstrip("+-").rjust(2, "0")
        return f"{mantissa}e{sign}{digits}"
    return text


def _go_text(value: Any) -> str:
    """What the JSONPath printer writes for a value (Go `fmt.Fprint` of the decoded JSON)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if value is None:
        return "<nil>"
    if isinstance(value, list):
        return "[" + " ".join(_go_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_text(value[k])}" for k in sorted(value)) + "]"
    return json.dumps(value)


def _cell(col_type: str, value: Any, now: datetime) -> Any:
    """apiextensions `cellForJSONValue` (with the string case handled by the JSONPath printer)."""
    if col_type == "string":
        return None if value is None else _go_text(value)
    if value is None:
        return None
    if col_type == "integer" and isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if col_type == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if col_type == "boolean" and isinstance(value, bool):
        return value
    if col_type == "date" and isinstance(value, str):
        if parse_time(value) is None:
            return "<invalid>"
        return since(value, now)
    return None


def crd_row_cells(columns: list[dict[str, Any]] | None, obj: dict[str, Any], now: datetime) -> list[Any]:
    """Cells for one custom resource, given the version's `additionalPrinterColumns` (raw CRD form)."""
    cells: list[Any] = [name(obj)]
    for col in crd_columns_or_default(columns):
        value = _jsonpath_first(obj, col.get("jsonPath") or "")
        cells.append(None if value is _MISS else _cell(col.get("type") or "string", value, now))
    return cells


def cr_age_row(obj: dict[str, Any], now: datetime) -> list[Any]:
    """NAME and AGE, for a custom resource whose CRD we can't see."""
    created = meta(obj).get("creationTimestamp")
    return [name(obj), since(created, now) if created else UNKNOWN]
