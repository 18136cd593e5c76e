"""Bearer-token authentication, Kubernetes-style.

Requests without credentials are served as `system:anonymous` (kubectl over
plain HTTP never sends its token; TLS and RBAC arrive with the security work).
A request that *presents* a token must present a valid one: a wrong token is
401 Unauthorized even though anonymous access is allowed, exactly as
kube-apiserver does. This is how `kubeling agent --token` is checked.
"""

from __future__ import annotations

import hmac
from typing import Any

from aiohttp import web

from kubeling.api import errors


def token_middleware(tokens: set[str]) -> Any:
    """An aiohttp middleware accepting anonymous requests and any of `tokens`."""

    @web.middleware
    async def authenticate(request: web.Request, handler: Any) -> web.StreamResponse:
        header = request.headers.get("Authorization", "")
        if header:
            scheme, _, value = header.partition(" ")
            value = value.strip()
            if scheme.lower() != "bearer" or not any(hmac.compare_digest(value, t) for t in tokens):
                raise errors.StatusError(401, "Unauthorized", "Unauthorized")
        return await handler(request)

    return authenticate
