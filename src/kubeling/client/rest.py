"""The async REST client every component uses to reach the API server.

Hub and spoke: the scheduler, controllers and kubelet never touch the store, so
this module is their only door. It is deliberately thin — objects are plain
wire dicts (client-go's unstructured), paths come from `Resource.path`, JSON
goes through orjson — and it does exactly two translations: a non-2xx
`metav1.Status` becomes the matching `StatusError`, and a transport failure
becomes `APIUnavailable`, so callers never see aiohttp's exception zoo.
"""

from __future__ import annotations

import asyncio
import base64
import os
import ssl
import tempfile
from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal

import aiohttp
import orjson
import yaml

from kubeling.client.errors import APIUnavailable, errors_from_status
from kubeling.client.resources import Resource

PatchType = Literal["merge", "strategic", "json", "apply"]

PATCH_CONTENT_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
    # Server-side apply takes YAML; JSON is valid YAML, so we send JSON.
    "apply": "application/apply-patch+yaml",
}

_TRANSPORT_ERRORS = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, asyncio.TimeoutError, OSError)


def _query(params: Mapping[str, Any] | None) -> dict[str, str]:
    """Drop unset parameters and spell booleans the way Go's strconv parses them."""
    out: dict[str, str] = {}
    for key, value in (params or {}).items():
        if value is None or value is False:
            continue
        out[key] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out


def _metadata(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


class KubeClient:
    """An async Kubernetes REST client over one shared aiohttp session.

    Use as `async with KubeClient(url, token=...) as client:` or call `close()`.
    Every method raises `StatusError` for API failures and `APIUnavailable`
    when the server cannot be reached.
    """

    def __init__(self, base_url: str, *, token: str | None = None, user_agent: str = "kubeling",
                 timeout: float = 30, ssl_context: ssl.SSLContext | bool | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.user_agent = user_agent
        self.timeout = timeout
        self._token = token
        self._ssl: ssl.SSLContext | bool = True if ssl_context is None else ssl_context
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_kubeconfig(cls, path: str | os.PathLike[str], *, context: str | None = None,
                        user_agent: str = "kubeling", timeout: float = 30) -> KubeClient:
        """A client for the server and credentials of the kubeconfig's current (or given) context."""
        with open(path, encoding="utf-8") as f:
            config = yaml.safe_load(f) or {}
        base_dir = os.path.dirname(os.path.abspath(path))
        ctx_name = context or config.get("current-context")

        def named(section: str, name: str | None) -> dict[str, Any]:
            for entry in config.get(section) or []:
                if entry.get("name") == name:
                    return entry.get(section[:-1]) or {}
            raise ValueError(f"kubeconfig {path}: no {section[:-1]} named {name!r}")

        ctx = named("contexts", ctx_name)
        cluster = named("clusters", ctx.get("cluster"))
        user = named("users", ctx.get("user")) if ctx.get("user") else {}
        token = user.get("token")
        if not token and user.get("tokenFile"):
            with open(os.path.join(base_dir, user["tokenFile"]), encoding="utf-8") as f:
                token = f.read().strip()
        server = cluster.get("server") or ""
        ssl_context: ssl.SSLContext | bool | None = None
        if server.startswith("https"):
            ssl_context = _ssl_context(cluster, user, base_dir)
        return cls(server, token=token, user_agent=user_agent, timeout=timeout, ssl_context=ssl_context)

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the shared session; the client may not be used afterwards."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _get_session(self) -> aiohttp.ClientSession:
        # Created lazily so a client can be constructed outside a running loop.
        if self._session is None or self._session.closed:
            headers = {"User-Agent": self.user_agent, "Accept": "application/json"}
            if self._token:
                headers["Authorization"] = f"Bearer {self._token}"
            self._session = aiohttp.ClientSession(
                headers=headers,
                connector=aiohttp.TCPConnector(ssl=self._ssl, limit=0),
                json_serialize=lambda o: orjson.dumps(o).decode(),
            )
        return self._session

    # -- low level ------------------------------------------------------------------------------

    async def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                      body: Any = None, content_type: str | None = None) -> Any:
        """Send one request and return the decoded JSON body (None when empty)."""
        data: bytes | None = None
        headers: dict[str, str] = {}
        if body is not None:
            data = body if isinstance(body, bytes) else body.encode() if isinstance(body, str) else orjson.dumps(body)
            headers["Content-Type"] = content_type or "application/json"
        session = self._get_session()
        try:
            async with session.request(method, self.base_url + path, params=_query(params), data=data,
                                       headers=headers, timeout=aiohttp.ClientTimeout(total=self.timeout)) as resp:
                raw = await resp.read()
                if resp.status >= 300:
                    _raise_for_status(resp, raw)
                return orjson.loads(raw) if raw else None
        except _TRANSPORT_ERRORS as err:
            raise APIUnavailable(f"{method} {self.base_url}{path}: {err or type(err).__name__}") from err

    # -- verbs ----------------------------------------------------------------------------------

    async def get(self, res: Resource, name: str, *, namespace: str | None = None,
                  subresource: str | None = None) -> dict[str, Any]:
        """GET one object (or one of its subresources, e.g. "status" or "scale")."""
        return await self.request("GET", res.path(namespace, name, subresource))

    async def list(self, res: Resource, *, namespace: str | None = None, label_selector: str | None = None,
                   field_selector: str | None = None, limit: int | None = None,
                   continue_token: str | None = None, resource_version: str | None = None) -> dict[str, Any]:
        """GET one page of a collection: the List object, `metadata.continue` set when more remain."""
        params = {"labelSelector": label_selector, "fieldSelector": field_selector, "limit": limit,
                  "continue": continue_token, "resourceVersion": resource_version}
        return await self.request("GET", res.path(namespace), params=params)

    async def list_all(self, res: Resource, *, namespace: str | None = None, label_selector: str | None = None,
                       field_selector: str | None = None, limit: int | None = 500,
                       resource_version: str | None = None) -> dict[str, Any]:
        """Every page of a collection merged into one List (client-go's pager).

        The result carries the first page's metadata (its resourceVersion is the
        snapshot every page was served from) without a `continue` token.
        """
        result = await self.list(res, namespace=namespace, label_selector=label_selector,
                                 field_selector=field_selector, limit=limit, resource_version=resource_version)
        items: list[dict[str, Any]] = list(result.get("items") or [])
        token = (result.get("metadata") or {}).get("continue")
        while token:
            page = await self.list(res, namespace=namespace, label_selector=label_selector,
                                   field_selector=field_selector, limit=limit, continue_token=token)
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
        metadata = dict(result.get("metadata") or {})
        metadata.pop("continue", None)
        metadata.pop("remainingItemCount", None)
        return {**result, "metadata": metadata, "items": items}

    async def create(self, res: Resource, obj: Mapping[str, Any], *, namespace: str | None = None,
                     subresource: str | None = None, name: str | None = None,
                     field_manager: str | None = None, dry_run: bool = False) -> dict[str, Any]:
        """POST an object; with `subresource` ("binding", "eviction", "token") POST to that of `name`.

        The namespace defaults to the object's; a subresource's owner name
        defaults to the object's name (a Binding is named after its pod).
        """
        meta = _metadata(obj)
        namespace = namespace or meta.get("namespace")
        if subresource:
            name = name or meta.get("name")
        else:
            name = None
        params = {"fieldManager": field_manager, "dryRun": "All" if dry_run else None}
        return await self.request("POST", res.path(namespace, name, subresource), params=params, body=obj)

    async def update(self, res: Resource, obj: Mapping[str, Any], *,
                     subresource: str | None = None) -> dict[str, Any]:
        """PUT an object (or its status/scale); `metadata.resourceVersion` makes it a compare-and-swap."""
        meta = _metadata(obj)
        name = meta.get("name")
        if not name:
            raise ValueError("update needs metadata.name")
        return await self.request("PUT", res.path(meta.get("namespace"), name, subresource), body=obj)

    async def patch(self, res: Resource, name: str, patch: Any, *, namespace: str | None = None,
                    patch_type: PatchType = "merge", subresource: str | None = None,
                    field_manager: str | None = None, force: bool = False) -> dict[str, Any]:
        """PATCH an object with a merge, strategic-merge, JSON or server-side-apply patch."""
        if patch_type not in PATCH_CONTENT_TYPES:
            raise ValueError(f"unknown patch type {patch_type!r}")
        if patch_type == "apply":
            # The server refuses apply without a manager; name it after this client, as kubectl does.
            field_manager = field_manager or self.user_agent
        params = {"fieldManager": field_manager, "force": True if force and patch_type == "apply" else None}
        return await self.request("PATCH", res.path(namespace, name, subresource), params=params, body=patch,
                                  content_type=PATCH_CONTENT_TYPES[patch_type])

    async def delete(self, res: Resource, name: str, *, namespace: str | None = None,
                     propagation_policy: str | None = None, grace_period_seconds: int | None = None,
                     preconditions: Mapping[str, str] | None = None) -> dict[str, Any]:
        """DELETE an object; returns the object (when finalizers keep it) or a Success Status."""
        options = _delete_options(propagation_policy, grace_period_seconds, preconditions)
        return await self.request("DELETE", res.path(namespace, name), body=options)

    async def delete_collection(self, res: Resource, *, namespace: str | None = None,
                                label_selector: str | None = None) -> dict[str, Any]:
        """DELETE every object of a collection matching the selector."""
        return await self.request("DELETE", res.path(namespace), params={"labelSelector": label_selector})

    async def watch(self, res: Resource, *, namespace: str | None = None, resource_version: str | None = None,
                    label_selector: str | None = None, field_selector: str | None = None,
                    timeout_seconds: int | None = None,
                    allow_bookmarks: bool = True) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Stream `(type, object)` watch events until the server ends the stream.

        An ERROR event raises the StatusError it carries (410 Expired when the
        resourceVersion has been compacted: the caller must relist).
        """
        params = {"watch": True, "resourceVersion": resource_version, "labelSelector": label_selector,
                  "fieldSelector": field_selector, "timeoutSeconds": timeout_seconds,
                  "allowWatchBookmarks": True if allow_bookmarks else None}
        path = res.path(namespace)
        # No total/read timeout: a quiet watch is healthy; the server ends it after timeoutSeconds.
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.timeout)
        session = self._get_session()
        try:
            async with session.get(self.base_url + path, params=_query(params), timeout=timeout) as resp:
                if resp.status >= 300:
                    _raise_for_status(resp, await resp.read())
                buffer = b""
                # Our own line splitting: aiohttp's readline caps a line at 128 KiB and objects can be larger.
                async for chunk in resp.content.iter_any():
                    buffer += chunk
                    while (newline := buffer.find(b"\n")) >= 0:
                        line, buffer = buffer[:newline], buffer[newline + 1:]
                        if line.strip():
                            yield _decode_event(line)
                if buffer.strip():
                    yield _decode_event(buffer)
        except _TRANSPORT_ERRORS as err:
            raise APIUnavailable(f"watch {self.base_url}{path}: {err or type(err).__name__}") from err


def _decode_event(line: bytes) -> tuple[str, dict[str, Any]]:
    event = orjson.loads(line)
    kind, obj = event.get("type", ""), event.get("object") or {}
    if kind == "ERROR":
        raise errors_from_status(obj, int(obj.get("code") or 500))
    return kind, obj


def _raise_for_status(resp: aiohttp.ClientResponse, raw: bytes) -> None:
    try:
        body: Any = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        body = raw.decode("utf-8", "replace")
    http_error = aiohttp.ClientResponseError(resp.request_info, resp.history, status=resp.status,
                                             message=resp.reason or "", headers=resp.headers)
    raise errors_from_status(body, resp.status) from http_error


def _delete_options(propagation_policy: str | None, grace_period_seconds: int | None,
                    preconditions: Mapping[str, str] | None) -> dict[str, Any] | None:
    options: dict[str, Any] = {}
    if propagation_policy:
        options["propagationPolicy"] = propagation_policy
    if grace_period_seconds is not None:
        options["gracePeriodSeconds"] = grace_period_seconds
    if preconditions:
        options["preconditions"] = dict(preconditions)
    if not options:
        return None
    return {"kind": "DeleteOptions", "apiVersion": "v1", **options}


def _ssl_context(cluster: Mapping[str, Any], user: Mapping[str, Any], base_dir: str) -> ssl.SSLContext | bool:
    """TLS settings from a kubeconfig cluster + user: CA, insecure-skip-tls-verify, client certificate."""
    if cluster.get("insecure-skip-tls-verify"):
        return False
    ctx = ssl.create_default_context()
    if cluster.get("certificate-authority-data"):
        ctx.load_verify_locations(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
    elif cluster.get("certificate-authority"):
        ctx.load_verify_locations(cafile=os.path.join(base_dir, cluster["certificate-authority"]))
    cert, key = _pem(user, "client-certificate", base_dir), _pem(user, "client-key", base_dir)
    if cert and key:
        # load_cert_chain only reads files; inline data goes through a private temp dir.
        with tempfile.TemporaryDirectory() as tmp:
            cert_file, key_file = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
            for file, data in ((cert_file, cert), (key_file, key)):
                with open(file, "wb") as f:
                    f.write(data)
            ctx.load_cert_chain(cert_file, key_file)
    return ctx


def _pem(user: Mapping[str, Any], field: str, base_dir: str) -> bytes | None:
    if user.get(f"{field}-data"):
        return base64.b64decode(user[f"{field}-data"])
    if user.get(field):
        with open(os.path.join(base_dir, user[field]), "rb") as f:
            return f.read()
    return None
