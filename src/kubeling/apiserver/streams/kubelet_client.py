"""Find a pod's kubelet and open the one simple protocol it speaks per stream.

Why the API server reads Node objects straight from its own storage: it *is* the
storage owner, so going through HTTP to itself would only add a hop. The kubelet is
addressed like kube-apiserver does: the node's address (InternalIP preferred) and
`status.daemonEndpoints.kubeletEndpoint.Port`.

The validation here mirrors kube-apiserver's pod strategy (`validateContainer`,
`streamLocation`): errors are the same 400 BadRequest messages kubectl prints.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from kubeling.api import errors

Obj = dict[str, Any]
ADDRESS_PREFERENCE = ("InternalIP", "ExternalIP", "Hostname", "InternalDNS", "ExternalDNS")
DEFAULT_KUBELET_PORT = 10250


@dataclass
class Target:
    """A pod, the container addressed (if any) and the kubelet that runs it."""

    pod: Obj
    container: str
    base_url: str  # "" when the pod is not bound to a node yet

    @property
    def namespace(self) -> str:
        return str(self.pod["metadata"].get("namespace", ""))

    @property
    def name(self) -> str:
        return str(self.pod["metadata"]["name"])

    def url(self, kind: str, *, with_container: bool = True) -> str:
        parts = [self.base_url, kind, quote(self.namespace, safe=""), quote(self.name, safe="")]
        if with_container:
            parts.append(quote(self.container, safe=""))
        return "/".join(parts)


def _container_names(containers: list[Obj] | None) -> list[str]:
    return [c.get("name", "") for c in containers or []]


def validate_container(pod: Obj, container: str) -> str:
    """Pick/validate the container like kube-apiserver's validateContainer()."""
    spec, name = pod.get("spec") or {}, pod["metadata"]["name"]
    all_names = (_container_names(spec.get("containers")) + _container_names(spec.get("initContainers"))
                 + _container_names(spec.get("ephemeralContainers")))
    if container:
        if container not in all_names:
            raise errors.BadRequest(f"container {container} is not valid for pod {name}")
        return container
    containers = _container_names(spec.get("containers"))
    if len(containers) == 1:
        return containers[0]
    if not containers:
        raise errors.BadRequest(f"a container name must be specified for pod {name}")
    msg = f"a container name must be specified for pod {name}, choose one of: [{' '.join(containers)}]"
    inits = _container_names(spec.get("initContainers"))
    if inits:
        msg += f" or one of the init containers: [{' '.join(inits)}]"
    raise errors.BadRequest(msg)


def node_base_url(node: Obj) -> str:
    status = node.get("status") or {}
    by_type: dict[str, str] = {}
    for addr in status.get("addresses") or []:
        by_type.setdefault(addr.get("type", ""), addr.get("address", ""))
    host = next((by_type[t] for t in ADDRESS_PREFERENCE if by_type.get(t)), "")
    if not host:
        raise errors.InternalError(f"node {node['metadata']['name']} has no usable address")
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port") \
        or DEFAULT_KUBELET_PORT
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


async def locate(server: Any, namespace: str, pod_name: str, container: str | None, *,
                 require_node: bool = True) -> Target:
    """Load the pod and its node. `container=None` skips container selection (port-forward)."""
    registry = server.registry
    pod = await server.rest.get(registry.get("", "v1", "pods"), namespace, pod_name)
    chosen = validate_container(pod, container) if container is not None else ""
    node_name = (pod.get("spec") or {}).get("nodeName", "")
    if not node_name:
        if require_node:
            raise errors.BadRequest(f"pod {pod_name} does not have a host assigned")
        return Target(pod, chosen, "")
    node = await server.rest.get(registry.get("", "v1", "nodes"), "", node_name)
    return Target(pod, chosen, node_base_url(node))


def client_session() -> aiohttp.ClientSession:
    """A session with no overall timeout: streams live as long as the user wants."""
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))


def unreachable(url: str, exc: BaseException) -> errors.StatusError:
    return errors.InternalError(f'error dialing backend: Get "{url}": {exc}')


def status_error(code: int, body: bytes) -> errors.StatusError:
    """The kubelet's Status body (or plain text) as our own error, same code and message."""
    try:
        status = json.loads(body)
    except ValueError:
        status = None
    if isinstance(status, dict) and status.get("kind") == "Status":
        return errors.StatusError(int(status.get("code") or code), str(status.get("reason") or ""),
                                  str(status.get("message") or ""))
    reason = {400: "BadRequest", 404: "NotFound", 403: "Forbidden"}.get(code, "InternalError")
    return errors.StatusError(code if code >= 400 else 500, reason, body.decode(errors="replace").strip())


async def connect_ws(session: aiohttp.ClientSession, url: str, params: list[tuple[str, str]],
                     protocol: str) -> aiohttp.ClientWebSocketResponse:
    """Open a kubelet stream WebSocket; the kubelet's own Status on refusal becomes ours."""
    try:
        return await session.ws_connect(url, params=params, protocols=(protocol,), autoping=True,
                                        max_msg_size=0, heartbeat=None)
    except aiohttp.WSServerHandshakeError as exc:
        # The handshake error drops the body: ask again without upgrading to read the Status.
        try:
            async with session.get(url, params=params) as resp:
                raise status_error(resp.status if resp.status >= 400 else exc.status,
                                   await resp.read()) from exc
        except (aiohttp.ClientError, OSError) as again:
            raise unreachable(url, again) from again
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise unreachable(url, exc) from exc
