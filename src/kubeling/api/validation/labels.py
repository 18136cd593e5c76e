"""Name syntaxes shared by every kind: DNS-1123 labels and subdomains, DNS-1035
labels, qualified names, label values, port names, config keys, env var names.

Each `is_*` function returns the list of problems, worded exactly as
apimachinery's `util/validation` package words them, because users (and some
tests in client libraries) compare these strings verbatim. Callers wrap each
message into a `Cause` at their own field path.

Also here: `GoValue`, for the few messages where Kubernetes prints a Go value
with `%#v` (`map[string]string{"app":"x"}`) rather than a quoted string.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from kubeling.api.errors import Cause, invalid


class GoValue:
    """A pre-rendered value: `errors.invalid` prints it verbatim instead of quoting it."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


def go_map(value: Mapping[str, Any] | None) -> GoValue:
    """`%#v` of a map[string]string: sorted keys, quoted, no spaces after colons."""
    if value is None:
        return GoValue("map[string]string(nil)")
    body = ", ".join(f'"{k}":"{value[k]}"' for k in sorted(value))
    return GoValue("map[string]string{" + body + "}")


def _go_requirement(expr: Mapping[str, Any]) -> str:
    values = expr.get("values")
    shown = "[]string{" + ", ".join(f'"{v}"' for v in values) + "}" if values else "[]string(nil)"
    return f'v1.LabelSelectorRequirement{{Key:"{expr.get("key", "")}", Operator:"{expr.get("operator", "")}", Values:{shown}}}'


def go_selector(sel: Mapping[str, Any] | None) -> GoValue:
    """`%#v` of a *metav1.LabelSelector, as printed by "field is immutable" errors."""
    if sel is None:
        return GoValue("(*v1.LabelSelector)(nil)")
    labels = go_map(sel.get("matchLabels")).text
    exprs = sel.get("matchExpressions") or []
    if exprs:
        items = ", ".join(_go_requirement(e) for e in exprs)
        expr_text = "[]v1.LabelSelectorRequirement{" + items + "}"
    else:
        expr_text = "[]v1.LabelSelectorRequirement(nil)"
    return GoValue(f"&v1.LabelSelector{{MatchLabels:{labels}, MatchExpressions:{expr_text}}}")


def required_detail(path: str, detail: str) -> Cause:
    """`field.Required` with a detail ("Required value: <detail>")."""
    return Cause("FieldValueRequired", f"Required value: {detail}", path)


def not_found(path: str, value: str) -> Cause:
    """`field.NotFound` ("Not found: \"x\"")."""
    return Cause("FieldValueNotFound", f'Not found: "{value}"', path)


def regex_error(msg: str, fmt: str, *examples: str) -> str:
    """apimachinery's RegexError, double spaces before " or " included."""
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    out = msg + " (e.g. "
    for i, ex in enumerate(examples):
        if i > 0:
            out += " or "
        out += f"'{ex}', "
    return out + f"regex used for validation is '{fmt}')"


def max_len_error(n: int) -> str:
    return f"must be no more than {n} characters"


DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
                     "and must start and end with an alphanumeric character")
DNS1123_SUBDOMAIN_FMT = DNS1123_LABEL_FMT + "(\\." + DNS1123_LABEL_FMT + ")*"
DNS1123_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
                         "'-' or '.', and must start and end with an alphanumeric character")
DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
DNS1035_LABEL_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
                     "start with an alphabetic character, and end with an alphanumeric character")
QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
QUALIFIED_NAME_MSG = ("must consist of alphanumeric characters, '-', '_' or '.', "
                      "and must start and end with an alphanumeric character")
LABEL_VALUE_FMT = "(" + QUALIFIED_NAME_FMT + ")?"
LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, "
                   "'-', '_' or '.', and must start and end with an alphanumeric character")
CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
CONFIG_KEY_MSG = "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
ENV_VAR_FMT = "[-._a-zA-Z][-._a-zA-Z0-9]*"
ENV_VAR_MSG = ("a valid environment variable name must consist of alphabetic characters, digits, "
               "'_', '-', or '.', and must not start with a digit")


def _full(fmt: str) -> re.Pattern[str]:
    return re.compile("^" + fmt + "$")


_DNS1123_LABEL = _full(DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN = _full(DNS1123_SUBDOMAIN_FMT)
_DNS1035_LABEL = _full(DNS1035_LABEL_FMT)
_QUALIFIED_NAME = _full(QUALIFIED_NAME_FMT)
_LABEL_VALUE = _full(LABEL_VALUE_FMT)
_CONFIG_KEY = _full(CONFIG_KEY_FMT)
_ENV_VAR = _full(ENV_VAR_FMT)


def is_dns1123_label(value: str) -> list[str]:
    errs = []
    if len(value) > 63:
        errs.append(max_len_error(63))
    if not _DNS1123_LABEL.match(value):
        if _DNS1123_SUBDOMAIN.match(value):
            errs.append("must not contain dots")
        else:
            errs.append(regex_error(DNS1123_LABEL_MSG, DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def is_dns1123_subdomain(value: str) -> list[str]:
    errs = []
    if len(value) > 253:
        errs.append(max_len_error(253))
    if not _DNS1123_SUBDOMAIN.match(value):
        errs.append(regex_error(DNS1123_SUBDOMAIN_MSG, DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def is_dns1035_label(value: str) -> list[str]:
    errs = []
    if len(value) > 63:
        errs.append(max_len_error(63))
    if not _DNS1035_LABEL.match(value):
        errs.append(regex_error(DNS1035_LABEL_MSG, DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs


def is_qualified_name(value: str) -> list[str]:
    """A label or annotation key: `[prefix/]name`, prefix a DNS subdomain."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs.extend("prefix part " + m for m in is_dns1123_subdomain(prefix))
    else:
        return ["a qualified name " + regex_error(QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT,
                                                  "MyName", "my.name", "123-abc")
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    if not name:
        errs.append("name part must be non-empty")
    elif len(name) > 63:
        errs.append("name part " + max_len_error(63))
    if not _QUALIFIED_NAME.match(name):
        errs.append("name part " + regex_error(QUALIFIED_NAME_MSG, QUALIFIED_NAME_FMT,
                                               "MyName", "my.name", "123-abc"))
    return errs


def is_label_value(value: str) -> list[str]:
    errs = []
    if len(value) > 63:
        errs.append(max_len_error(63))
    if not _LABEL_VALUE.match(value):
        errs.append(regex_error(LABEL_VALUE_MSG, LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


def _chdir_prefix(value: str) -> list[str]:
    if value == ".":
        return ["must not be '.'"]
    if value == "..":
        return ["must not be '..'"]
    if value.startswith(".."):
        return ["must not start with '..'"]
    return []


def is_config_map_key(value: str) -> list[str]:
    errs = []
    if len(value) > 253:
        errs.append(max_len_error(253))
    if not _CONFIG_KEY.match(value):
        errs.append(regex_error(CONFIG_KEY_MSG, CONFIG_KEY_FMT, "key.name", "KEY_NAME", "key-name"))
    return errs + _chdir_prefix(value)


def is_env_var_name(value: str) -> list[str]:
    errs = []
    if not _ENV_VAR.match(value):
        errs.append(regex_error(ENV_VAR_MSG, ENV_VAR_FMT, "my.env-name", "MY_ENV.NAME", "MyEnvName1"))
    return errs + _chdir_prefix(value)


def is_port_name(value: str) -> list[str]:
    """IANA_SVC_NAME: at most 15 characters, [-a-z0-9], at least one letter, no '--', no edge '-'."""
    errs = []
    if len(value) > 15:
        errs.append(max_len_error(15))
    if not re.match(r"^[-a-z0-9]+$", value):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search(r"[a-z]", value):
        errs.append("must contain at least one letter (a-z)")
    if "--" in value:
        errs.append("must not contain consecutive hyphens")
    if value and (value[0] == "-" or value[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    return errs


PORT_RANGE_MSG = "must be between 1 and 65535, inclusive"


def is_port_num(value: object) -> list[str]:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        return [PORT_RANGE_MSG]
    return []


def is_path_segment_name(value: str) -> list[str]:
    """Names used as one URL path segment (HPA scaleTargetRef, most CRs)."""
    if value in (".", ".."):
        return [f"may not be '{value}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in value]


def validate_labels(labels: object, path: str) -> list[Cause]:
    """ValidateLabels: every key a qualified name, every value a label value, all at `path`."""
    if not isinstance(labels, Mapping):
        return [] if labels is None else [invalid(path, GoValue(str(labels)), "must be a map of strings")]
    causes: list[Cause] = []
    for k, v in labels.items():
        causes.extend(invalid(path, k, m) for m in is_qualified_name(str(k)))
        if not isinstance(v, str):
            causes.append(invalid(path, GoValue(str(v)), "must be a string"))
            continue
        causes.extend(invalid(path, v, m) for m in is_label_value(v))
    return causes


def name_causes(path: str, value: str, checks: Iterable[str]) -> list[Cause]:
    return [invalid(path, value, m) for m in checks]
