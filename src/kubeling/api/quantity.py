"""Kubernetes `resource.Quantity`: parsing, comparison and canonical formatting.

Quantities travel as strings ("100m", "1Gi", "1e3") and are compared as exact
numbers: the scheduler adds CPU requests in millicores, quota sums memory in
bytes, validation checks `requests <= limits`. Floats would make "0.1" + "0.2"
miss a limit of "300m", so values are `Decimal`s with enough precision to hold
an exabyte exactly.

Formatting follows apimachinery's `CanonicalizeBytes`: a quantity keeps the
family of suffix it was written with (binary `Ki/Mi/Gi`, decimal `k/M/G/m`,
or exponent `e3`) and picks the largest suffix that leaves an integer
mantissa, so "0.5" prints as "500m", "1024Mi" as "1Gi" and "1.5Gi" as "1536Mi"
— what `kubectl get -o yaml` shows after a round trip through a real server.
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, Context, Decimal, InvalidOperation

# The message apimachinery's ErrFormatWrong carries; clients match on it.
FORMAT_ERROR = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
SUFFIX_ERROR = "unable to parse quantity's suffix"

_CTX = Context(prec=60)
_SHAPE = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
_NUMBER = re.compile(r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$")
_EXPONENT = re.compile(r"^[eE][+-]?[0-9]+$")

_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_BY_EXP = {v: k for k, v in _DECIMAL_SUFFIXES.items()}
_BINARY_BY_EXP = {v: k for k, v in _BINARY_SUFFIXES.items()}

DECIMAL_SI = "DecimalSI"
BINARY_SI = "BinarySI"
DECIMAL_EXPONENT = "DecimalExponent"

QuantityLike = str | int | Decimal


def _split(text: str) -> tuple[str, str]:
    if not isinstance(text, str) or not _SHAPE.match(text):
        raise ValueError(FORMAT_ERROR)
    # The shape regex lets "1.2.3" or "1e3e3" through; split number from suffix precisely.
    m = re.match(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(.*)$", text)
    if not m or not _NUMBER.match(m.group(1)):
        raise ValueError(FORMAT_ERROR)
    return m.group(1), m.group(2)


def parse_quantity_format(text: str) -> tuple[Decimal, str]:
    """Parse a quantity string into its exact value and its format family."""
    number, suffix = _split(text)
    value = Decimal(number)
    if suffix in _BINARY_SUFFIXES:
        return _CTX.multiply(value, Decimal(2) ** _BINARY_SUFFIXES[suffix]), BINARY_SI
    if suffix in _DECIMAL_SUFFIXES:
        return _CTX.multiply(value, _CTX.power(Decimal(10), _DECIMAL_SUFFIXES[suffix])), DECIMAL_SI
    if _EXPONENT.match(suffix):
        exp = int(suffix[1:])
        if abs(exp) > 1000:
            raise ValueError(SUFFIX_ERROR)
        return value.scaleb(exp, _CTX), DECIMAL_EXPONENT
    raise ValueError(SUFFIX_ERROR)


def parse_quantity(text: QuantityLike) -> Decimal:
    """Parse a quantity ("100m", "1Gi", "2", "1e3") to an exact Decimal; ValueError when malformed."""
    if isinstance(text, Decimal):
        return text
    if isinstance(text, bool):
        raise ValueError(FORMAT_ERROR)
    if isinstance(text, int):
        return Decimal(text)
    return parse_quantity_format(text)[0]


def is_valid_quantity(text: object) -> bool:
    """True when `text` is a quantity the API would accept (ints count: JSON numbers decode fine)."""
    try:
        parse_quantity(text)  # type: ignore[arg-type]
    except (ValueError, InvalidOperation):
        return False
    return True


def _ceil_int(value: Decimal) -> int:
    return int(value.to_integral_value(rounding=ROUND_CEILING))


def cpu_millis(q: QuantityLike) -> int:
    """Millicores, rounded up like `Quantity.MilliValue` ("100m" -> 100, "1" -> 1000, "1n" -> 1)."""
    return _ceil_int(_CTX.multiply(parse_quantity(q), Decimal(1000)))


def memory_bytes(q: QuantityLike) -> int:
    """Whole units (bytes for memory), rounded up like `Quantity.Value` ("1Ki" -> 1024)."""
    return _ceil_int(parse_quantity(q))


def _round_to_nano(value: Decimal) -> Decimal:
    # Quantities hold at most nano precision; apimachinery rounds finer values up.
    return _CTX.divide(_ceil_int(_CTX.multiply(value, Decimal(10) ** 9)), Decimal(10) ** 9)


def format_quantity(value: QuantityLike, fmt: str = DECIMAL_SI) -> str:
    """Canonical text of a value in a format family (see the module docstring)."""
    v = _round_to_nano(parse_quantity(value))
    if v == 0:
        return "0"
    sign = "-" if v < 0 else ""
    v = abs(v)
    if fmt == BINARY_SI and v >= 1024 and v == v.to_integral_value():
        n, exp = int(v), 0
        while n % 1024 == 0 and exp < 60:
            n //= 1024
            exp += 10
        return f"{sign}{n}{_BINARY_BY_EXP.get(exp, '')}"
    # Decimal: express as an integer mantissa times 10^(3k), with the largest k possible.
    n = int(_CTX.multiply(v, Decimal(10) ** 9))
    exp = -9
    while n % 1000 == 0 and n != 0 and (fmt == DECIMAL_EXPONENT or exp < 18):
        n //= 1000
        exp += 3
    if fmt == DECIMAL_EXPONENT:
        return f"{sign}{n}" + (f"e{exp}" if exp else "")
    return f"{sign}{n}{_DECIMAL_BY_EXP[exp]}"


def canonical_quantity(text: QuantityLike) -> str:
    """Re-render a quantity the way a real API server stores it ("0.5" -> "500m", "1024Mi" -> "1Gi")."""
    if isinstance(text, str):
        value, fmt = parse_quantity_format(text)
        return format_quantity(value, fmt)
    return format_quantity(parse_quantity(text))


def compare(a: QuantityLike, b: QuantityLike) -> int:
    """-1, 0 or 1 as `a` is less than, equal to or greater than `b`."""
    x, y = parse_quantity(a), parse_quantity(b)
    return (x > y) - (x < y)
