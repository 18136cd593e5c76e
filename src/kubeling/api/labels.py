"""Label selectors, parsed and matched as apimachinery's `labels` package does.

kubectl passes `-l` straight through as `?labelSelector=`, and controllers send the
string form of a `metav1.LabelSelector`, so both the grammar (including its odd corners:
`a in ()`, `a=`, `!a`, `a>5`) and the error text of a bad selector must be the Go
parser's: clients show the 400 body to the user. The lexer/parser below follow
`k8s.io/apimachinery/pkg/labels/selector.go` token for token; validation messages come
from `util/validation` (`IsQualifiedName`, `IsValidLabelValue`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from kubeling.api.errors import BadRequest, StatusError
from kubeling.api.validation.labels import is_label_value, is_qualified_name

# Operators by their Go `selection.Operator` spelling.
IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS = "in", "notin", "=", "==", "!="
EXISTS, DOES_NOT_EXIST, GT, LT = "exists", "!", "gt", "lt"
_BINARY_OPERATORS = "in, notin, =, ==, !=, gt, lt"

# The key and value syntax checks are validation's (one implementation, Kubernetes' messages).
qualified_name_errors = is_qualified_name
label_value_errors = is_label_value


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- requirements and selectors ------------------------------------------------------------------


@dataclass(frozen=True)
class Requirement:
    """One `key op values` term; `values` is kept sorted, as Go prints it."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        op = self.operator
        if op in (IN, EQUALS, DOUBLE_EQUALS):
            return self.key in labels and labels[self.key] in self.values
        if op in (NOT_IN, NOT_EQUALS):
            return self.key not in labels or labels[self.key] not in self.values
        if op == EXISTS:
            return self.key in labels
        if op == DOES_NOT_EXIST:
            return self.key not in labels
        if op in (GT, LT):
            if self.key not in labels:
                return False
            try:
                have, want = int(labels[self.key]), int(self.values[0])
            except (ValueError, IndexError):
                return False
            return have > want if op == GT else have < want
        return False

    def __str__(self) -> str:
        if self.operator == DOES_NOT_EXIST:
            return "!" + self.key
        if self.operator == EXISTS:
            return self.key
        symbol = {IN: " in ", NOT_IN: " notin ", GT: ">", LT: "<"}.get(self.operator, self.operator)
        joined = ",".join(sorted(self.values))
        if self.operator in (IN, NOT_IN):
            return f"{self.key}{symbol}({joined})"
        return f"{self.key}{symbol}{joined}"


@dataclass(frozen=True)
class Selector:
    """A conjunction of requirements, sorted by key. `nothing` is `labels.Nothing()` (a nil LabelSelector)."""

    requirements: tuple[Requirement, ...] = ()
    nothing: bool = field(default=False)

    @property
    def empty(self) -> bool:
        """True when the selector matches everything (Go's `Selector.Empty()`)."""
        return not self.nothing and not self.requirements

    def matches(self, labels: dict[str, str] | None) -> bool:
        if self.nothing:
            return False
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def _invalid(path: str, value: str, detail: str) -> str:
    return f"{path}: Invalid value: {_quote(value)}: {detail}"


def _aggregate(errs: list[str]) -> str:
    return errs[0] if len(errs) == 1 else "[" + ", ".join(errs) + "]"


def new_requirement(key: str, operator: str, values: list[str]) -> Requirement:
    """`labels.NewRequirement`: validate and build; raises ValueError with Go's aggregate message."""
    errs: list[str] = []
    key_errs = qualified_name_errors(key)
    if key_errs:
        errs.append(_invalid("key", key, "; ".join(key_errs)))
    # Go renders the bad []string with %#v.
    shown = "[]string{" + ", ".join(_quote(v) for v in values) + "}"
    if operator in (IN, NOT_IN) and not values:
        errs.append(f"values: Invalid value: {shown}: for 'in', 'notin' operators, values set can't be empty")
    elif operator in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS) and len(values) != 1:
        errs.append(f"values: Invalid value: {shown}: exact-match compatibility requires one single value")
    elif operator in (EXISTS, DOES_NOT_EXIST) and values:
        errs.append(f"values: Invalid value: {shown}: values set must be empty for exists and does not exist")
    elif operator in (GT, LT):
        if len(values) != 1:
            errs.append(f"values: Invalid value: {shown}: for 'Gt', 'Lt' operators, exactly one value is required")
        for i, v in enumerate(values):
            if not re.fullmatch(r"[+-]?\d+", v):
                errs.append(_invalid(f"values[{i}]", v, "for 'Gt', 'Lt' operators, the value must be an integer"))
    for i, v in enumerate(values):
        value_errs = label_value_errors(v)
        if value_errs:
            errs.append(_invalid(f"values[{i}][{key}]", v, "; ".join(value_errs)))
    if errs:
        raise ValueError(_aggregate(errs))
    return Requirement(key, operator, tuple(sorted(values)))


# --- lexer / parser (selector.go) -----------------------------------------------------------------

_SPECIAL = set("=!(),><")
_WHITESPACE = set(" \t\r\n")
_TOKENS = {")": "CLOSE", ",": "COMMA", "!": "NOT", "==": "DEQ", "=": "EQ", ">": "GT", "in": "IN",
           "<": "LT", "!=": "NEQ", "notin": "NOTIN", "(": "OPEN"}


def _lex(s: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    i, n = 0, len(s)
    while True:
        while i < n and s[i] in _WHITESPACE:
            i += 1
        if i >= n:
            out.append(("EOS", ""))
            return out
        if s[i] in _SPECIAL:
            # Longest run of symbols that still forms a token: "!=" beats "!", "=(" stops at "=".
            buf, last = "", None
            while i < n and s[i] in _SPECIAL:
                buf += s[i]
                if buf in _TOKENS:
                    last = (_TOKENS[buf], buf)
                elif last is not None:
                    break
                i += 1
            out.append(last if last is not None else ("ERROR", f"error expected: keyword found '{buf}'"))
            continue
        start = i
        while i < n and s[i] not in _SPECIAL and s[i] not in _WHITESPACE:
            i += 1
        word = s[start:i]
        out.append((_TOKENS.get(word, "ID"), word))


class _Parser:
    def __init__(self, s: str) -> None:
        self.items = _lex(s)
        self.pos = 0

    def _tok(self, tok: tuple[str, str], values: bool) -> tuple[str, str]:
        kind, lit = tok
        if values and kind in ("IN", "NOTIN"):
            kind = "ID"
        return kind, lit

    def lookahead(self, values: bool = True) -> tuple[str, str]:
        return self._tok(self.items[self.pos], values)

    def consume(self, values: bool = True) -> tuple[str, str]:
        tok = self._tok(self.items[self.pos], values)
        if self.pos < len(self.items) - 1:
            self.pos += 1
        return tok

    def parse(self) -> list[Requirement]:
        reqs: list[Requirement] = []
        while True:
            tok, lit = self.lookahead()
            if tok in ("ID", "NOT"):
                try:
                    reqs.append(self.requirement())
                except ValueError as e:
                    raise ValueError(f"unable to parse requirement: {e}") from None
                t, lit2 = self.consume()
                if t == "EOS":
                    return reqs
                if t == "COMMA":
                    t2, lit3 = self.lookahead()
                    if t2 not in ("ID", "NOT"):
                        raise ValueError(f"found '{lit3}', expected: identifier after ','")
                    continue
                raise ValueError(f"found '{lit2}', expected: ',' or 'end of string'")
            if tok == "EOS":
                return reqs
            raise ValueError(f"found '{lit}', expected: !, identifier, or 'end of string'")

    def requirement(self) -> Requirement:
        operator = ""
        tok, key = self.consume()
        if tok == "NOT":
            operator = DOES_NOT_EXIST
            tok, key = self.consume()
        if tok != "ID":
            raise ValueError(f"found '{key}', expected: identifier")
        key_errs = qualified_name_errors(key)
        if key_errs:
            raise ValueError(_invalid("<nil>", key, "; ".join(key_errs)))
        if self.lookahead()[0] in ("EOS", "COMMA") and operator != DOES_NOT_EXIST:
            operator = EXISTS
        if operator in (EXISTS, DOES_NOT_EXIST):
            return new_requirement(key, operator, [])
        operator = self.operator()
        values = self.set_values() if operator in (IN, NOT_IN) else self.exact_value()
        return new_requirement(key, operator, sorted(values))

    def operator(self) -> str:
        tok, lit = self.consume(values=False)
        ops = {"IN": IN, "EQ": EQUALS, "DEQ": DOUBLE_EQUALS, "GT": GT, "LT": LT, "NOTIN": NOT_IN,
               "NEQ": NOT_EQUALS}
        if tok not in ops:
            raise ValueError(f"found '{lit}', expected: {_BINARY_OPERATORS}")
        return ops[tok]

    def set_values(self) -> set[str]:
        tok, lit = self.consume()
        if tok != "OPEN":
            raise ValueError(f"found '{lit}' expected: '('")
        tok, lit = self.lookahead()
        if tok in ("ID", "COMMA"):
            values = self.identifiers()
            if self.consume()[0] != "CLOSE":
                raise ValueError(f"found '{lit}', expected: ')'")
            return values
        if tok == "CLOSE":
            self.consume()
            return {""}
        raise ValueError(f"found '{lit}', expected: ',', ')' or identifier")

    def identifiers(self) -> set[str]:
        values: set[str] = set()
        while True:
            tok, lit = self.consume()
            if tok == "ID":
                values.add(lit)
                tok2, lit2 = self.lookahead()
                if tok2 == "COMMA":
                    continue
                if tok2 == "CLOSE":
                    return values
                raise ValueError(f"found '{lit2}', expected: ',' or ')'")
            if tok == "COMMA":
                if not values:
                    values.add("")
                tok2, _ = self.lookahead()
                if tok2 == "CLOSE":
                    values.add("")
                    return values
                if tok2 == "COMMA":
                    self.consume()
                    values.add("")
                continue
            raise ValueError(f"found '{lit}', expected: ',', or identifier")

    def exact_value(self) -> set[str]:
        tok, _ = self.lookahead()
        if tok in ("EOS", "COMMA"):
            return {""}
        tok, lit = self.consume()
        if tok == "ID":
            return {lit}
        raise ValueError(f"found '{lit}', expected: identifier")


def parse_selector(s: str) -> Selector:
    """`labels.Parse`; a malformed selector raises `BadRequest` with the Go parser's message."""
    try:
        reqs = _Parser(s or "").parse()
    except ValueError as e:
        raise BadRequest(str(e)) from None
    return Selector(tuple(sorted(reqs, key=lambda r: r.key)))


def selector_from_label_selector(ls: dict[str, Any] | None) -> Selector:
    """`metav1.LabelSelectorAsSelector`: None matches nothing, `{}` matches everything."""
    if ls is None:
        return Selector(nothing=True)
    reqs: list[Requirement] = []
    try:
        for k, v in (ls.get("matchLabels") or {}).items():
            reqs.append(new_requirement(k, EQUALS, [v]))
        for expr in ls.get("matchExpressions") or []:
            op_name = expr.get("operator")
            op = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}.get(op_name or "")
            if op is None:
                raise ValueError(f"{_quote(str(op_name))} is not a valid label selector operator")
            values = list(expr.get("values") or [])
            reqs.append(new_requirement(expr.get("key") or "", op, values))
    except ValueError as e:
        raise BadRequest(str(e)) from None
    return Selector(tuple(sorted(reqs, key=lambda r: r.key)))


def format_label_selector(ls: dict[str, Any] | None) -> str:
    """The string form of a LabelSelector (e.g. "app=web,tier in (a,b)"), "" when it selects everything."""
    return str(selector_from_label_selector(ls))


def format_label_selector_or_none(ls: dict[str, Any] | None) -> str:
    """`metav1.FormatLabelSelector` as tables print it: "<none>" when empty, "<error>" when invalid."""
    try:
        text = format_label_selector(ls)
    except StatusError:
        return "<error>"
    return text or "<none>"
