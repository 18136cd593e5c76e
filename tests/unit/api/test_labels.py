"""Label selectors: apimachinery's grammar, matching and error messages."""

from __future__ import annotations

from typing import Any

import pytest

from kubeling.api.errors import StatusError
from kubeling.api.labels import (
    format_label_selector,
    format_label_selector_or_none,
    parse_selector,
    selector_from_label_selector,
)

LABELS = {"app": "web", "tier": "front", "n": "7"}


@pytest.mark.parametrize(("text", "canonical", "matches"), [
    ("", "", True),
    ("app=web", "app=web", True),
    ("app==web", "app==web", True),
    ("app!=web", "app!=web", False),
    ("app!=db", "app!=db", True),
    ("missing!=x", "missing!=x", True),
    ("app in (db,web)", "app in (db,web)", True),
    ("app in (web,db)", "app in (db,web)", True),
    ("app notin (web)", "app notin (web)", False),
    ("missing notin (web)", "missing notin (web)", True),
    ("app", "app", True),
    ("!app", "!app", False),
    ("!missing", "!missing", True),
    ("tier=front,app=web", "app=web,tier=front", True),
    ("  app = web ,  tier in ( front ) ", "app=web,tier in (front)", True),
    ("app=", "app=", False),
    ("x in ()", "x in ()", False),
    ("n>5", "n>5", True),
    ("n<5", "n<5", False),
    ("example.com/role=x", "example.com/role=x", False),
    ("in=notin", "in=notin", False),
], ids=lambda v: repr(v) if isinstance(v, str) else None)
def test_parse_and_match(text: str, canonical: str, matches: bool) -> None:
    sel = parse_selector(text)
    assert str(sel) == canonical
    assert sel.matches(LABELS) is matches
    assert sel.empty is (canonical == "")


VALUE_RE = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?"
NAME_RE = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"


@pytest.mark.parametrize(("text", "message"), [
    ("app=web,", "found '', expected: identifier after ','"),
    ("app=a=b", "found '=', expected: ',' or 'end of string'"),
    ("app web", "unable to parse requirement: found 'web', expected: in, notin, =, ==, !=, gt, lt"),
    ("app in web", "unable to parse requirement: found 'web' expected: '('"),
    ("app in (a b)", "unable to parse requirement: found 'b', expected: ',' or ')'"),
    (",app", "found ',', expected: !, identifier, or 'end of string'"),
    ("app=a b", "found 'b', expected: ',' or 'end of string'"),
    ("Foo_=x", "unable to parse requirement: <nil>: Invalid value: \"Foo_\": name part must consist of "
               "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character "
               f"(e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '{NAME_RE}')"),
    ("app=-x", "unable to parse requirement: values[0][app]: Invalid value: \"-x\": a valid label must be an "
               "empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
               f"an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for "
               f"validation is '{VALUE_RE}')"),
    ("n>x", "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value "
            "must be an integer"),
], ids=["trailing-comma", "double-equals-value", "missing-operator", "in-without-parens", "in-space",
        "leading-comma", "space-in-value", "bad-key", "bad-value", "gt-not-int"])
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(StatusError) as err:
        parse_selector(text)
    assert err.value.code == 400 and err.value.reason == "BadRequest"
    assert err.value.message == message


@pytest.mark.parametrize(("ls", "text", "labels", "matches"), [
    (None, "", {"a": "b"}, False),
    ({}, "", {"a": "b"}, True),
    ({"matchLabels": {"app": "web"}}, "app=web", LABELS, True),
    ({"matchLabels": {"tier": "front", "app": "web"},
      "matchExpressions": [{"key": "env", "operator": "In", "values": ["b", "a"]}]},
     "app=web,env in (a,b),tier=front", LABELS, False),
    ({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]},
                           {"key": "app", "operator": "Exists"}, {"key": "gone", "operator": "DoesNotExist"}]},
     "app,env notin (prod),!gone", LABELS, True),
], ids=["nil-matches-nothing", "empty-matches-everything", "match-labels", "mixed", "expressions"])
def test_label_selector_dicts(ls: dict[str, Any] | None, text: str, labels: dict[str, str], matches: bool) -> None:
    assert format_label_selector(ls) == text
    assert selector_from_label_selector(ls).matches(labels) is matches


def test_label_selector_invalid() -> None:
    bad = {"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]}
    with pytest.raises(StatusError) as err:
        selector_from_label_selector(bad)
    assert err.value.message == '"Equals" is not a valid label selector operator'
    assert format_label_selector_or_none(bad) == "<error>"
    assert format_label_selector_or_none({}) == "<none>"
    with pytest.raises(StatusError):
        selector_from_label_selector({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]})


def test_matches_none_labels() -> None:
    assert parse_selector("!a").matches(None)
    assert not parse_selector("a").matches(None)
