"""The shared harness of the validation tests: look a resource up, default an object as the
server does, validate it, and give each cause as "field: message"."""

from __future__ import annotations

import copy
from typing import Any

from kubeling.api.defaults import apply_defaults
from kubeling.api.registry import Registry
from kubeling.api.validation import validate

REG = Registry()


def resource_info(key: str) -> Any:
    return next(i for i in REG.all() if i.key == key)


def causes(key: str, obj: dict[str, Any], old: dict[str, Any] | None = None, *,
           default_old: bool = False) -> list[str]:
    """Default then validate, as the server does; "field: message" per cause.
    `default_old` defaults a copy of `old` too (for updates written without server defaults)."""
    obj = copy.deepcopy(obj)
    apply_defaults(resource_info(key), obj)
    if default_old and old is not None:
        old = copy.deepcopy(old)
        apply_defaults(resource_info(key), old)
    return [f"{c.field}: {c.message}" for c in validate(resource_info(key), obj, old)]
