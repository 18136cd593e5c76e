"""JSON patch (RFC 6902, `application/json-patch+json`).

Used by `kubectl rollout undo` (replace), kopf (`test` on resourceVersion) and
lightkube (`add /spec/ports/-`). The `jsonpatch` library does the work; this
module maps its failures the way kube-apiserver does: an undecodable patch is
400 BadRequest, a patch that cannot be applied (failed `test`, missing path)
is 422 Invalid with "the server rejected our request due to an error in our
request" and the library's message as an `UnexpectedServerResponse` cause.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import jsonpointer

from kubeling.api import errors

_OPS = {"add", "remove", "replace", "move", "copy", "test"}


def _decode(patch: Any) -> list[dict[str, Any]]:
    if not isinstance(patch, list):
        raise errors.BadRequest("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    for op in patch:
        if not isinstance(op, dict):
            raise errors.BadRequest("json: cannot unmarshal into Go value of type jsonpatch.Operation")
        if op.get("op") not in _OPS:
            raise errors.BadRequest(f"Unexpected kind: {op.get('op')}")
        if not isinstance(op.get("path"), str):
            raise errors.BadRequest(f"operation missing path: {op}")
        if op["op"] in ("add", "replace", "test") and "value" not in op:
            raise errors.BadRequest(f"operation missing value: {op}")
        if op["op"] in ("move", "copy") and not isinstance(op.get("from"), str):
            raise errors.BadRequest(f"operation missing from: {op}")
    return patch


def _unprocessable(detail: str) -> errors.StatusError:
    return errors.StatusError(422, "Invalid", "the server rejected our request due to an error in our request",
                              causes=[errors.Cause("UnexpectedServerResponse", detail)])


def apply_json_patch(obj: dict[str, Any], patch: Any) -> dict[str, Any]:
    """Apply an RFC 6902 patch to a copy of `obj`."""
    doc: Any = copy.deepcopy(obj)
    # One operation at a time so failures can name the operation, as evanphx/json-patch does.
    for op in _decode(patch):
        try:
            doc = jsonpatch.JsonPatch([op]).apply(doc, in_place=True)
        except jsonpatch.JsonPatchTestFailed as exc:
            raise _unprocessable(f"testing value {op['path']} failed: test failed") from exc
        except jsonpatch.InvalidJsonPatch as exc:
            raise errors.BadRequest(str(exc)) from exc
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException,
                KeyError, IndexError, TypeError) as exc:
            raise _unprocessable(f"{op['op']} operation does not apply: doc is missing path: "
                                 f"{op.get('from') if op['op'] in ('move', 'copy') else op['path']}: "
                                 f"{exc}") from exc
    if not isinstance(doc, dict):
        raise _unprocessable("the patched document is not a JSON object")
    return doc
