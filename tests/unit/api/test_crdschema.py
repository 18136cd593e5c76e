"""Custom-resource pruning, defaulting and validation against kube's wording."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubeling.api.crdschema import apply_defaults, prune, schema_for_info, validate
from kubeling.api.crdschema._values import go_float, go_value

S = dict[str, Any]


def obj_schema(props: S, **extra: Any) -> S:
    return {"type": "object", "properties": props, **extra}


def cr(**fields: Any) -> S:
    return {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, **fields}


SPEC = obj_schema({"spec": obj_schema({
    "replicas": {"type": "integer"},
    "name": {"type": "string"},
    "items": {"type": "array", "items": obj_schema({"name": {"type": "string"}})},
    "labels": {"type": "object", "additionalProperties": obj_schema({"a": {"type": "string"}})},
    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    "loose": obj_schema({"known": obj_schema({"x": {"type": "string"}})},
                        **{"x-kubernetes-preserve-unknown-fields": True}),
    "opaque": {"type": "object"},
    "template": obj_schema({"spec": obj_schema({"x": {"type": "string"}})},
                           **{"x-kubernetes-embedded-resource": True}),
})})


# ---- pruning -------------------------------------------------------------------------

PRUNE_CASES = [
    ("known-kept", {"spec": {"replicas": 1}}, {"spec": {"replicas": 1}}, []),
    ("top-level-unknown", {"spec": {}, "extra": 1}, {"spec": {}}, ["extra"]),
    ("nested-unknown", {"spec": {"foo": 1, "name": "a"}}, {"spec": {"name": "a"}}, ["spec.foo"]),
    ("array-items", {"spec": {"items": [{"name": "a", "x": 1}, {"y": 2}]}},
     {"spec": {"items": [{"name": "a"}, {}]}}, ["spec.items[0].x", "spec.items[1].y"]),
    ("additional-properties", {"spec": {"labels": {"k": {"a": "1", "b": "2"}}}},
     {"spec": {"labels": {"k": {"a": "1"}}}}, ["spec.labels.k.b"]),
    ("preserve-unknown-keeps-everything", {"spec": {"free": {"a": {"b": [1, {"c": 2}]}}}},
     {"spec": {"free": {"a": {"b": [1, {"c": 2}]}}}}, []),
    ("preserve-unknown-still-prunes-known", {"spec": {"loose": {"other": 1, "known": {"x": "a", "y": "b"}}}},
     {"spec": {"loose": {"other": 1, "known": {"x": "a"}}}}, ["spec.loose.known.y"]),
    ("object-without-properties-keeps-nothing", {"spec": {"opaque": {"a": 1}}},
     {"spec": {"opaque": {}}}, ["spec.opaque.a"]),
    ("embedded-resource-keeps-type-meta", {"spec": {"template": {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}},
        "spec": {"x": "1", "y": "2"}, "status": {}}}},
     {"spec": {"template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}},
                            "spec": {"x": "1"}}}},
     ["spec.template.spec.y", "spec.template.status"]),
    ("embedded-resource-drops-non-string-kind", {"spec": {"template": {"kind": 3}}},
     {"spec": {"template": {}}}, ["spec.template.kind"]),
]


@pytest.mark.parametrize(("body", "want", "paths"), [c[1:] for c in PRUNE_CASES], ids=[c[0] for c in PRUNE_CASES])
def test_prune(body: S, want: S, paths: list[str]) -> None:
    obj = cr(**body)
    assert prune(SPEC, obj) == paths
    assert obj == cr(**want)


def test_prune_never_drops_root_type_meta() -> None:
    obj = cr(spec={})
    assert prune(obj_schema({"spec": {"type": "object"}}), obj) == []
    assert obj["apiVersion"] == "example.com/v1" and obj["kind"] == "Widget" and obj["metadata"] == {"name": "w"}


def test_prune_root_preserve_unknown() -> None:
    obj = cr(anything={"goes": 1})
    assert prune({"type": "object", "x-kubernetes-preserve-unknown-fields": True}, obj) == []
    assert obj["anything"] == {"goes": 1}


# ---- defaulting -----------------------------------------------------------------------

DEFAULTED = obj_schema({"spec": obj_schema({
    "replicas": {"type": "integer", "default": 1},
    "mode": {"type": "string", "default": "Auto"},
    "nullable": {"type": "string", "nullable": True, "default": "d"},
    "plain": {"type": "string"},
    "strategy": obj_schema({"type": {"type": "string", "default": "Rolling"}}),
    "created": obj_schema({"inner": {"type": "integer", "default": 5}}, default={}),
    "ports": {"type": "array", "items": obj_schema({
        "name": {"type": "string"}, "protocol": {"type": "string", "default": "TCP"}})},
    "env": {"type": "object", "additionalProperties": obj_schema({"value": {"type": "string", "default": "v"}})},
})})

DEFAULT_CASES = [
    ("absent-scalars", {"spec": {}},
     {"spec": {"replicas": 1, "mode": "Auto", "nullable": "d", "created": {"inner": 5}}}),
    ("present-not-overwritten", {"spec": {"replicas": 3, "mode": "Manual", "nullable": "x", "created": {"inner": 1}}},
     {"spec": {"replicas": 3, "mode": "Manual", "nullable": "x", "created": {"inner": 1}}}),
    ("absent-parent-not-created", {}, {}),
    ("nested-under-present-parent", {"spec": {"strategy": {}}},
     {"spec": {"replicas": 1, "mode": "Auto", "nullable": "d", "strategy": {"type": "Rolling"},
               "created": {"inner": 5}}}),
    ("array-items", {"spec": {"ports": [{"name": "a"}, {"name": "b", "protocol": "UDP"}]}},
     {"spec": {"replicas": 1, "mode": "Auto", "nullable": "d", "created": {"inner": 5},
               "ports": [{"name": "a", "protocol": "TCP"}, {"name": "b", "protocol": "UDP"}]}}),
    ("additional-properties", {"spec": {"env": {"A": {}}}},
     {"spec": {"replicas": 1, "mode": "Auto", "nullable": "d", "created": {"inner": 5},
               "env": {"A": {"value": "v"}}}}),
    ("non-nullable-null-defaulted", {"spec": {"replicas": None}},
     {"spec": {"replicas": 1, "mode": "Auto", "nullable": "d", "created": {"inner": 5}}}),
    ("nullable-null-kept", {"spec": {"nullable": None}},
     {"spec": {"replicas": 1, "mode": "Auto", "nullable": None, "created": {"inner": 5}}}),
    ("null-without-default-dropped", {"spec": {"plain": None}},
     {"spec": {"replicas": 1, "mode": "Auto", "nullable": "d", "created": {"inner": 5}}}),
]


@pytest.mark.parametrize(("body", "want"), [c[1:] for c in DEFAULT_CASES], ids=[c[0] for c in DEFAULT_CASES])
def test_apply_defaults(body: S, want: S) -> None:
    obj = cr(**copy.deepcopy(body))
    apply_defaults(DEFAULTED, obj)
    assert obj == cr(**want)


def test_default_values_are_copies() -> None:
    schema = obj_schema({"spec": obj_schema({"tags": {"type": "array", "default": ["a"]}})})
    one, two = cr(spec={}), cr(spec={})
    apply_defaults(schema, one)
    apply_defaults(schema, two)
    one["spec"]["tags"].append("b")
    assert two["spec"]["tags"] == ["a"]


# ---- validation -----------------------------------------------------------------------

def spec_schema(**props: S) -> S:
    return obj_schema({"spec": obj_schema(props)})


def messages(schema: S, spec: Any) -> list[str]:
    return [f"{c.field}: {c.message}" for c in validate(schema, cr(spec=spec), "Widget")]


INT = {"type": "integer"}
VALIDATE_CASES: list[tuple[str, S, Any, list[str]]] = [
    ("valid", spec_schema(replicas=INT), {"replicas": 2}, []),
    ("type-integer-string", spec_schema(replicas=INT), {"replicas": "two"},
     ['spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"']),
    ("type-integer-float", spec_schema(replicas=INT), {"replicas": 1.5},
     ['spec.replicas: Invalid value: "number": spec.replicas in body must be of type integer: "number"']),
    ("type-integer-integral-float", spec_schema(replicas=INT), {"replicas": 2.0}, []),
    ("type-integer-bool", spec_schema(replicas=INT), {"replicas": True},
     ['spec.replicas: Invalid value: "boolean": spec.replicas in body must be of type integer: "boolean"']),
    ("type-number-int", spec_schema(ratio={"type": "number"}), {"ratio": 3}, []),
    ("type-string", spec_schema(name={"type": "string"}), {"name": 5},
     ['spec.name: Invalid value: "integer": spec.name in body must be of type string: "integer"']),
    ("type-boolean", spec_schema(on={"type": "boolean"}), {"on": "yes"},
     ['spec.on: Invalid value: "string": spec.on in body must be of type boolean: "string"']),
    ("type-object", spec_schema(o={"type": "object"}), {"o": []},
     ['spec.o: Invalid value: "array": spec.o in body must be of type object: "array"']),
    ("type-array", spec_schema(a={"type": "array"}), {"a": {}},
     ['spec.a: Invalid value: "object": spec.a in body must be of type array: "object"']),
    ("null-not-nullable", spec_schema(name={"type": "string"}), {"name": None},
     ['spec.name: Invalid value: "null": spec.name in body must be of type string: "null"']),
    ("null-nullable", spec_schema(name={"type": "string", "nullable": True}), {"name": None}, []),
    ("int-or-string-int", spec_schema(port={"x-kubernetes-int-or-string": True}), {"port": 80}, []),
    ("int-or-string-string", spec_schema(port={"x-kubernetes-int-or-string": True}), {"port": "http"}, []),
    ("int-or-string-bool", spec_schema(port={"x-kubernetes-int-or-string": True}), {"port": False},
     ['spec.port: Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean"']),
    ("enum", spec_schema(mode={"type": "string", "enum": ["a", "b"]}), {"mode": "x"},
     ['spec.mode: Unsupported value: "x": supported values: "a", "b"']),
    ("enum-int", spec_schema(n={"type": "integer", "enum": [1, 2]}), {"n": 3},
     ['spec.n: Unsupported value: 3: supported values: "1", "2"']),
    ("required", spec_schema(replicas=INT) | {"required": ["spec"]}, None, []),
    ("minimum", spec_schema(replicas={"type": "integer", "minimum": 1}), {"replicas": 0},
     ["spec.replicas: Invalid value: 0: spec.replicas in body should be greater than or equal to 1"]),
    ("exclusive-minimum", spec_schema(r={"type": "number", "minimum": 1, "exclusiveMinimum": True}), {"r": 1},
     ["spec.r: Invalid value: 1: spec.r in body should be greater than 1"]),
    ("maximum", spec_schema(r={"type": "integer", "maximum": 10}), {"r": 11},
     ["spec.r: Invalid value: 11: spec.r in body should be less than or equal to 10"]),
    ("exclusive-maximum", spec_schema(r={"type": "number", "maximum": 2.5, "exclusiveMaximum": True}), {"r": 2.5},
     ["spec.r: Invalid value: 2.5: spec.r in body should be less than 2.5"]),
    ("multiple-of", spec_schema(r={"type": "integer", "multipleOf": 4}), {"r": 6},
     ["spec.r: Invalid value: 6: spec.r in body should be a multiple of 4"]),
    ("multiple-of-float", spec_schema(r={"type": "number", "multipleOf": 0.1}), {"r": 0.3}, []),
    ("multiple-of-float-bad", spec_schema(r={"type": "number", "multipleOf": 0.5}), {"r": 0.7},
     ["spec.r: Invalid value: 0.7: spec.r in body should be a multiple of 0.5"]),
    ("max-length", spec_schema(name={"type": "string", "maxLength": 3}), {"name": "abcd"},
     ["spec.name: Too long: may not be more than 3 bytes"]),
    ("max-length-1", spec_schema(name={"type": "string", "maxLength": 1}), {"name": "ab"},
     ["spec.name: Too long: may not be more than 1 byte"]),
    ("min-length", spec_schema(name={"type": "string", "minLength": 2}), {"name": "a"},
     ['spec.name: Invalid value: "a": spec.name in body should be at least 2 chars long']),
    ("pattern", spec_schema(name={"type": "string", "pattern": "^[a-z]+$"}), {"name": "A1"},
     ["spec.name: Invalid value: \"A1\": spec.name in body should match '^[a-z]+$'"]),
    ("pattern-unanchored", spec_schema(name={"type": "string", "pattern": "[0-9]"}), {"name": "a1b"}, []),
    ("format-date-time", spec_schema(ts={"type": "string", "format": "date-time"}), {"ts": "yesterday"},
     ['spec.ts: Invalid value: "yesterday": spec.ts in body must be of type date-time: "yesterday"']),
    ("format-date-time-ok", spec_schema(ts={"type": "string", "format": "date-time"}),
     {"ts": "2024-01-02T03:04:05Z"}, []),
    ("format-int32-not-enforced", spec_schema(n={"type": "integer", "format": "int32"}), {"n": 2**40}, []),
    ("format-unknown-ignored", spec_schema(s={"type": "string", "format": "whatever"}), {"s": "x"}, []),
    ("min-items", spec_schema(a={"type": "array", "minItems": 2}), {"a": [1]},
     ["spec.a: Invalid value: 1: spec.a in body should have at least 2 items"]),
    ("max-items", spec_schema(a={"type": "array", "maxItems": 2}), {"a": [1, 2, 3]},
     ["spec.a: Too many: 3: must have at most 2 items"]),
    ("unique-items", spec_schema(a={"type": "array", "uniqueItems": True}), {"a": [1, 1]},
     ['spec.a: Invalid value: "": spec.a in body shouldn\'t contain duplicates']),
    ("min-properties", spec_schema(o={"type": "object", "minProperties": 2,
                                      "additionalProperties": {"type": "string"}}), {"o": {"a": "1"}},
     ["spec.o: Invalid value: 1: spec.o in body should have at least 2 properties"]),
    ("max-properties", spec_schema(o={"type": "object", "maxProperties": 1,
                                      "additionalProperties": {"type": "string"}}), {"o": {"a": "1", "b": "2"}},
     ["spec.o: Too many: 2: must have at most 1 item"]),
    ("nested-array-path", spec_schema(items={"type": "array", "items": obj_schema(
        {"name": {"type": "string"}}, required=["name"])}), {"items": [{"name": "a"}, {}]},
     ["spec.items[1].name: Required value"]),
    ("nested-array-type", spec_schema(items={"type": "array", "items": obj_schema({"name": {"type": "string"}})}),
     {"items": [{"name": 1}]},
     ['spec.items[0].name: Invalid value: "integer": spec.items[0].name in body must be of type string: "integer"']),
    ("additional-properties-path", spec_schema(m={"type": "object", "additionalProperties": INT}), {"m": {"k": "v"}},
     ['spec.m.k: Invalid value: "string": spec.m.k in body must be of type integer: "string"']),
    ("required-nested", spec_schema(a=obj_schema({"b": INT}, required=["b", "c"])), {"a": {}},
     ["spec.a.b: Required value", "spec.a.c: Required value"]),
    ("list-type-set", spec_schema(t={"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"}),
     {"t": ["a", "b", "a"]}, ['spec.t[2]: Duplicate value: "a"']),
    ("list-type-map", spec_schema(p={"type": "array", "x-kubernetes-list-type": "map",
                                     "x-kubernetes-list-map-keys": ["name"],
                                     "items": obj_schema({"name": {"type": "string"}, "v": INT})}),
     {"p": [{"name": "a", "v": 1}, {"name": "a", "v": 2}]}, ['spec.p[1]: Duplicate value: {"name":"a"}']),
    ("any-of", spec_schema(x={"anyOf": [{"type": "integer"}, {"type": "string", "maxLength": 1}]}),
     {"x": "abc"}, ['<nil>: Invalid value: "": "spec.x" must validate at least one schema (anyOf)',
                    "spec.x: Too long: may not be more than 1 byte"]),
    ("any-of-ok", spec_schema(x={"anyOf": [{"type": "integer"}, {"type": "string"}]}), {"x": "abc"}, []),
    ("one-of-two-valid", spec_schema(x={"oneOf": [{"minimum": 1}, {"maximum": 10}]}), {"x": 5},
     ['<nil>: Invalid value: "": "spec.x" must validate one and only one schema (oneOf). '
      "Found 2 valid alternatives"]),
    ("all-of", spec_schema(x={"allOf": [{"minimum": 1}, {"maximum": 3}]}), {"x": 5},
     ["spec.x: Invalid value: 5: spec.x in body should be less than or equal to 3",
      '<nil>: Invalid value: "": "spec.x" must validate all the schemas (allOf)']),
    ("not", spec_schema(x={"type": "string", "not": {"enum": ["bad"]}}), {"x": "bad"},
     ['<nil>: Invalid value: "": "spec.x" must not validate the schema (not)']),
    ("embedded-needs-kind", spec_schema(t=obj_schema({}, **{"x-kubernetes-embedded-resource": True,
                                                           "x-kubernetes-preserve-unknown-fields": True})),
     {"t": {"apiVersion": "v1"}}, ["spec.t.kind: Required value: must not be empty"]),
    ("cel-ignored", spec_schema(x={"type": "integer", "x-kubernetes-validations": [{"rule": "self > 100"}]}),
     {"x": 1}, []),
]


@pytest.mark.parametrize(("schema", "spec", "want"), [c[1:] for c in VALIDATE_CASES],
                         ids=[c[0] for c in VALIDATE_CASES])
def test_validate(schema: S, spec: Any, want: list[str]) -> None:
    if spec is None:  # the required case: no spec at all
        assert [f"{c.field}: {c.message}" for c in validate(schema, cr(), "Widget")] == ["spec: Required value"]
        return
    assert messages(schema, spec) == want


def test_validate_reasons() -> None:
    schema = spec_schema(n={"type": "integer", "minimum": 1}, s={"type": "string", "maxLength": 1},
                         e={"type": "string", "enum": ["a"]}, t=INT)
    causes = validate(schema | {"required": ["spec"]}, cr(spec={"n": 0, "s": "ab", "e": "b", "t": "x"}), "Widget")
    assert {c.field: c.reason for c in causes} == {
        "spec.n": "FieldValueInvalid", "spec.s": "FieldValueTooLong",
        "spec.e": "FieldValueNotSupported", "spec.t": "FieldValueTypeInvalid"}


def test_validate_metadata_only_name_constraints() -> None:
    schema = obj_schema({"metadata": obj_schema({"name": {"type": "string", "maxLength": 3}})})
    causes = validate(schema, cr(), "Widget")
    assert causes == []
    obj = cr()
    obj["metadata"] = {"name": "toolong", "labels": {"a": "b"}}
    assert [f"{c.field}: {c.message}" for c in validate(schema, obj, "Widget")] == [
        "metadata.name: Too long: may not be more than 3 bytes"]


# ---- schema_for_info and value rendering -------------------------------------------------

SCHEMA = obj_schema({"spec": {"type": "object"}})
CRD_V1 = {"spec": {"versions": [{"name": "v1alpha1", "served": False},
                                {"name": "v1", "served": True, "schema": {"openAPIV3Schema": SCHEMA}}]}}
CRD_OLD = {"spec": {"version": "v1", "validation": {"openAPIV3Schema": SCHEMA}, "versions": [{"name": "v1"}]}}

INFO_CASES = [
    ("info-shape", {"crd": CRD_V1, "version": CRD_V1["spec"]["versions"][1]}, SCHEMA),
    ("raw-crd-first-served", CRD_V1, SCHEMA),
    ("old-style-validation", {"crd": CRD_OLD, "version": {"name": "v1"}}, SCHEMA),
    ("raw-old-style", CRD_OLD, SCHEMA),
    ("no-schema", {"crd": {"spec": {}}, "version": {"name": "v1"}}, None),
    ("none", None, None),
]


@pytest.mark.parametrize(("field", "want"), [c[1:] for c in INFO_CASES], ids=[c[0] for c in INFO_CASES])
def test_schema_for_info(field: S | None, want: S | None) -> None:
    assert schema_for_info(field) == want


@pytest.mark.parametrize(("value", "want"), [
    (1.0, "1"), (1.5, "1.5"), (1e6, "1e+06"), (123456.0, "123456"), (0.00001, "1e-05"), (-2.25, "-2.25"),
], ids=["integral", "fraction", "exp-large", "below-exp", "exp-small", "negative"])
def test_go_float(value: float, want: str) -> None:
    assert go_float(value) == want


@pytest.mark.parametrize(("value", "want"), [
    ("a\"b", '"a\\"b"'), (True, "true"), (None, "null"), (3, "3"), ({"b": 1, "a": [1.0]}, '{"a":[1],"b":1}'),
], ids=["string", "bool", "null", "int", "object"])
def test_go_value(value: Any, want: str) -> None:
    assert go_value(value) == want
