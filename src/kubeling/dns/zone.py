"""Small pieces of the cluster DNS schema the record store uses.

Kept apart from `records.py` so that the readiness rules for endpoints and
pods — the part most likely to be argued about — live in one place. (A pod's
resolv.conf is the kubelet's: kubelet/poddns.py.)
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

import dns.name
import dns.rdatatype
import dns.reversename

SCHEMA_VERSION = "1.1.0"  # the kubernetes/dns specification version these records follow

Obj = dict[str, Any]


@dataclass
class ServiceRecords:
    """The records one Service contributes: owner name (lower-case, absolute) -> type -> rdata texts.

    A name with an empty type map still *exists* (NOERROR/NODATA rather than
    NXDOMAIN), e.g. a ClusterIP Service whose address is not allocated yet.
    """

    records: dict[str, dict[int, set[str]]] = field(default_factory=dict)

    def names(self) -> list[str]:
        return list(self.records)

    def touch(self, name: str) -> None:
        self.records.setdefault(name, {})

    def add(self, name: str, rdtype: int, value: str) -> None:
        self.records.setdefault(name, {}).setdefault(rdtype, set()).add(value)

    def add_address(self, name: str, addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
        rdtype = dns.rdatatype.A if addr.version == 4 else dns.rdatatype.AAAA
        self.add(name, rdtype, str(addr))


def dashed(ip: str) -> str:
    """The system-assigned endpoint hostname when the endpoint has none: CoreDNS's `10-3-0-1`."""
    return ip.replace(".", "-").replace(":", "-")


def endpoint_ready(endpoint: Obj) -> bool:
    """EndpointSlice semantics: a nil `ready` condition means ready; terminating endpoints are not."""
    conditions = endpoint.get("conditions") or {}
    return conditions.get("ready") is not False and not conditions.get("terminating")


def pod_ready(pod: Obj) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def reverse_zone(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> dns.name.Name:
    """The reverse zone covering a service range, cut at the octet (nibble for IPv6) boundary.

    127.43.0.0/16 -> 43.127.in-addr.arpa. Used as the SOA owner of negative
    answers for PTR names in the service range.
    """
    full = dns.reversename.from_address(str(network.network_address))
    keep = network.prefixlen // (8 if network.version == 4 else 4)
    return full.split(keep + 3)[1]  # + "in-addr"/"ip6", "arpa" and the root label
