"""Forwarding of non-cluster names to the host's resolvers, with a TTL cache.

Why forward at all: pods use the cluster DNS server as their only nameserver
(resolv.conf points at it), so it must also answer `example.com` — CoreDNS's
`forward . /etc/resolv.conf` plus `cache`. Upstreams are tried in order over
UDP with a per-try timeout, retried over TCP when the answer comes back
truncated; a positive answer is cached for its smallest TTL, a negative one
for its SOA minimum (RFC 2308), both capped, so a busy pod does not hammer the
host's resolver. Our own listen address is never an upstream (that would be a
forwarding loop when the host's resolv.conf already points at us).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from pathlib import Path

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

log = logging.getLogger(__name__)

Upstream = tuple[str, int]
CacheKey = tuple[str, int, int]


def host_resolvers(path: str = "/etc/resolv.conf", *, exclude: tuple[str, ...] = ()) -> list[Upstream]:
    """The `nameserver` lines of a resolv.conf as (ip, 53), minus `exclude` (ourselves)."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        log.warning("cannot read %s (%s); no upstream resolvers", path, exc.strerror)
        return []
    out: list[Upstream] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver" and parts[1] not in exclude:
            out.append((parts[1].split("%")[0], 53))
    return out


class Forwarder:
    """Resolves names outside the cluster through upstream resolvers, caching answers by TTL."""

    def __init__(self, upstreams: list[Upstream], *, timeout: float = 2.0, max_ttl: int = 3600,
                 negative_ttl: int = 30, cache_size: int = 10_000) -> None:
        self.upstreams = list(upstreams)
        self.timeout = timeout
        self.max_ttl = max_ttl
        self.negative_ttl = negative_ttl
        self.cache_size = cache_size
        self._cache: OrderedDict[CacheKey, tuple[float, float, dns.message.Message]] = OrderedDict()

    async def resolve(self, qname: dns.name.Name, rdtype: int, rdclass: int = 1) -> dns.message.Message:
        """The upstream response for the question (TTLs aged if it came from the cache).

        Every upstream failing yields a SERVFAIL message rather than an exception:
        the caller always has something to send back.
        """
        key = (qname.canonicalize().to_text(), rdtype, rdclass)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None:
            stored, expires, msg = hit
            if now < expires:
                self._cache.move_to_end(key)
                return _aged(msg, int(now - stored))
            del self._cache[key]
        query = dns.message.make_query(qname, rdtype, rdclass, use_edns=0, payload=1232)
        for host, port in self.upstreams:
            try:
                response = await dns.asyncquery.udp(query, host, timeout=self.timeout, port=port)
                if response.flags & dns.flags.TC:
                    response = await dns.asyncquery.tcp(query, host, timeout=self.timeout, port=port)
            except (dns.exception.DNSException, OSError, TimeoutError) as exc:
                log.debug("upstream %s:%d failed for %s: %s", host, port, qname, exc)
                continue
            if response.rcode() in (dns.rcode.SERVFAIL, dns.rcode.REFUSED):
                continue  # another upstream may do better; a lame answer is never cached
            self._store(key, response, now)
            return response
        log.warning("no upstream answered %s %s (tried %d)", qname, dns.rdatatype.to_text(rdtype),
                    len(self.upstreams))
        failed = dns.message.make_response(query)
        failed.set_rcode(dns.rcode.SERVFAIL)
        return failed

    def _store(self, key: CacheKey, msg: dns.message.Message, now: float) -> None:
        ttl = self._ttl(msg)
        if ttl <= 0:
            return
        self._cache[key] = (now, now + ttl, msg)
        self._cache.move_to_end(key)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def _ttl(self, msg: dns.message.Message) -> int:
        if msg.answer:
            return min(self.max_ttl, *(rr.ttl for rr in msg.answer))
        soa = [rr for rr in msg.authority if rr.rdtype == dns.rdatatype.SOA]
        if soa:
            return min(self.negative_ttl, soa[0].ttl, soa[0][0].minimum)
        return min(self.negative_ttl, 5)

    def clear(self) -> None:
        self._cache.clear()


def _aged(msg: dns.message.Message, elapsed: int) -> dns.message.Message:
    """A copy of a cached response whose TTLs are reduced by the time it spent in the cache."""
    out = dns.message.Message(id=msg.id)
    out.flags = msg.flags
    out.set_rcode(msg.rcode())
    out.question = list(msg.question)
    for section, target in ((msg.answer, out.answer), (msg.authority, out.authority),
                            (msg.additional, out.additional)):
        for rr in section:
            copy = dns.rrset.RRset(rr.name, rr.rdclass, rr.rdtype, rr.covers)
            copy.update(rr)
            copy.ttl = max(0, rr.ttl - elapsed)
            target.append(copy)
    return out


async def first_answer(forwarder: Forwarder, qname: dns.name.Name, rdtype: int) -> dns.message.Message | None:
    """Resolve with a hard deadline (used to chase ExternalName CNAMEs); None on failure."""
    try:
        return await asyncio.wait_for(forwarder.resolve(qname, rdtype), forwarder.timeout * 2)
    except TimeoutError:
        return None
