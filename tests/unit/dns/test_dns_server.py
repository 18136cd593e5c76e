"""DNSServer over real UDP and TCP on loopback, forwarding to a fake upstream (never a real resolver)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from kubeling.dns.forward import Forwarder, host_resolvers
from kubeling.dns.records import RecordStore
from kubeling.dns.server import DNSServer
from tests.unit.dns.fake_upstream import FakeUpstream
from tests.unit.dns.fixtures import endpoint, endpoint_slice, service

HOST = "127.0.0.1"


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    fake = await FakeUpstream({"www.example.com": ["192.0.2.53"], "example.org": ["192.0.2.1"]}).start()
    yield fake
    fake.close()


@pytest.fixture
async def server(upstream: FakeUpstream) -> AsyncIterator[DNSServer]:
    store = RecordStore("cluster.local", service_cidr="127.43.0.0/16")
    store.upsert_service(service("web", ports=[{"name": "http", "port": 80}]))
    store.upsert_service(service("ext", type_="ExternalName", cluster_ip=None, external_name="www.example.com"))
    store.upsert_service(service("big", cluster_ip="None"))
    store.upsert_slice(endpoint_slice("big", [endpoint(f"127.42.1.{i}") for i in range(1, 61)]))
    forwarder = Forwarder([("127.0.0.2", upstream.port)], timeout=0.5)
    srv = DNSServer(store, forwarder, host=HOST, port=0)
    await srv.start()
    yield srv
    await srv.close()


async def udp(srv: DNSServer, name: str, rdtype: str = "A", **kw: object) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, **kw)  # type: ignore[arg-type]
    return await asyncio.to_thread(dns.query.udp, query, HOST, timeout=3, port=srv.port)


async def tcp(srv: DNSServer, name: str, rdtype: str = "A") -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    return await asyncio.to_thread(dns.query.tcp, query, HOST, timeout=3, port=srv.port)


def addresses(msg: dns.message.Message) -> set[str]:
    return {rd.to_text() for rr in msg.answer if rr.rdtype == dns.rdatatype.A for rd in rr}


async def test_cluster_name_over_udp_and_tcp(server: DNSServer) -> None:
    for send in (udp, tcp):
        msg = await send(server, "web.default.svc.cluster.local")
        assert msg.rcode() == dns.rcode.NOERROR
        assert msg.flags & dns.flags.AA
        assert addresses(msg) == {"127.43.0.20"}
        assert msg.answer[0].ttl == 30


async def test_nxdomain_has_soa(server: DNSServer) -> None:
    msg = await udp(server, "nope.default.svc.cluster.local")
    assert msg.rcode() == dns.rcode.NXDOMAIN
    assert [rr.rdtype for rr in msg.authority] == [dns.rdatatype.SOA]


async def test_srv_over_tcp(server: DNSServer) -> None:
    msg = await tcp(server, "_http._tcp.web.default.svc.cluster.local", "SRV")
    assert [rd.to_text() for rr in msg.answer for rd in rr] == ["0 100 80 web.default.svc.cluster.local."]


async def test_udp_truncates_without_edns_and_tcp_carries_all(server: DNSServer) -> None:
    plain = await udp(server, "big.default.svc.cluster.local")
    assert plain.flags & dns.flags.TC
    assert not plain.answer
    edns = await udp(server, "big.default.svc.cluster.local", use_edns=0, payload=4096)
    assert not edns.flags & dns.flags.TC
    assert len(addresses(edns)) == 60
    small_edns = await udp(server, "big.default.svc.cluster.local", use_edns=0, payload=600)
    assert small_edns.flags & dns.flags.TC
    full = await tcp(server, "big.default.svc.cluster.local")
    assert not full.flags & dns.flags.TC
    assert len(addresses(full)) == 60


async def test_forwarding_and_cache(server: DNSServer, upstream: FakeUpstream) -> None:
    first = await udp(server, "www.example.com")
    assert addresses(first) == {"192.0.2.53"}
    assert not first.flags & dns.flags.AA
    assert first.flags & dns.flags.RA
    second = await tcp(server, "WWW.example.com")
    assert addresses(second) == {"192.0.2.53"}
    assert upstream.queries == ["www.example.com."]  # the second came from the cache
    missing = await udp(server, "missing.example.com")
    assert missing.rcode() == dns.rcode.NXDOMAIN


async def test_external_name_chased_upstream(server: DNSServer) -> None:
    msg = await udp(server, "ext.default.svc.cluster.local")
    assert [rr.rdtype for rr in msg.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]
    assert addresses(msg) == {"192.0.2.53"}


async def test_dead_upstream_is_skipped_then_servfail() -> None:
    dead = await FakeUpstream({}, silent=True).start("127.0.0.3")
    alive = await FakeUpstream({"example.org": ["192.0.2.1"]}).start("127.0.0.4")
    try:
        forwarder = Forwarder([("127.0.0.3", dead.port), ("127.0.0.4", alive.port)], timeout=0.2)
        srv = DNSServer(RecordStore(), forwarder, host=HOST, port=0)
        await srv.start()
        try:
            assert addresses(await udp(srv, "example.org")) == {"192.0.2.1"}
            alive.close()
            forwarder.clear()
            assert (await udp(srv, "example.org")).rcode() == dns.rcode.SERVFAIL
        finally:
            await srv.close()
    finally:
        dead.close()
        alive.close()


async def test_garbage_gets_formerr_or_nothing(server: DNSServer) -> None:
    reply = await server.handle(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xff", udp=True)
    assert reply is not None and reply[:2] == b"\x12\x34" and reply[3] & 0x0F == dns.rcode.FORMERR
    assert await server.handle(b"\x00", udp=True) is None


def test_host_resolvers_parses_and_excludes_ourselves(tmp_path) -> None:  # type: ignore[no-untyped-def]
    conf = tmp_path / "resolv.conf"
    conf.write_text("# c\nsearch x\nnameserver 127.0.0.53\nnameserver 127.43.0.10\nnameserver fe80::1%eth0\n")
    assert host_resolvers(str(conf), exclude=("127.43.0.10",)) == [("127.0.0.53", 53), ("fe80::1", 53)]
    assert host_resolvers(str(tmp_path / "absent")) == []
