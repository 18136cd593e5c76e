"""Field selectors: `fields.ParseSelector` plus the per-kind selectable fields.

Kubernetes only lets a client select on the handful of fields each kind registers
(`AddFieldLabelConversionFunc` in `pkg/apis/*/v1/conversion.go` and `GetAttrs` in each
registry strategy). kubectl and the kubelet rely on exactly these (`spec.nodeName`,
`involvedObject.uid`, ...), and reject-or-accept must match too: an unknown field is a
400 whose text depends on whether the kind registered its own conversion function
("field label not supported: X") or uses the default for metadata-only kinds.
events.k8s.io/v1 maps its field names (`regarding.*`, `reportingController`) onto the
core Event field set, since both share one storage.
"""

from __future__ import annotations

from typing import Any

from kubeling.api.errors import BadRequest
from kubeling.api.registry import ResourceInfo

_META = ("metadata.name", "metadata.namespace")

# Kinds with their own conversion function: anything else is "field label not supported".
_CUSTOM: dict[str, tuple[str, ...]] = {
    "pods": _META + ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
                     "spec.hostNetwork", "status.phase", "status.podIP", "status.podIPs",
                     "status.nominatedNodeName"),
    "nodes": ("metadata.name", "spec.unschedulable"),
    "events": _META + ("involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                       "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
                       "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"),
    "events.events.k8s.io": _META + ("regarding.kind", "regarding.namespace", "regarding.name", "regarding.uid",
                                     "regarding.apiVersion", "regarding.resourceVersion", "regarding.fieldPath",
                                     "reason", "reportingController", "source", "type"),
    "namespaces": ("metadata.name", "status.phase"),
    "secrets": _META + ("type",),
    "services": _META + ("spec.clusterIP", "spec.type"),
    "replicationcontrollers": _META + ("status.replicas",),
    "replicasets.apps": _META + ("status.replicas",),
    "jobs.batch": _META + ("status.successful",),
    "certificatesigningrequests.certificates.k8s.io": ("metadata.name", "spec.signerName"),
}

# Field names that are aliases of another (`spec.host` is what pre-1.0 clients sent).
_ALIASES = {"pods": {"spec.host": "spec.nodeName"}}

# events.k8s.io names → the core Event field they read.
_EVENTS_V1 = {"regarding.kind": "involvedObject.kind", "regarding.namespace": "involvedObject.namespace",
              "regarding.name": "involvedObject.name", "regarding.uid": "involvedObject.uid",
              "regarding.apiVersion": "involvedObject.apiVersion",
              "regarding.resourceVersion": "involvedObject.resourceVersion",
              "regarding.fieldPath": "involvedObject.fieldPath", "reportingController": "reportingComponent"}


def _split_terms(selector: str) -> list[str]:
    """Split on commas that are not escaped with a backslash."""
    if not selector:
        return []
    terms: list[str] = []
    start, in_slash = 0, False
    for i, c in enumerate(selector):
        if in_slash:
            in_slash = False
        elif c == "\\":
            in_slash = True
        elif c == ",":
            terms.append(selector[start:i])
            start = i + 1
    terms.append(selector[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    for i in range(len(term)):
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op):]
    return None


def unescape_value(s: str) -> str:
    """`fields.UnescapeValue`: `\\\\`, `\\,` and `\\=` are escapes; a bare `,`/`=` or other escape is an error."""
    if not any(c in s for c in "\\,="):
        return s
    out: list[str] = []
    in_slash = False
    for c in s:
        if in_slash:
            if c not in "\\,=":
                raise BadRequest(f"invalid field selector: invalid escape sequence: \\{c}")
            out.append(c)
            in_slash = False
        elif c == "\\":
            in_slash = True
        elif c in ",=":
            raise BadRequest(f"invalid field selector: unescaped character in value: {c}")
        else:
            out.append(c)
    if in_slash:
        raise BadRequest("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def parse_field_selector(s: str) -> list[tuple[str, str, str]]:
    """`fields.ParseSelector`: (field, op, value) terms in Go's order (terms sorted as strings)."""
    out: list[tuple[str, str, str]] = []
    for part in sorted(_split_terms(s or "")):
        if not part:
            continue
        split = _split_term(part)
        if split is None:
            raise BadRequest(f"invalid selector: '{s}'; can't understand '{part}'")
        lhs, op, rhs = split
        out.append((lhs, op, unescape_value(rhs)))
    return out


def supported_fields(info: ResourceInfo) -> set[str]:
    """The field labels a list/watch of this resource may select on."""
    return set(_CUSTOM.get(info.key, _META))


def check_fields(info: ResourceInfo, reqs: list[tuple[str, str, str]]) -> None:
    """Reject unknown fields with the message the kind's conversion function gives."""
    allowed = supported_fields(info)
    aliases = _ALIASES.get(info.key, {})
    for fld, _, _ in reqs:
        if fld in allowed or fld in aliases:
            continue
        if info.key in _CUSTOM:
            raise BadRequest(f"field label not supported: {fld}")
        raise BadRequest(f'"{fld}" is not a known field selector: only "metadata.name", "metadata.namespace"')


def _path(obj: dict[str, Any], dotted: str) -> Any:
    cur: Any = obj
    for part in dotted.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _pod_field(obj: dict[str, Any], fld: str) -> str:
    if fld == "spec.hostNetwork":
        return _text(bool(_path(obj, "spec.hostNetwork")))
    if fld == "status.podIP":
        # The pod strategy's field set takes podIPs[0] (podIP mirrors it on every real pod).
        ips = _path(obj, "status.podIPs") or []
        return ((ips[0] or {}).get("ip") if ips else "") or _text(_path(obj, fld))
    if fld == "status.podIPs":
        # Accepted by the conversion func but absent from ToSelectableFields ("TODO: add podIPs"),
        # so Kubernetes compares against "".
        return ""
    return _text(_path(obj, fld))


def _event_field(obj: dict[str, Any], fld: str) -> str:
    if fld == "source":
        # event strategy: `source.component`, falling back to the reporting controller.
        return _text(_path(obj, "source.component") or _path(obj, "deprecatedSource.component")
                     or obj.get("reportingComponent") or obj.get("reportingController"))
    if fld.startswith("involvedObject.") and "involvedObject" not in obj and "regarding" in obj:
        return _text(_path(obj, "regarding." + fld.split(".", 1)[1]))
    if fld == "reportingComponent" and "reportingComponent" not in obj:
        return _text(obj.get("reportingController"))
    return _text(_path(obj, fld))


def field_value(info: ResourceInfo, obj: dict[str, Any], fld: str) -> str | None:
    """The string a field selector compares against, or None if `fld` isn't selectable for `info`."""
    fld = _ALIASES.get(info.key, {}).get(fld, fld)
    if fld not in supported_fields(info):
        return None
    if fld in _META:
        # Cluster-scoped objects select with an empty namespace, as GetAttrs gives them.
        return _text(_path(obj, fld))
    if info.key == "pods":
        return _pod_field(obj, fld)
    if info.key == "nodes" and fld == "spec.unschedulable":
        return _text(bool(_path(obj, fld)))
    if info.key in ("events", "events.events.k8s.io"):
        return _event_field(obj, _EVENTS_V1.get(fld, fld))
    if info.key == "jobs.batch" and fld == "status.successful":
        return _text(_path(obj, "status.succeeded") or 0)
    if info.key in ("replicasets.apps", "replicationcontrollers") and fld == "status.replicas":
        return _text(_path(obj, "status.replicas") or 0)
    return _text(_path(obj, fld))


def matches_fields(info: ResourceInfo, obj: dict[str, Any], reqs: list[tuple[str, str, str]]) -> bool:
    """True when `obj` satisfies every (field, op, value) term; unknown fields raise BadRequest."""
    check_fields(info, reqs)
    for fld, op, value in reqs:
        have = field_value(info, obj, fld) or ""
        if (have == value) != (op != "!="):
            return False
    return True
