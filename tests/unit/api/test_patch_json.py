"""JSON patch (RFC 6902) and JSON merge patch (RFC 7386) as kubectl, kopf and lightkube send them."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubeling.api.errors import StatusError
from kubeling.api.patch import apply_json_patch, apply_merge_patch

OBJ = {"metadata": {"name": "x", "resourceVersion": "7", "annotations": {"a": "1"}},
       "spec": {"ports": [{"port": 80}], "template": {"old": True}}}


@pytest.mark.parametrize(("patch", "expected"), [
    pytest.param([{"op": "test", "path": "/metadata/resourceVersion", "value": "7"},
                  {"op": "replace", "path": "/metadata/annotations", "value": {"b": "2"}}],
                 {**OBJ, "metadata": {**OBJ["metadata"], "annotations": {"b": "2"}}}, id="test-then-replace"),
    pytest.param([{"op": "add", "path": "/spec/ports/-", "value": {"port": 443}}],
                 {**OBJ, "spec": {**OBJ["spec"], "ports": [{"port": 80}, {"port": 443}]}}, id="add-dash-appends"),
    pytest.param([{"op": "replace", "path": "/spec/template", "value": {"new": 1}}],
                 {**OBJ, "spec": {**OBJ["spec"], "template": {"new": 1}}}, id="rollout-undo-replace"),
    pytest.param([{"op": "remove", "path": "/metadata/annotations/a"}],
                 {**OBJ, "metadata": {**OBJ["metadata"], "annotations": {}}}, id="remove"),
    pytest.param([], OBJ, id="empty-patch"),
])
def test_json_patch(patch: list[dict[str, Any]], expected: dict[str, Any]) -> None:
    before = copy.deepcopy(OBJ)
    assert apply_json_patch(OBJ, patch) == expected
    assert before == OBJ


@pytest.mark.parametrize(("patch", "code"), [
    pytest.param({"op": "add"}, 400, id="not-a-list"),
    pytest.param([{"op": "frobnicate", "path": "/a"}], 400, id="unknown-op"),
    pytest.param([{"op": "add", "path": "/a"}], 400, id="missing-value"),
    pytest.param([{"op": "test", "path": "/metadata/resourceVersion", "value": "6"}], 422, id="test-fails"),
    pytest.param([{"op": "replace", "path": "/spec/missing/x", "value": 1}], 422, id="missing-path"),
    pytest.param([{"op": "remove", "path": "/nope"}], 422, id="remove-missing"),
])
def test_json_patch_errors(patch: Any, code: int) -> None:
    with pytest.raises(StatusError) as err:
        apply_json_patch(OBJ, patch)
    assert err.value.code == code
    if code == 422:
        assert err.value.reason == "Invalid"
        assert err.value.message == "the server rejected our request due to an error in our request"
        assert err.value.causes and err.value.causes[0].reason == "UnexpectedServerResponse"


@pytest.mark.parametrize(("patch", "expected"), [
    pytest.param({"spec": {"replicas": 3}}, {"metadata": {"labels": {"a": "1"}}, "spec": {"replicas": 3, "x": [1]}},
                 id="scale"),
    pytest.param({"metadata": {"labels": {"foo": "bar"}}},
                 {"metadata": {"labels": {"a": "1", "foo": "bar"}}, "spec": {"replicas": 1, "x": [1]}}, id="label"),
    pytest.param({"metadata": {"labels": {"a": None}}, "spec": None},
                 {"metadata": {"labels": {}}}, id="nulls-delete"),
    pytest.param({"spec": {"x": [2, 3]}}, {"metadata": {"labels": {"a": "1"}}, "spec": {"replicas": 1, "x": [2, 3]}},
                 id="lists-replaced"),
])
def test_merge_patch(patch: dict[str, Any], expected: dict[str, Any]) -> None:
    obj = {"metadata": {"labels": {"a": "1"}}, "spec": {"replicas": 1, "x": [1]}}
    before = copy.deepcopy(obj)
    out = apply_merge_patch(obj, patch)
    assert out == expected
    assert obj == before
    out["metadata"]["labels"]["mutated"] = "yes"
    assert obj == before


def test_merge_patch_rejects_non_object() -> None:
    with pytest.raises(StatusError) as err:
        apply_merge_patch({}, [1])
    assert err.value.code == 400
