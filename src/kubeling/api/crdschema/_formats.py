"""String `format`s and `pattern`s for custom-resource validation.

Kube checks only the formats in apiextensions' allow-list (strfmt's registry); any
other format string is accepted silently, and so it is here. The checks are light
regular expressions, not full RFC parsers: enough to reject what a user would
recognise as garbage, never stricter than kube.

Patterns are Go RE2 syntax matched with `MatchString` (unanchored). The common
subset is identical in Python's `re`; the few Go-only spellings are translated.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Callable
from functools import lru_cache

_DATE = r"\d{4}-\d{2}-\d{2}"
_DATE_TIME = re.compile(_DATE + r"[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})?$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
_MAC = re.compile(r"^([0-9A-Fa-f]{2}[:-]){5}([0-9A-Fa-f]{2})$|^([0-9A-Fa-f]{4}\.){2}[0-9A-Fa-f]{4}$")
_HOSTNAME = re.compile(r"^(?=.{1,255}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_DURATION = re.compile(r"^(\d+(\.\d+)?\s*(ns|us|µs|ms|s|m|h|d|w)\s*)+$")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_HEXCOLOR = re.compile(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")


def _ip(version: int) -> Callable[[str], bool]:
    def check(value: str) -> bool:
        try:
            return ipaddress.ip_address(value).version == version
        except ValueError:
            return False
    return check


def _cidr(value: str) -> bool:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return "/" in value


def _byte(value: str) -> bool:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _date(value: str) -> bool:
    return re.fullmatch(_DATE, value) is not None


_CHECKS: dict[str, Callable[[str], bool]] = {
    "date-time": lambda v: _DATE_TIME.match(v) is not None,
    "datetime": lambda v: _DATE_TIME.match(v) is not None,
    "date": _date,
    "uuid": lambda v: _UUID.match(v) is not None,
    "uuid3": lambda v: _UUID.match(v) is not None,
    "uuid4": lambda v: _UUID.match(v) is not None,
    "uuid5": lambda v: _UUID.match(v) is not None,
    "ipv4": _ip(4),
    "ipv6": _ip(6),
    "cidr": _cidr,
    "mac": lambda v: _MAC.match(v) is not None,
    "hostname": lambda v: _HOSTNAME.match(v) is not None,
    "email": lambda v: _EMAIL.match(v) is not None,
    "duration": lambda v: _DURATION.match(v) is not None,
    "uri": lambda v: _URI.match(v) is not None,
    "byte": _byte,
    "hexcolor": lambda v: _HEXCOLOR.match(v) is not None,
}


def check_format(fmt: str, value: str) -> bool:
    """True when `value` is acceptable for `fmt` (unknown formats always are)."""
    check = _CHECKS.get(fmt)
    return True if check is None else check(value)


_GO_CLASSES = {r"\z": r"\Z", "[[:alpha:]]": "[A-Za-z]", "[[:digit:]]": "[0-9]", "[[:alnum:]]": "[A-Za-z0-9]",
               "[[:space:]]": r"[\s]", "[[:upper:]]": "[A-Z]", "[[:lower:]]": "[a-z]"}


@lru_cache(maxsize=512)
def compile_pattern(pattern: str) -> re.Pattern[str] | None:
    """Compile a Go RE2 pattern for Python; None when Python cannot express it."""
    translated = pattern
    for go, py in _GO_CLASSES.items():
        translated = translated.replace(go, py)
    translated = re.sub(r"\(\?P<", "(?P<", translated)
    try:
        return re.compile(translated)
    except re.error:
        return None
