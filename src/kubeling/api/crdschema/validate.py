"""OpenAPI v3 validation of custom resources, worded the way kube-apiserver words it.

Kube validates a custom resource with kube-openapi's `validate` package and then
rewraps each result as a `field.Error`, so a client sees two layers: the field
error type (`Invalid value`, `Required value`, `Unsupported value`, `Too long`,
`Too many`) and, inside it, go-openapi's sentence (`spec.replicas in body should be
greater than or equal to 1`). Tools and e2e tests grep for these exact strings, so
this module reproduces both layers, Go value formatting included (see `_values`).

Deliberate kube behaviours:
* "integer" accepts an integral float (`1.0`), as kube does after JSON decoding;
  booleans are never numbers;
* `format` int32/int64/float/double bounds are not enforced (kube does not either);
  string formats are checked lightly (date-time, date, uuid, ipv4, ipv6, cidr, ...);
* anyOf/oneOf/allOf/not failures are reported at field `<nil>` with the quoted path,
  like kube's composite errors;
* `x-kubernetes-list-type` set/map duplicates and embedded-resource apiVersion/kind
  are checked after the OpenAPI pass, as apiextensions' strategy does;
* `metadata` at the root is validated only for `name`/`generateName` constraints
  the schema declares: the API server validates ObjectMeta itself.

`x-kubernetes-validations` (CEL rules) are out of scope and ignored.
"""

from __future__ import annotations

import math
from typing import Any

from kubeling.api.crdschema._formats import check_format, compile_pattern
from kubeling.api.crdschema._values import go_float, go_quote, go_value, is_number, json_equal, json_type
from kubeling.api.errors import Cause

Schema = dict[str, Any]


def validate(schema: Schema, obj: dict[str, Any], kind: str = "") -> list[Cause]:
    """All schema causes against a custom resource, in kube's order and wording.

    `kind` is the resource's kind; kube's schema messages never name it, it is kept for
    callers that build the 422 (`errors.Invalid(kind, ...)`) from the same call site.
    """
    v = _Validator(kind)
    root = dict(schema or {})
    props = dict(root.get("properties") or {})
    meta_schema = props.pop("metadata", None)
    root["properties"] = props
    for key in ("apiVersion", "kind"):
        props.pop(key, None)
    body = {k: val for k, val in obj.items() if k not in ("apiVersion", "kind", "metadata")}
    root["required"] = [r for r in root.get("required") or [] if r not in ("apiVersion", "kind", "metadata")]
    v.check(body, root, "")
    if isinstance(meta_schema, dict) and isinstance(obj.get("metadata"), dict):
        v.check_metadata(obj["metadata"], meta_schema, "metadata")
    v.embedded(obj, schema or {}, "", root=True)
    v.list_types(obj, schema or {}, "")
    return v.causes


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _num(limit: Any) -> str:
    """A schema bound as Go prints a float64 with %v."""
    return go_float(float(limit))


class _Validator:
    """One validation pass; collects causes in kube-openapi's validator order."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.causes: list[Cause] = []

    # ---- cause constructors ------------------------------------------------------

    def _invalid(self, path: str, value: Any, detail: str, reason: str = "FieldValueInvalid") -> None:
        self.causes.append(Cause(reason, f"Invalid value: {go_value(value)}: {detail}", path or "<nil>"))

    def _composite(self, path: str, detail: str) -> None:
        self.causes.append(Cause("FieldValueInvalid", f'Invalid value: "": {go_quote(path)} {detail}', "<nil>"))

    def _too_many(self, path: str, actual: int, limit: int) -> None:
        noun = "item" if limit == 1 else "items"
        self.causes.append(Cause("FieldValueTooMany", f"Too many: {actual}: must have at most {limit} {noun}", path))

    # ---- the OpenAPI pass --------------------------------------------------------

    def check(self, value: Any, schema: Schema, path: str) -> None:
        if not isinstance(schema, dict) or not schema:
            return
        if not self._type(value, schema, path):
            return
        if value is None:
            return
        self._composition(value, schema, path)
        if isinstance(value, str):
            self._string(value, schema, path)
        elif is_number(value):
            self._number(value, schema, path)
        elif isinstance(value, list):
            self._array(value, schema, path)
        self._enum(value, schema, path)
        if isinstance(value, dict):
            self._object(value, schema, path)

    def _types(self, schema: Schema) -> list[str]:
        if schema.get("x-kubernetes-int-or-string"):
            return ["integer", "string"]
        declared = schema.get("type")
        if isinstance(declared, list):
            return [str(t) for t in declared]
        return [declared] if declared else []

    def _type(self, value: Any, schema: Schema, path: str) -> bool:
        types = self._types(schema)
        if not types:
            return True
        wanted = ",".join(types)
        if value is None:
            if schema.get("nullable") or "null" in types:
                return True
            self._invalid(path, "null", f'{path} in body must be of type {wanted}: "null"',
                          "FieldValueTypeInvalid")
            return False
        actual = json_type(value)
        ok = actual in types \
            or (actual == "number" and "integer" in types and float(value).is_integer()) \
            or (actual == "integer" and "number" in types)
        if not ok:
            self._invalid(path, actual, f'{path} in body must be of type {wanted}: "{actual}"',
                          "FieldValueTypeInvalid")
        return ok

    def _passes(self, value: Any, schema: Schema, path: str) -> list[Cause]:
        sub = _Validator(self.kind)
        sub.check(value, schema, path)
        return sub.causes

    def _composition(self, value: Any, schema: Schema, path: str) -> None:
        any_of = schema.get("anyOf") or []
        if any_of:
            results = [self._passes(value, s, path) for s in any_of]
            if all(results):
                self._composite(path, "must validate at least one schema (anyOf)")
                self.causes.extend(_best_failure(results, path))
        one_of = schema.get("oneOf") or []
        if one_of:
            results = [self._passes(value, s, path) for s in one_of]
            valid = sum(1 for r in results if not r)
            if valid == 0:
                self._composite(path, "must validate one and only one schema (oneOf). Found none valid")
                self.causes.extend(_best_failure(results, path))
            elif valid > 1:
                self._composite(path, f"must validate one and only one schema (oneOf). "
                                      f"Found {valid} valid alternatives")
        all_of = schema.get("allOf") or []
        if all_of:
            results = [self._passes(value, s, path) for s in all_of]
            for r in results:
                self.causes.extend(r)
            failed = sum(1 for r in results if r)
            if failed:
                extra = ". None validated" if failed == len(results) else ""
                self._composite(path, f"must validate all the schemas (allOf){extra}")
        not_schema = schema.get("not")
        if isinstance(not_schema, dict) and not self._passes(value, not_schema, path):
            self._composite(path, "must not validate the schema (not)")

    def _string(self, value: str, schema: Schema, path: str) -> None:
        max_length, min_length = schema.get("maxLength"), schema.get("minLength")
        if max_length is not None and len(value) > max_length:
            unit = "byte" if max_length == 1 else "bytes"
            self.causes.append(Cause("FieldValueTooLong", f"Too long: may not be more than {max_length} {unit}",
                                     path))
        if min_length is not None and len(value) < min_length:
            self._invalid(path, value, f"{path} in body should be at least {min_length} chars long")
        pattern = schema.get("pattern")
        if pattern and not _matches(pattern, value):
            self._invalid(path, value, f"{path} in body should match '{pattern}'")
        fmt = schema.get("format")
        if fmt and not check_format(fmt, value):
            self._invalid(path, value, f'{path} in body must be of type {fmt}: {go_quote(value)}',
                          "FieldValueTypeInvalid")

    def _number(self, value: int | float, schema: Schema, path: str) -> None:
        multiple = schema.get("multipleOf")
        if is_number(multiple) and multiple > 0 and not _is_multiple(value, multiple):
            self._invalid(path, value, f"{path} in body should be a multiple of {_num(multiple)}")
        maximum = schema.get("maximum")
        if is_number(maximum):
            if schema.get("exclusiveMaximum") and value >= maximum:
                self._invalid(path, value, f"{path} in body should be less than {_num(maximum)}")
            elif value > maximum:
                self._invalid(path, value, f"{path} in body should be less than or equal to {_num(maximum)}")
        minimum = schema.get("minimum")
        if is_number(minimum):
            if schema.get("exclusiveMinimum") and value <= minimum:
                self._invalid(path, value, f"{path} in body should be greater than {_num(minimum)}")
            elif value < minimum:
                self._invalid(path, value,
                              f"{path} in body should be greater than or equal to {_num(minimum)}")

    def _array(self, value: list[Any], schema: Schema, path: str) -> None:
        min_items, max_items = schema.get("minItems"), schema.get("maxItems")
        if min_items is not None and len(value) < min_items:
            self._invalid(path, len(value), f"{path} in body should have at least {min_items} items")
        if max_items is not None and len(value) > max_items:
            self._too_many(path, len(value), max_items)
        if schema.get("uniqueItems") and _has_duplicates(value):
            self._invalid(path, "", f"{path} in body shouldn't contain duplicates")
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                self.check(item, items, f"{path}[{i}]")

    def _enum(self, value: Any, schema: Schema, path: str) -> None:
        enum = schema.get("enum")
        if not enum or any(json_equal(value, e) for e in enum):
            return
        allowed = ", ".join(go_quote(e if isinstance(e, str) else go_value(e)) for e in enum)
        self.causes.append(Cause("FieldValueNotSupported",
                                 f"Unsupported value: {go_value(value)}: supported values: {allowed}", path))

    def _object(self, value: dict[str, Any], schema: Schema, path: str) -> None:
        min_props, max_props = schema.get("minProperties"), schema.get("maxProperties")
        if min_props is not None and len(value) < min_props:
            self._invalid(path, len(value), f"{path} in body should have at least {min_props} properties")
        if max_props is not None and len(value) > max_props:
            self._too_many(path, len(value), max_props)
        for name in schema.get("required") or []:
            if name not in value:
                self.causes.append(Cause("FieldValueRequired", "Required value", _join(path, name)))
        props: dict[str, Schema] = schema.get("properties") or {}
        for name, prop in props.items():
            if name in value:
                self.check(value[name], prop, _join(path, name))
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for name, item in value.items():
                if name not in props:
                    self.check(item, extra, _join(path, name))

    # ---- metadata, embedded resources, list types ---------------------------------

    def check_metadata(self, meta: dict[str, Any], schema: Schema, path: str) -> None:
        """Only name/generateName: the schema may restrict nothing else in ObjectMeta."""
        props: dict[str, Schema] = schema.get("properties") or {}
        for key in ("name", "generateName"):
            if key in props and isinstance(meta.get(key), str):
                self.check(meta[key], props[key], _join(path, key))

    def embedded(self, value: Any, schema: Schema, path: str, *, root: bool = False) -> None:
        """Nested x-kubernetes-embedded-resource objects need apiVersion and kind."""
        if not isinstance(schema, dict):
            return
        if isinstance(value, dict):
            if schema.get("x-kubernetes-embedded-resource") and not root:
                for key in ("apiVersion", "kind"):
                    if not value.get(key):
                        self.causes.append(Cause("FieldValueRequired", "Required value: must not be empty",
                                                 _join(path, key)))
            props: dict[str, Schema] = schema.get("properties") or {}
            extra = schema.get("additionalProperties")
            for key, item in value.items():
                if root and key == "metadata":
                    continue
                child = props.get(key) if key in props else (extra if isinstance(extra, dict) else None)
                if child is not None:
                    self.embedded(item, child, _join(path, key))
        elif isinstance(value, list) and isinstance(schema.get("items"), dict):
            for i, item in enumerate(value):
                self.embedded(item, schema["items"], f"{path}[{i}]")

    def list_types(self, value: Any, schema: Schema, path: str) -> None:
        """x-kubernetes-list-type set: unique items; map: unique x-kubernetes-list-map-keys."""
        if not isinstance(schema, dict):
            return
        if isinstance(value, list):
            list_type = schema.get("x-kubernetes-list-type")
            if list_type == "set":
                self._duplicates(path, list(enumerate(value)))
            elif list_type == "map":
                keys = schema.get("x-kubernetes-list-map-keys") or []
                self._duplicates(path, [(i, {k: item[k] for k in keys if k in item})
                                        for i, item in enumerate(value) if isinstance(item, dict)])
            items = schema.get("items")
            if isinstance(items, dict):
                for i, item in enumerate(value):
                    self.list_types(item, items, f"{path}[{i}]")
        elif isinstance(value, dict):
            props: dict[str, Schema] = schema.get("properties") or {}
            extra = schema.get("additionalProperties")
            for key, item in value.items():
                child = props.get(key) if key in props else (extra if isinstance(extra, dict) else None)
                if child is not None:
                    self.list_types(item, child, _join(path, key))

    def _duplicates(self, path: str, keyed: list[tuple[int, Any]]) -> None:
        seen: list[Any] = []
        for index, key in keyed:
            if any(json_equal(key, s) for s in seen):
                self.causes.append(Cause("FieldValueDuplicate", f"Duplicate value: {go_value(key)}",
                                         f"{path}[{index}]"))
            else:
                seen.append(key)


def _is_multiple(value: int | float, factor: int | float) -> bool:
    """kube-openapi's MultipleOf: exact for integers, 1e-9 relative tolerance for floats."""
    if isinstance(value, int) and isinstance(factor, int):
        return value % factor == 0
    quotient = (1 / factor) * value if factor < 1 else value / factor
    if math.isnan(quotient) or math.isinf(quotient):
        return False
    nearest = float(math.trunc(quotient))
    if quotient == nearest:
        return True
    return abs(quotient - nearest) / (abs(quotient) + abs(nearest)) < 1e-9


def _best_failure(results: list[list[Cause]], path: str) -> list[Cause]:
    """The alternative kube-openapi reports after a failed anyOf/oneOf: the one that got
    furthest, i.e. the first whose type matched, else the first."""
    for causes in results:
        if not any(c.field == (path or "<nil>") and c.reason == "FieldValueTypeInvalid" for c in causes):
            return causes
    return results[0]


def _has_duplicates(items: list[Any]) -> bool:
    return any(json_equal(a, b) for i, a in enumerate(items) for b in items[i + 1:])


def _matches(pattern: str, value: str) -> bool:
    """Go regexp.MatchString: an unanchored search; an uncompilable pattern matches nothing."""
    compiled = compile_pattern(pattern)
    return compiled is not None and compiled.search(value) is not None
