"""The one error hierarchy, mapped from HTTP status like apimachinery's `errors` package.

Every failure that reaches a client is a `StatusError`; the API server serialises
`err.status()` as a `metav1.Status` in Go's field order (kubectl and the python
client compare some bodies byte for byte), the CLI prints `err.message`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Cause:
    """One `StatusCause`: a field at fault and why (`reason` is Go's CauseType)."""

    reason: str
    message: str
    field: str = ""

    def to_dict(self) -> dict[str, str]:
        out = {"reason": self.reason, "message": self.message}
        if self.field:
            out["field"] = self.field
        return out


def required(path: str) -> Cause:
    return Cause("FieldValueRequired", "Required value", path)


def invalid(path: str, value: Any, detail: str) -> Cause:
    return Cause("FieldValueInvalid", f"Invalid value: {_go_repr(value)}: {detail}", path)


def not_supported(path: str, value: Any, allowed: list[str]) -> Cause:
    quoted = ", ".join(f'"{a}"' for a in allowed)
    return Cause("FieldValueNotSupported", f"Unsupported value: {_go_repr(value)}: supported values: {quoted}", path)


def duplicate(path: str, value: Any) -> Cause:
    return Cause("FieldValueDuplicate", f"Duplicate value: {_go_repr(value)}", path)


def forbidden(path: str, detail: str) -> Cause:
    return Cause("FieldValueForbidden", f"Forbidden: {detail}", path)


def too_long(path: str, value: Any, limit: int) -> Cause:
    return Cause("FieldValueTooLong", f"Too long: may not be more than {limit} bytes", path)


def _go_repr(value: Any) -> str:
    """Render a value the way field.Error does (%q for strings, %v otherwise)."""
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


@dataclass
class StatusError(Exception):
    """An API failure carrying everything a `metav1.Status` needs."""

    code: int = 500
    reason: str = "InternalError"
    message: str = ""
    name: str = ""
    group: str = ""
    kind: str = ""
    causes: list[Cause] = field(default_factory=list)
    retry_after: int = 0

    def __post_init__(self) -> None:
        Exception.__init__(self, self.message)

    def __str__(self) -> str:
        return self.message

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        details: dict[str, Any] = {}
        if self.name:
            details["name"] = self.name
        if self.group:
            details["group"] = self.group
        if self.kind:
            details["kind"] = self.kind
        if self.causes:
            details["causes"] = [c.to_dict() for c in self.causes]
        if self.retry_after:
            details["retryAfterSeconds"] = self.retry_after
        if details:
            out["details"] = details
        if not self.reason:
            del out["reason"]
        out["code"] = self.code
        return out


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def NotFound(resource: str, name: str, group: str = "") -> StatusError:  # noqa: N802
    return StatusError(404, "NotFound", f'{_qualified(resource, group)} "{name}" not found',
                       name=name, group=group, kind=resource)


def AlreadyExists(resource: str, name: str, group: str = "") -> StatusError:  # noqa: N802
    return StatusError(409, "AlreadyExists", f'{_qualified(resource, group)} "{name}" already exists',
                       name=name, group=group, kind=resource)


def Conflict(resource: str, name: str, group: str = "", detail: str = "") -> StatusError:  # noqa: N802
    detail = detail or "the object has been modified; please apply your changes to the latest version and try again"
    return StatusError(409, "Conflict",
                       f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": {detail}',
                       name=name, group=group, kind=resource)


def Invalid(kind: str, name: str, causes: list[Cause], group: str = "") -> StatusError:  # noqa: N802
    """422 with the message form `Deployment.apps "x" is invalid: a: Required value, b: ...`."""
    qualified = f"{kind}.{group}" if group else kind
    parts = [f"{c.field}: {c.message}" if c.field else c.message for c in causes]
    if len(parts) == 1:
        msg = f'{qualified} "{name}" is invalid: {parts[0]}'
    else:
        msg = f'{qualified} "{name}" is invalid: [' + ", ".join(parts) + "]"
    return StatusError(422, "Invalid", msg, name=name, group=group, kind=kind, causes=causes)


def BadRequest(message: str) -> StatusError:  # noqa: N802
    return StatusError(400, "BadRequest", message)


def Gone(message: str) -> StatusError:  # noqa: N802
    return StatusError(410, "Expired", message)


def MethodNotAllowed(message: str = "the server does not allow this method on the requested resource") -> StatusError:  # noqa: N802
    return StatusError(405, "MethodNotAllowed", message)


def RequestEntityTooLarge(message: str = "the request is too large") -> StatusError:  # noqa: N802
    return StatusError(413, "RequestEntityTooLarge", message)


def UnsupportedMediaType(content_type: str) -> StatusError:  # noqa: N802
    return StatusError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/apply-patch+yaml, application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json; got {content_type}")


def Forbidden(resource: str, name: str, detail: str, group: str = "") -> StatusError:  # noqa: N802
    return StatusError(403, "Forbidden", f'{_qualified(resource, group)} "{name}" is forbidden: {detail}',
                       name=name, group=group, kind=resource)


def TooManyRequests(message: str, retry_after: int = 1) -> StatusError:  # noqa: N802
    return StatusError(429, "TooManyRequests", message, retry_after=retry_after)


def InternalError(message: str) -> StatusError:  # noqa: N802
    return StatusError(500, "InternalError", f"Internal error occurred: {message}")
