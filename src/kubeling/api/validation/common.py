"""Small field checks shared by the per-group validators: numeric bounds,
int-or-percent values, quantities, and label selectors (syntax and matching).

They mirror `ValidateNonnegativeField`, `ValidatePositiveIntOrPercent`,
`ValidateLabelSelector` and `LabelSelectorAsSelector(...).Matches` so that
every workload kind words the same mistake the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from kubeling.api import quantity
from kubeling.api.errors import Cause, duplicate, forbidden, invalid, not_supported, required
from kubeling.api.validation.labels import (
    GoValue,
    is_dns1123_label,
    is_label_value,
    is_qualified_name,
    required_detail,
    validate_labels,
)

NONNEGATIVE = "must be greater than or equal to 0"


def as_map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def unique_name(name: Any, path: str, seen: set[Any],
                check: Callable[[Any], list[str]] = is_dns1123_label) -> list[Cause]:
    """`name` at `path` passes `check` and is not already in `seen` (the caller adds it)."""
    errs = check(name)
    causes = [invalid(path, name, m) for m in errs]
    if not errs and name in seen:
        causes.append(duplicate(path, name))
    return causes


def nonnegative(obj: Mapping[str, Any], key: str, path: str) -> list[Cause]:
    """ValidateNonnegativeField for an optional integer field."""
    value = obj.get(key)
    if is_int(value) and value < 0:
        return [invalid(f"{path}.{key}", value, NONNEGATIVE)]
    return []


def positive(obj: Mapping[str, Any], key: str, path: str) -> list[Cause]:
    value = obj.get(key)
    if is_int(value) and value <= 0:
        return [invalid(f"{path}.{key}", value, "must be greater than 0")]
    return []


_PERCENT = re.compile(r"^[0-9]+%$")


def int_or_percent_value(value: Any) -> int:
    """The number in 3 or "25%" (0 when unparseable), like getIntOrPercentValue."""
    if is_int(value):
        return int(value)
    if isinstance(value, str) and _PERCENT.match(value):
        return int(value[:-1])
    return 0


PERCENT_MSG = ("a valid percent string must be a numeric string followed by an ending '%' "
               "(e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')")


def go_int_or_string(value: Any) -> GoValue:
    """`%#v` of an intstr.IntOrString, which is how apps validation prints maxSurge/maxUnavailable."""
    if isinstance(value, str):
        return GoValue(f'intstr.IntOrString{{Type:1, IntVal:0, StrVal:"{value}"}}')
    return GoValue(f'intstr.IntOrString{{Type:0, IntVal:{int(value or 0)}, StrVal:""}}')


def positive_int_or_percent(value: Any, path: str) -> list[Cause]:
    """ValidatePositiveIntOrPercent."""
    if value is None:
        return []
    if isinstance(value, str):
        return [] if _PERCENT.match(value) else [invalid(path, go_int_or_string(value), PERCENT_MSG)]
    if is_int(value) and value < 0:
        return [invalid(path, value, NONNEGATIVE)]
    return []


def not_more_than_100_percent(value: Any, path: str) -> list[Cause]:
    if isinstance(value, str) and _PERCENT.match(value) and int(value[:-1]) > 100:
        return [invalid(path, go_int_or_string(value), "must not be greater than 100%")]
    return []


def quantity_causes(value: Any, path: str, *, nonneg: bool = True) -> list[Cause]:
    """A quantity must parse; resource amounts may not be negative."""
    try:
        q = quantity.parse_quantity(value)
    except (ValueError, ArithmeticError) as exc:
        shown = value if isinstance(value, str) else GoValue(str(value))
        return [invalid(path, shown, str(exc))]
    if nonneg and q < 0:
        return [invalid(path, quantity.canonical_quantity(value), NONNEGATIVE)]
    return []


def resource_list(values: Any, path: str) -> list[Cause]:
    """Every entry of a ResourceList (`limits`, `hard`, ...) at `path[name]`."""
    causes: list[Cause] = []
    for name, value in as_map(values).items():
        causes.extend(quantity_causes(value, f"{path}[{name}]"))
    return causes


_OPERATORS_WITH_VALUES = ("In", "NotIn")
_OPERATORS_WITHOUT_VALUES = ("Exists", "DoesNotExist")


def validate_label_selector(sel: Any, path: str) -> list[Cause]:
    """ValidateLabelSelector: matchLabels as labels, each expression's operator/values/key."""
    sel = as_map(sel)
    causes = validate_labels(sel.get("matchLabels"), f"{path}.matchLabels")
    for i, expr in enumerate(as_list(sel.get("matchExpressions"))):
        expr = as_map(expr)
        p = f"{path}.matchExpressions[{i}]"
        op, values = expr.get("operator"), as_list(expr.get("values"))
        if op in _OPERATORS_WITH_VALUES:
            if not values:
                causes.append(required_detail(f"{p}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
        elif op in _OPERATORS_WITHOUT_VALUES:
            if values:
                causes.append(forbidden(f"{p}.values",
                                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        else:
            causes.append(invalid(f"{p}.operator", op or "", "not a valid selector operator"))
        key = str(expr.get("key") or "")
        causes.extend(invalid(f"{p}.key", key, m) for m in is_qualified_name(key))
        if op in _OPERATORS_WITH_VALUES:
            for v in values:
                causes.extend(invalid(f"{p}.values", v, m) for m in is_label_value(str(v)))
    return causes


def selector_empty(sel: Any) -> bool:
    sel = as_map(sel)
    return not sel.get("matchLabels") and not sel.get("matchExpressions")


def selector_matches(sel: Any, labels: Any) -> bool:
    """LabelSelector semantics: all matchLabels equal, every expression satisfied."""
    sel, labels = as_map(sel), as_map(labels)
    for k, v in as_map(sel.get("matchLabels")).items():
        if labels.get(k) != v:
            return False
    for expr in as_list(sel.get("matchExpressions")):
        expr = as_map(expr)
        key, op, values = expr.get("key"), expr.get("operator"), as_list(expr.get("values"))
        present = key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def immutable(new: Any, old: Any, path: str, shown: Any = None) -> list[Cause]:
    """ValidateImmutableField: `field is immutable` carrying the new value."""
    if new == old:
        return []
    value = shown if shown is not None else (new if isinstance(new, str | int | bool) else GoValue(str(new)))
    return [invalid(path, value, "field is immutable")]


def enum(value: Any, path: str, allowed: list[str], *, required_if_empty: bool = True) -> list[Cause]:
    """An enum field: Required when empty (if so), NotSupported when unknown."""
    if value in (None, ""):
        return [required(path)] if required_if_empty else []
    if value not in allowed:
        return [not_supported(path, value, allowed)]
    return []
