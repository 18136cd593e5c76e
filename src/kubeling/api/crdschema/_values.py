"""How Go renders JSON values in kube's validation messages, and JSON type names.

Custom-resource errors are produced by kube-openapi (Go) and then wrapped into
`field.Error`s, so numbers print with Go's `%v` (`1e+06`, not `1000000.0`) and
complex values print as Go's `json.Marshal` would. Clients and tests compare
these strings, hence the care.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

JSON = Any


def json_type(value: JSON) -> str:
    """The JSON Schema type name kube-openapi infers for a decoded value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def is_number(value: JSON) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _digits(value: float) -> tuple[str, int]:
    """Shortest round-trip digits and decimal point position (value = 0.DIGITS * 10**dp)."""
    _, digit_tuple, exponent = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(str(d) for d in digit_tuple)
    assert isinstance(exponent, int)
    return digits, len(digits) + exponent


def go_float(value: float, *, json_style: bool = False) -> str:
    """Go's `%v` (strconv 'g', shortest) or, with json_style, encoding/json's float form."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    digits, dp = _digits(value)
    exp = dp - 1
    # strconv 'g' with shortest precision uses %e from exponent 6 (Go's %v: 1e+06);
    # encoding/json switches only below 1e-6 or from 1e21.
    use_exp = (exp < -6 or exp >= 21) if json_style else (exp < -4 or exp >= 6)
    if use_exp:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        esign = "-" if exp < 0 else "+"
        return f"{sign}{mantissa}e{esign}{abs(exp):02d}"
    if dp <= 0:
        return f"{sign}0.{'0' * -dp}{digits}"
    if dp >= len(digits):
        return sign + digits + "0" * (dp - len(digits))
    return f"{sign}{digits[:dp]}.{digits[dp:]}"


def go_json(value: JSON) -> str:
    """encoding/json's compact output (sorted map keys, Go float formatting)."""
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float):
        return go_float(value, json_style=True)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k), ensure_ascii=False)}:{go_json(v)}"
                              for k, v in sorted(value.items())) + "}"
    if isinstance(value, list):
        return "[" + ",".join(go_json(v) for v in value) + "]"
    return json.dumps(str(value))


def go_value(value: JSON) -> str:
    """A bad value as field.Error prints it: %q strings, %v scalars, JSON otherwise."""
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if value is None:
        return "null"
    return go_json(value)


def go_quote(text: str) -> str:
    """Go's %q for plain text."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def json_equal(a: JSON, b: JSON) -> bool:
    """Deep equality of JSON values where true != 1 but 1 == 1.0 (as after Go decoding)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if is_number(a) and is_number(b):
        return bool(a == b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)
