"""Client-side errors: a failed API call becomes the project's one `StatusError`.

The API server serialises every failure as a `metav1.Status`; the client turns
that body back into the same `StatusError` (code, reason, message, details) the
server raised, so callers write `except StatusError as e: if e.code == 404`
whichever side of the wire they are on (apimachinery's `errors.FromObject`).
Failing to *reach* the server is a different thing — nothing was decided — and
is an `APIUnavailable` (a `ConnectionError`) that callers retry with backoff.
"""

from __future__ import annotations

from typing import Any

from kubeling.api.errors import Cause, StatusError

__all__ = ["APIUnavailable", "StatusError", "errors_from_status", "is_status"]

# The reason apimachinery assumes when a response has no Status body (errors.NewGenericServerResponse).
_DEFAULT_REASONS: dict[int, str] = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class APIUnavailable(ConnectionError):
    """The API server could not be reached (refused, reset, timed out): retry with backoff."""


def is_status(body: Any) -> bool:
    """Whether a decoded body is a `metav1.Status` object."""
    return isinstance(body, dict) and body.get("kind") == "Status"


def errors_from_status(status: Any, http_code: int) -> StatusError:
    """Rebuild the `StatusError` a `metav1.Status` body describes.

    `http_code` is the response's status code; it is used when the body is not
    a Status (a proxy's HTML page, an empty body) or carries no code of its own.
    """
    if not is_status(status):
        text = status if isinstance(status, str) else ""
        reason = _DEFAULT_REASONS.get(http_code, "InternalError" if http_code >= 500 else "Unknown")
        message = text.strip() or f"the server responded with the status code {http_code} but did not return more information"
        return StatusError(http_code, reason, message)
    code = status.get("code")
    if not isinstance(code, int) or code == 0:
        code = http_code
    details = status.get("details") or {}
    causes = [
        Cause(str(c.get("reason", "")), str(c.get("message", "")), str(c.get("field", "")))
        for c in details.get("causes") or []
        if isinstance(c, dict)
    ]
    return StatusError(
        code,
        str(status.get("reason") or _DEFAULT_REASONS.get(code, "")),
        str(status.get("message") or ""),
        name=str(details.get("name") or ""),
        group=str(details.get("group") or ""),
        kind=str(details.get("kind") or ""),
        causes=causes,
        retry_after=int(details.get("retryAfterSeconds") or 0),
    )
