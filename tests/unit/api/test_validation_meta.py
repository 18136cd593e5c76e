"""Metadata and name-syntax validation: exact Kubernetes field paths and messages."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubeling.api import errors
from kubeling.api.validation import validate
from kubeling.api.validation.labels import is_label_value, is_port_name, is_qualified_name
from tests.unit.api.validation_cases import causes, resource_info

SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                 "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
                 "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
DNS1035_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
               "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
               "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
             "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
             "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
QUALIFIED_NAME_PART = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
                       "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used "
                       "for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
                   "and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
                   "'12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")


def cm(**meta: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"namespace": "default", **meta}}


@pytest.mark.parametrize(("key", "obj", "expected"), [
    ("configmaps", cm(), ["metadata.name: Required value: name or generateName is required"]),
    ("configmaps", cm(generateName="gen-"), []),
    ("configmaps", cm(name="Bad_Name"), [f'metadata.name: Invalid value: "Bad_Name": {SUBDOMAIN_MSG}']),
    ("configmaps", cm(generateName="Bad-"), [f'metadata.generateName: Invalid value: "Bad-": {SUBDOMAIN_MSG}']),
    ("configmaps", cm(name="a" * 254), ['metadata.name: Invalid value: "' + "a" * 254
                                        + '": must be no more than 253 characters']),
    ("configmaps", {"metadata": {"name": "x"}}, ["metadata.namespace: Required value"]),
    ("namespaces", {"metadata": {"name": "a.b"}}, ['metadata.name: Invalid value: "a.b": must not contain dots']),
    ("namespaces", {"metadata": {"name": "A"}}, [f'metadata.name: Invalid value: "A": {LABEL_MSG}']),
    ("namespaces", {"metadata": {"name": "ok", "namespace": "x"}},
     ["metadata.namespace: Forbidden: not allowed on this type"]),
    ("services", {"metadata": {"name": "1abc", "namespace": "d"}, "spec": {"ports": [{"port": 80}]}},
     [f'metadata.name: Invalid value: "1abc": {DNS1035_MSG}']),
    ("configmaps", cm(name="x", labels={"bad key!": "v"}),
     [f'metadata.labels: Invalid value: "bad key!": {QUALIFIED_NAME_PART}']),
    ("configmaps", cm(name="x", labels={"k": "bad value!"}),
     [f'metadata.labels: Invalid value: "bad value!": {LABEL_VALUE_MSG}']),
    ("configmaps", cm(name="x", labels={"k": "v" * 64}),
     ['metadata.labels: Invalid value: "' + "v" * 64 + '": must be no more than 63 characters']),
    ("configmaps", cm(name="x", labels={"/k": "v"}),
     ['metadata.labels: Invalid value: "/k": prefix part must be non-empty']),
    ("configmaps", cm(name="x", annotations={"a/b/c": "v"}),
     ['metadata.annotations: Invalid value: "a/b/c": a qualified name must consist of alphanumeric characters, '
      "'-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  "
      "or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional "
      "DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]),
    ("configmaps", cm(name="x", annotations={"big": "x" * (256 * 1024)}),
     ["metadata.annotations: Too long: may not be more than 262144 bytes"]),
    ("configmaps", cm(name="x", annotations={"Example.COM/Key": "ok"}), []),
], ids=["name-required", "generate-name", "bad-subdomain", "bad-generate-name", "name-too-long",
        "namespace-required", "namespace-dots", "namespace-uppercase", "cluster-scoped-namespace",
        "service-dns1035", "label-key", "label-value", "label-value-long", "label-empty-prefix",
        "annotation-key", "annotation-size", "annotation-case-insensitive"])
def test_metadata(key: str, obj: dict[str, Any], expected: list[str]) -> None:
    assert causes(key, obj) == expected


@pytest.mark.parametrize("field", ["name", "namespace", "uid", "creationTimestamp"])
def test_identity_fields_are_immutable(field: str) -> None:
    old = cm(name="x", uid="u1", creationTimestamp="2024-01-01T00:00:00Z")
    new = copy.deepcopy(old)
    new["metadata"][field] = "other"
    out = causes("configmaps", new, old)
    assert f'metadata.{field}: Invalid value: "other": field is immutable' in out


def test_custom_resources_get_metadata_validation_only() -> None:
    crd_info = copy.copy(resource_info("configmaps"))
    crd_info.crd = {"spec": {}}
    crd_info.resource, crd_info.group = "widgets", "example.com"
    obj = {"metadata": {"name": "Bad", "namespace": "d"}, "data": {"bad key!": 1}}
    assert [c.field for c in validate(crd_info, obj)] == ["metadata.name"]


def test_invalid_renders_like_kubernetes() -> None:
    info = resource_info("configmaps")
    err = errors.Invalid(info.kind, "", validate(info, cm()), info.group)
    assert err.message == 'ConfigMap "" is invalid: metadata.name: Required value: name or generateName is required'


@pytest.mark.parametrize(("name", "errs"), [
    ("http", []),
    ("a" * 16, ["must be no more than 15 characters"]),
    ("HTTP", ["must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
              "must contain at least one letter (a-z)"]),
    ("123", ["must contain at least one letter (a-z)"]),
    ("a--b", ["must not contain consecutive hyphens"]),
    ("-ab", ["must not begin or end with a hyphen"]),
], ids=["ok", "long", "upper", "digits", "double-hyphen", "edge-hyphen"])
def test_port_names(name: str, errs: list[str]) -> None:
    assert is_port_name(name) == errs


def test_qualified_name_and_label_value_accept_valid() -> None:
    assert is_qualified_name("app.kubernetes.io/name") == []
    assert is_qualified_name("a" * 64)[0] == "name part must be no more than 63 characters"
    assert is_label_value("") == []


def test_owner_references() -> None:
    refs = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u", "controller": True},
            {"apiVersion": "", "kind": "ReplicaSet", "name": "rs2", "uid": ""}]
    assert causes("configmaps", cm(name="x", ownerReferences=refs)) == [
        'metadata.ownerReferences[1].apiVersion: Invalid value: "": version must not be empty',
        'metadata.ownerReferences[1].uid: Invalid value: "": must not be empty',
    ]
