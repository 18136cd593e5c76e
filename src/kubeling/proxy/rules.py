"""What a node's Service proxy should serve, computed from one Service and its EndpointSlices.

This is the pure half of the proxy (kube-proxy's `ServicePortInfo` +
`EndpointsMap` + topology filtering in one function), kept apart from sockets
so that the rules are testable and so that a second proxy mode (nftables, as
root) can program the very same plan. A *frontend* is one (protocol, address,
port) the node answers on — a ClusterIP port, a NodePort on the node address,
an external IP, a LoadBalancer ingress IP — and carries the endpoints that
traffic to it may reach after the traffic policies have been applied.

Endpoint choice follows kube-proxy: ready endpoints only (a nil `ready` means
ready, as the EndpointSlice API says); when none is ready, serving endpoints
that are terminating take the traffic (KEP-1669) so that a rolling restart of
the last replica does not black-hole connections. `internalTrafficPolicy:
Local` filters ClusterIP traffic to endpoints on this node,
`externalTrafficPolicy: Local` does the same for NodePort, external and
LoadBalancer traffic. Services labelled `service.kubernetes.io/service-proxy-name`
belong to another proxy and are skipped, as kube-proxy does. Addresses the
userspace proxy cannot serve (anything outside loopback, unless it is the
node's own address) are not served and are reported as problems so the caller
can tell the user, never silently; the nftables proxy serves every address
(`any_address=True`). Each frontend also carries the cluster-wide endpoints and
whether a Local policy narrowed its own, because kube-proxy's nftables rules
send pod- and node-originated traffic to an `externalTrafficPolicy: Local`
address over the cluster-wide endpoints (the "short-circuit" rules).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
# kube-proxy's contract: a Service with this label is served by someone else (e.g. the DNS
# component binds the kube-dns address itself), so the proxy leaves it alone.
SERVICE_PROXY_NAME_LABEL = "service.kubernetes.io/service-proxy-name"
DEFAULT_AFFINITY_TIMEOUT = 10800
SUPPORTED_PROTOCOLS = ("TCP", "UDP")

Obj = Mapping[str, Any]
Endpoint = tuple[str, int]
FrontendKey = tuple[str, str, int]  # (protocol, address, port)


@dataclass(frozen=True)
class Frontend:
    """One address the node serves for a Service port, and where its traffic may go."""

    key: FrontendKey
    service: str  # "namespace/name"
    port_name: str
    kind: str  # ClusterIP, NodePort, ExternalIP or LoadBalancer (for messages)
    endpoints: tuple[Endpoint, ...]
    affinity_timeout: float | None  # seconds of ClientIP stickiness; None = none
    local_policy: bool = False  # a Local traffic policy narrowed `endpoints` to this node's
    cluster_endpoints: tuple[Endpoint, ...] = ()  # every usable endpoint, whatever the policy

    @property
    def protocol(self) -> str:
        return self.key[0]


@dataclass
class Plan:
    """Every frontend of one Service, plus what could not be served (reason, message)."""

    frontends: dict[FrontendKey, Frontend] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def service_key_of_slice(slice_: Obj) -> str | None:
    """The "namespace/name" of the Service an EndpointSlice belongs to (its service-name label)."""
    meta = slice_.get("metadata") or {}
    name = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    return f"{meta.get('namespace') or ''}/{name}" if name else None


def _slice_port(slice_: Obj, port_name: str, protocol: str) -> int | None:
    for port in slice_.get("ports") or []:
        if (port.get("name") or "") == port_name and (port.get("protocol") or "TCP") == protocol:
            number = port.get("port")
            return int(number) if number else None
    return None


def endpoints_for(slices: Iterable[Obj], port_name: str, protocol: str, *,
                  node_name: str | None = None) -> tuple[Endpoint, ...]:
    """Ready endpoints of one Service port (falling back to serving-terminating ones), in a stable order.

    With `node_name`, only endpoints on that node count (the Local traffic policies).
    """
    ready: dict[Endpoint, None] = {}
    terminating: dict[Endpoint, None] = {}
    for slice_ in slices:
        if (slice_.get("addressType") or "IPv4") not in ("IPv4", "IPv6"):
            continue  # FQDN slices carry names, not addresses: nothing to proxy to
        number = _slice_port(slice_, port_name, protocol)
        if number is None:
            continue
        for ep in slice_.get("endpoints") or []:
            addresses = ep.get("addresses") or []
            if not addresses or (node_name is not None and ep.get("nodeName") != node_name):
                continue
            cond = ep.get("conditions") or {}
            is_terminating = cond.get("terminating") is True
            is_ready = cond.get("ready") is not False and not is_terminating
            serving = cond.get("serving")
            is_serving = is_ready if serving is None else serving is True
            target = (str(addresses[0]), number)  # kube-proxy uses the first address, too
            if is_ready:
                ready[target] = None
            elif is_serving and is_terminating:
                terminating[target] = None
    return tuple(ready or terminating)


def _affinity_timeout(spec: Obj) -> float | None:
    if spec.get("sessionAffinity") != "ClientIP":
        return None
    config = (spec.get("sessionAffinityConfig") or {}).get("clientIP") or {}
    return float(config.get("timeoutSeconds") or DEFAULT_AFFINITY_TIMEOUT)


def plan_service(service: Obj, slices: Iterable[Obj], *, node_name: str, node_address: str,
                 any_address: bool = False) -> Plan:
    """Everything this node should serve for `service` (an ExternalName or a headless one: only what applies).

    `any_address=False` is the userspace proxy's view (loopback and the node address only);
    the nftables proxy passes True and gets every address.
    """
    plan = Plan()
    meta, spec = service.get("metadata") or {}, service.get("spec") or {}
    stype = spec.get("type") or "ClusterIP"
    if stype == "ExternalName" or SERVICE_PROXY_NAME_LABEL in (meta.get("labels") or {}):
        return plan  # a DNS alias, or a Service another proxy serves: nothing to do here
    key = f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"
    slices = list(slices)
    affinity = _affinity_timeout(spec)
    internal_local = spec.get("internalTrafficPolicy") == "Local"
    external_local = spec.get("externalTrafficPolicy") == "Local"
    cluster_ips = [ip for ip in (spec.get("clusterIPs") or [spec.get("clusterIP")]) if ip and ip != "None"]
    ingress: list[str] = []
    if stype == "LoadBalancer":
        for entry in ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
            # ipMode Proxy means the load balancer delivers to the node itself: nothing to serve on the VIP.
            if entry.get("ip") and entry.get("ipMode") != "Proxy":
                ingress.append(str(entry["ip"]))

    def add(protocol: str, address: str, port: int | None, kind: str, port_name: str,
            endpoints: tuple[Endpoint, ...], local: bool, everywhere: tuple[Endpoint, ...]) -> None:
        if not port:
            return
        if not any_address and address != node_address and not is_loopback(address):
            plan.problems.append(("AddressNotServed",
                                  f"{kind} address {address} is not a loopback address: the userspace proxy "
                                  f"(no-root network mode) serves only 127.0.0.0/8 and the node address"))
            return
        fkey = (protocol, address, int(port))
        plan.frontends[fkey] = Frontend(fkey, key, port_name, kind, endpoints, affinity,
                                        local_policy=local, cluster_endpoints=everywhere)

    for port in spec.get("ports") or []:
        protocol = port.get("protocol") or "TCP"
        name = port.get("name") or ""
        if protocol not in SUPPORTED_PROTOCOLS:
            mode = "nftables" if any_address else "userspace"
            plan.problems.append(("UnsupportedProtocol",
                                  f"port {name or port.get('port')}: protocol {protocol} is not proxied "
                                  f"(the {mode} proxy serves TCP and UDP)"))
            continue
        everywhere = endpoints_for(slices, name, protocol)
        local = endpoints_for(slices, name, protocol, node_name=node_name)
        internal = local if internal_local else everywhere
        external = local if external_local else everywhere
        for ip in cluster_ips:
            add(protocol, ip, port.get("port"), "ClusterIP", name, internal, internal_local, everywhere)
        for ip in spec.get("externalIPs") or []:
            add(protocol, ip, port.get("port"), "ExternalIP", name, external, external_local, everywhere)
        if stype in ("NodePort", "LoadBalancer"):
            add(protocol, node_address, port.get("nodePort"), "NodePort", name, external, external_local,
                everywhere)
        for ip in ingress:
            add(protocol, ip, port.get("port"), "LoadBalancer", name, external, external_local, everywhere)
    plan.problems = list(dict.fromkeys(plan.problems))
    return plan
