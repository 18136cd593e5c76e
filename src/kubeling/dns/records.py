"""The cluster DNS record store: Kubernetes objects in, DNS answers out.

Why a separate, socket-free module: the Kubernetes DNS specification
(kubernetes/dns docs/specification.md) is a set of precise rules — which name
exists, when the answer is NXDOMAIN and when it is NOERROR with no data,
what a headless Service returns, which SRV targets — and those rules are best
tested as a table, without a network. The informers (see `component.py`) feed
Services, EndpointSlices and Pods in through `upsert_*`/`delete_*`; each change
recomputes the records of the one Service it touches and swaps them into a
name index, so a lookup is a dict access however many Services exist.

Names are stored lower-case (every comparison is case-insensitive, as the spec
says); answers are built on the question's own spelling of the name, so
resolvers that check the echoed case (0x20 randomisation) are happy.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import dns.exception
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.reversename
import dns.rrset

from kubeling.dns.zone import (
    SCHEMA_VERSION,
    ServiceRecords,
    dashed,
    endpoint_ready,
    pod_ready,
    reverse_zone,
)

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, name)
RRset = dns.rrset.RRset

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MAX_CNAME_CHAIN = 8


@dataclass
class Answer:
    """The outcome of one authoritative lookup, ready to copy into a response.

    `chase` is set when the answer ends in a CNAME pointing outside the
    cluster (an ExternalName Service): the server resolves that name upstream
    and appends what it gets, as CoreDNS does.
    """

    rcode: int = dns.rcode.NOERROR
    answer: list[RRset] = field(default_factory=list)
    authority: list[RRset] = field(default_factory=list)
    additional: list[RRset] = field(default_factory=list)
    chase: dns.name.Name | None = None


class RecordStore:
    """Kubernetes-spec DNS records for one cluster domain, kept current by informer callbacks.

    `lookup(name, rdtype)` answers for the cluster zone and for PTR names it
    knows (or that fall in the service range); it returns None for names that
    are not its own, which the caller forwards upstream.
    """

    def __init__(self, domain: str = "cluster.local", *, service_cidr: str = "127.43.0.0/16",
                 ttl: int = 30, dns_ip: str | None = None) -> None:
        self.zone = dns.name.from_text(domain).canonicalize()
        self.domain = self.zone.to_text()  # "cluster.local."
        self.ttl = ttl
        self.dns_ip = dns_ip
        self.service_cidr = ipaddress.ip_network(service_cidr, strict=False)
        self.reverse_zone = reverse_zone(self.service_cidr)
        self._pod_zone = dns.name.from_text("pod", self.zone)
        self._services: dict[Key, Obj] = {}
        self._slices: dict[Key, Obj] = {}
        self._slice_owner: dict[Key, Key] = {}  # slice -> its service
        self._slices_by_svc: dict[Key, set[Key]] = {}
        self._pods_by_subdomain: dict[Key, dict[str, Obj]] = {}  # (ns, subdomain) -> pod name -> pod
        self._pod_subdomain: dict[Key, Key] = {}
        self._records: dict[Key, ServiceRecords] = {}
        self._names: dict[str, set[Key]] = {}  # owner name -> services contributing records there
        self._ancestors: dict[str, int] = {}  # empty non-terminals (refcounted): they exist, with no data
        self.serial = 1

    # -- inputs (informer callbacks) ----------------------------------------------------------

    def upsert_service(self, svc: Obj) -> None:
        key = _key(svc)
        self._services[key] = svc
        self._rebuild(key)

    def delete_service(self, svc: Obj) -> None:
        key = _key(svc)
        self._services.pop(key, None)
        self._rebuild(key)

    def upsert_slice(self, eps: Obj) -> None:
        key = _key(eps)
        old_owner = self._slice_owner.pop(key, None)
        if old_owner is not None:
            self._slices_by_svc.get(old_owner, set()).discard(key)
        svc_name = ((eps.get("metadata") or {}).get("labels") or {}).get(SERVICE_NAME_LABEL)
        self._slices[key] = eps
        if svc_name:
            owner = (key[0], svc_name)
            self._slice_owner[key] = owner
            self._slices_by_svc.setdefault(owner, set()).add(key)
            self._rebuild(owner)
        if old_owner is not None and old_owner != self._slice_owner.get(key):
            self._rebuild(old_owner)

    def delete_slice(self, eps: Obj) -> None:
        key = _key(eps)
        self._slices.pop(key, None)
        owner = self._slice_owner.pop(key, None)
        if owner is not None:
            self._slices_by_svc.get(owner, set()).discard(key)
            self._rebuild(owner)

    def upsert_pod(self, pod: Obj) -> None:
        key = _key(pod)
        spec = pod.get("spec") or {}
        sub = (key[0], spec["subdomain"]) if spec.get("hostname") and spec.get("subdomain") else None
        old = self._pod_subdomain.pop(key, None)
        if old is not None and old != sub:
            self._pods_by_subdomain.get(old, {}).pop(key[1], None)
            self._rebuild(old)
        if sub is not None:
            self._pod_subdomain[key] = sub
            self._pods_by_subdomain.setdefault(sub, {})[key[1]] = pod
            self._rebuild(sub)

    def delete_pod(self, pod: Obj) -> None:
        key = _key(pod)
        sub = self._pod_subdomain.pop(key, None)
        if sub is not None:
            self._pods_by_subdomain.get(sub, {}).pop(key[1], None)
            self._rebuild(sub)

    # -- indexing ---------------------------------------------------------------------------------

    def _rebuild(self, key: Key) -> None:
        """Recompute one Service's records and swap them into the name index."""
        old = self._records.pop(key, None)
        if old is not None:
            for name in old.names():
                owners = self._names.get(name)
                if owners is not None:
                    owners.discard(key)
                    if not owners:
                        del self._names[name]
                self._count_ancestors(name, -1)
        new = self._compute(key)
        if new is not None:
            self._records[key] = new
            for name in new.names():
                self._names.setdefault(name, set()).add(key)
                self._count_ancestors(name, +1)
        self.serial += 1

    def _count_ancestors(self, name: str, delta: int) -> None:
        parent = dns.name.from_text(name).parent()
        while len(parent) > 1 and parent.to_text() not in ("in-addr.arpa.", "ip6.arpa."):
            text = parent.to_text()
            count = self._ancestors.get(text, 0) + delta
            if count > 0:
                self._ancestors[text] = count
            else:
                self._ancestors.pop(text, None)
            if parent == self.zone:
                break
            parent = parent.parent()

    def _compute(self, key: Key) -> ServiceRecords | None:
        svc = self._services.get(key)
        if svc is None:
            return None
        ns, name = key
        spec = svc.get("spec") or {}
        base = f"{name}.{ns}.svc.{self.domain}".lower()
        out = ServiceRecords()
        if spec.get("type") == "ExternalName":
            target = str(spec.get("externalName") or "").rstrip(".")
            if target:
                out.add(base, dns.rdatatype.CNAME, target.lower() + ".")
            return out
        if spec.get("clusterIP") != "None":
            out.touch(base)  # exists even before the allocator gives it an address: NODATA, not NXDOMAIN
            for ip in spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else []):
                if (addr := _ip(ip)) is not None:
                    out.add_address(base, addr)
                    out.add(dns.reversename.from_address(str(addr)).to_text(), dns.rdatatype.PTR, base)
            for port in spec.get("ports") or []:
                if port.get("name"):
                    out.add(_srv_name(port, base), dns.rdatatype.SRV, f"0 100 {port.get('port')} {base}")
            return out
        # Headless: the ready endpoints themselves, each with a hostname of its own.
        publish_all = bool(spec.get("publishNotReadyAddresses"))
        endpoints: list[tuple[str, str, list[Obj]]] = []  # (ip, hostname, ports)
        for slice_key in sorted(self._slices_by_svc.get(key, ())):
            eps = self._slices[slice_key]
            if eps.get("addressType") == "FQDN":
                continue
            ports = eps.get("ports") or []
            for ep in eps.get("endpoints") or []:
                if not (publish_all or endpoint_ready(ep)):
                    continue
                for ip in ep.get("addresses") or []:
                    endpoints.append((ip, ep.get("hostname") or dashed(ip), ports))
        svc_ports = [{"name": p.get("name"), "protocol": p.get("protocol"),
                      "port": p["targetPort"] if isinstance(p.get("targetPort"), int) else p.get("port")}
                     for p in spec.get("ports") or []]
        for pod in (self._pods_by_subdomain.get(key) or {}).values():
            ip = (pod.get("status") or {}).get("podIP")
            if ip and (publish_all or pod_ready(pod)) and not pod.get("metadata", {}).get("deletionTimestamp"):
                endpoints.append((ip, pod["spec"]["hostname"], svc_ports))
        if not endpoints:
            return None  # spec 2.4.1: no ready endpoints -> NXDOMAIN
        for ip, host, ports in endpoints:
            addr = _ip(ip)
            if addr is None:
                continue
            target = f"{host}.{base}".lower()
            out.add_address(base, addr)
            out.add_address(target, addr)
            out.add(dns.reversename.from_address(str(addr)).to_text(), dns.rdatatype.PTR, target)
            for port in ports:
                if port.get("name"):
                    out.add(_srv_name(port, base), dns.rdatatype.SRV, f"0 100 {port.get('port')} {target}")
        return out

    # -- lookup -------------------------------------------------------------------------------------

    def lookup(self, qname: dns.name.Name, rdtype: int) -> Answer | None:
        """Answer `qname`/`rdtype` if this store is authoritative for it; None means "forward it"."""
        canon = qname.canonicalize()
        if canon.is_subdomain(self.zone):
            return self._answer_in_zone(qname, rdtype)
        if rdtype in (dns.rdatatype.PTR, dns.rdatatype.ANY) or canon.to_text() in self._names:
            text = canon.to_text()
            if text in self._names:
                return self._answer_name(qname, rdtype, self.reverse_zone)
            try:
                addr = ipaddress.ip_address(dns.reversename.to_address(canon))
            except (dns.exception.DNSException, ValueError):
                return None
            if addr in self.service_cidr:
                return self._negative(dns.rcode.NXDOMAIN, self.reverse_zone)
        return None

    def _answer_in_zone(self, qname: dns.name.Name, rdtype: int, depth: int = 0) -> Answer:
        canon = qname.canonicalize()
        text = canon.to_text()
        static = self._static_records(canon)
        if static is not None:
            found = [rr for rr in static if rdtype in (rr.rdtype, dns.rdatatype.ANY)]
            return Answer(answer=_rename(found, qname)) if found else self._negative(dns.rcode.NOERROR)
        if canon.is_subdomain(self._pod_zone):
            return self._pod_answer(qname, rdtype)
        if text in self._names:
            answer = self._answer_name(qname, rdtype, self.zone)
            cname = next((rr for rr in answer.answer if rr.rdtype == dns.rdatatype.CNAME), None)
            if cname is None or rdtype in (dns.rdatatype.CNAME, dns.rdatatype.ANY):
                return answer
            target: dns.name.Name = cname[0].target
            if target.is_subdomain(self.zone) and depth < MAX_CNAME_CHAIN:
                followed = self._answer_in_zone(target, rdtype, depth + 1)
                followed.answer[:0] = answer.answer
                return followed
            answer.chase = target
            return answer
        if text in self._ancestors:
            return self._negative(dns.rcode.NOERROR)
        return self._negative(dns.rcode.NXDOMAIN)

    def _answer_name(self, qname: dns.name.Name, rdtype: int, zone: dns.name.Name) -> Answer:
        text = qname.canonicalize().to_text()
        merged: dict[int, set[str]] = {}
        for owner in sorted(self._names.get(text, ())):
            for rtype, values in self._records[owner].records.get(text, {}).items():
                merged.setdefault(rtype, set()).update(values)
        if dns.rdatatype.CNAME in merged:
            rdtypes = [dns.rdatatype.CNAME]
        elif rdtype == dns.rdatatype.ANY:
            rdtypes = sorted(merged)
        else:
            rdtypes = [rdtype] if merged.get(rdtype) else []
        found = [self._rrset(qname, t, sorted(merged[t])) for t in rdtypes if merged.get(t)]
        if not found:
            return self._negative(dns.rcode.NOERROR, zone)
        answer = Answer(answer=found)
        if found[0].rdtype == dns.rdatatype.SRV:
            answer.additional = self._glue(rd.target for rd in found[0])
        return answer

    def _glue(self, targets: Iterable[dns.name.Name]) -> list[RRset]:
        """A/AAAA records of SRV targets for the additional section (spec 2.3.2 / 2.4.2 "may")."""
        glue: list[RRset] = []
        for target in sorted(set(targets)):
            for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                glue.extend(self._answer_name(target, rdtype, self.zone).answer)
        return glue

    def _static_records(self, canon: dns.name.Name) -> list[RRset] | None:
        """Records that exist regardless of cluster state: the apex, the schema version, the NS host."""
        if canon == self.zone:
            ns_host = dns.name.from_text("ns.dns", self.zone)
            return [self._soa(), self._rrset(self.zone, dns.rdatatype.NS, [ns_host.to_text()])]
        if canon == dns.name.from_text("dns-version", self.zone):
            return [self._rrset(canon, dns.rdatatype.TXT, [f'"{SCHEMA_VERSION}"'])]
        if canon == dns.name.from_text("ns.dns", self.zone):
            return [self._rrset(canon, dns.rdatatype.A, [self.dns_ip])] if self.dns_ip else []
        if canon in (dns.name.from_text("dns", self.zone), self._pod_zone,
                     dns.name.from_text("svc", self.zone)):
            return []
        return None

    def _pod_answer(self, qname: dns.name.Name, rdtype: int) -> Answer:
        """`a-b-c-d.<ns>.pod.<zone>` (spec 2.6, deprecated but required): synthesized from the name."""
        labels = qname.canonicalize().relativize(self._pod_zone).labels
        if len(labels) == 1:
            return self._negative(dns.rcode.NOERROR)  # a namespace: exists, holds no data itself
        if len(labels) == 2:
            addr = _ip(labels[0].decode().replace("-", "."))
            if isinstance(addr, ipaddress.IPv4Address) and rdtype in (dns.rdatatype.A, dns.rdatatype.ANY):
                return Answer(answer=[self._rrset(qname, dns.rdatatype.A, [str(addr)])])
            if addr is not None:
                return self._negative(dns.rcode.NOERROR)
        return self._negative(dns.rcode.NXDOMAIN)

    def _negative(self, rcode: int, zone: dns.name.Name | None = None) -> Answer:
        """NXDOMAIN or NODATA, with the zone's SOA in authority so resolvers can cache it (RFC 2308)."""
        return Answer(rcode=rcode, authority=[self._soa(zone)])

    def _soa(self, zone: dns.name.Name | None = None) -> RRset:
        zone = zone or self.zone
        soa = (f"ns.dns.{self.domain} hostmaster.{self.domain} {self.serial % 2**32} "
               f"7200 1800 86400 {self.ttl}")
        return self._rrset(zone, dns.rdatatype.SOA, [soa])

    def _rrset(self, name: dns.name.Name, rdtype: int, values: list[str]) -> RRset:
        return dns.rrset.from_text_list(name, self.ttl, dns.rdataclass.IN, rdtype, values)


def _key(obj: Obj) -> Key:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name") or ""


def _ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _srv_name(port: Obj, base: str) -> str:
    return f"_{port['name']}._{(port.get('protocol') or 'TCP').lower()}.{base}".lower()


def _rename(rrsets: list[RRset], qname: dns.name.Name) -> list[RRset]:
    """The same records owned by the question's spelling of the name."""
    out = []
    for rr in rrsets:
        if rr.name == qname:
            copy = dns.rrset.RRset(qname, rr.rdclass, rr.rdtype)
            copy.update(rr)
            out.append(copy)
        else:
            out.append(rr)
    return out
