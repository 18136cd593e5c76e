"""JSON merge patch (RFC 7386, `application/merge-patch+json`).

`kubectl scale`, `label` and `annotate` send it; it is also the only patch
type besides JSON patch that custom resources accept. Objects merge
recursively, `null` deletes, and anything else (lists included) replaces.
"""

from __future__ import annotations

import copy
from typing import Any

from kubeling.api import errors


def apply_merge_patch(obj: dict[str, Any], patch: Any) -> dict[str, Any]:
    """Return `obj` with `patch` merged in (inputs are not mutated)."""
    if not isinstance(patch, dict):
        # RFC 7386 would replace the whole document; Kubernetes refuses a non-object body.
        raise errors.BadRequest("json: cannot unmarshal into Go value of type map[string]interface {}")
    result = _merge(obj, patch)
    return result if isinstance(result, dict) else {}


def _merge(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge(out.get(key), value)
    # Untouched values are shared with the input; copy them so callers may mutate the result.
    return {k: (v if k in patch else copy.deepcopy(v)) for k, v in out.items()}
