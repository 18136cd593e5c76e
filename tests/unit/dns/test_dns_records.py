"""RecordStore: the Kubernetes DNS specification as a table (no sockets)."""

from __future__ import annotations

import dns.name
import dns.rcode
import dns.rdatatype
import pytest

from kubeling.dns.records import RecordStore
from tests.unit.dns.fixtures import endpoint, endpoint_slice, pod, service

NOERROR, NXDOMAIN = dns.rcode.NOERROR, dns.rcode.NXDOMAIN
FORWARD = "forward"


def build() -> RecordStore:
    store = RecordStore("cluster.local", service_cidr="127.43.0.0/16", dns_ip="127.43.0.10")
    store.upsert_service(service("web", ports=[{"name": "http", "port": 80, "protocol": "TCP"},
                                               {"port": 8080, "protocol": "TCP"},
                                               {"name": "dns", "port": 53, "protocol": "UDP"}]))
    store.upsert_service(service("db", "data", cluster_ip="None", ports=[{"name": "pg", "port": 5432}]))
    store.upsert_slice(endpoint_slice("db", [
        endpoint("127.42.0.5", hostname="db-0"), endpoint("127.42.0.6", hostname="db-1"),
        endpoint("127.42.0.7", ready=None), endpoint("127.42.0.8", ready=False),
        endpoint("127.42.0.9", terminating=True)], "data",
        ports=[{"name": "pg", "port": 5432, "protocol": "TCP"}]))
    store.upsert_service(service("lonely", cluster_ip="None"))
    store.upsert_service(service("ext", type_="ExternalName", cluster_ip=None, external_name="www.example.com"))
    store.upsert_service(service("alias", type_="ExternalName", cluster_ip=None,
                                 external_name="web.default.svc.cluster.local."))
    store.upsert_service(service("pending", cluster_ip=None))
    store.upsert_service(service("sub", cluster_ip="None"))
    store.upsert_pod(pod("mypod", "127.42.0.30", hostname="box", subdomain="sub"))
    store.upsert_pod(pod("other", "127.42.0.31", hostname="box2", subdomain="sub", ready=False))
    store.upsert_service(service("warm", cluster_ip="None", publish_not_ready=True))
    store.upsert_slice(endpoint_slice("warm", [endpoint("127.42.0.40", ready=False)]))
    dual = service("dual")
    dual["spec"]["clusterIPs"] = ["127.43.0.21", "fd00::21"]
    dual["spec"]["clusterIP"] = "127.43.0.21"
    store.upsert_service(dual)
    return store


def ask(store: RecordStore, name: str, rdtype: str) -> tuple[int | str, set[str], set[str]]:
    """(rcode or "forward", answer records as "type rdata", authority types)."""
    answer = store.lookup(dns.name.from_text(name), dns.rdatatype.from_text(rdtype))
    if answer is None:
        return FORWARD, set(), set()
    records = {f"{dns.rdatatype.to_text(rr.rdtype)} {rd.to_text()}" for rr in answer.answer for rd in rr}
    return answer.rcode, records, {dns.rdatatype.to_text(rr.rdtype) for rr in answer.authority}


CASES = [
    ("clusterip-a", "web.default.svc.cluster.local", "A", NOERROR, {"A 127.43.0.20"}),
    ("case-insensitive", "WEB.Default.SVC.cluster.LOCAL", "A", NOERROR, {"A 127.43.0.20"}),
    ("clusterip-aaaa-nodata", "web.default.svc.cluster.local", "AAAA", NOERROR, set()),
    ("clusterip-txt-nodata", "web.default.svc.cluster.local", "TXT", NOERROR, set()),
    ("dual-stack-aaaa", "dual.default.svc.cluster.local", "AAAA", NOERROR, {"AAAA fd00::21"}),
    ("srv-clusterip", "_http._tcp.web.default.svc.cluster.local", "SRV", NOERROR,
     {"SRV 0 100 80 web.default.svc.cluster.local."}),
    ("srv-udp", "_dns._udp.web.default.svc.cluster.local", "SRV", NOERROR,
     {"SRV 0 100 53 web.default.svc.cluster.local."}),
    ("srv-wrong-proto", "_http._udp.web.default.svc.cluster.local", "SRV", NXDOMAIN, set()),
    ("srv-ent-nodata", "_tcp.web.default.svc.cluster.local", "SRV", NOERROR, set()),
    ("ptr-clusterip", "20.0.43.127.in-addr.arpa", "PTR", NOERROR, {"PTR web.default.svc.cluster.local."}),
    ("ptr-unknown-in-range", "99.0.43.127.in-addr.arpa", "PTR", NXDOMAIN, set()),
    ("ptr-outside-range", "1.1.168.192.in-addr.arpa", "PTR", FORWARD, set()),
    ("headless-a-ready-only", "db.data.svc.cluster.local", "A", NOERROR,
     {"A 127.42.0.5", "A 127.42.0.6", "A 127.42.0.7"}),
    ("headless-hostname", "db-0.db.data.svc.cluster.local", "A", NOERROR, {"A 127.42.0.5"}),
    ("headless-dashed-hostname", "127-42-0-7.db.data.svc.cluster.local", "A", NOERROR, {"A 127.42.0.7"}),
    ("headless-not-ready-hostname", "127-42-0-8.db.data.svc.cluster.local", "A", NXDOMAIN, set()),
    ("headless-srv", "_pg._tcp.db.data.svc.cluster.local", "SRV", NOERROR,
     {"SRV 0 100 5432 db-0.db.data.svc.cluster.local.", "SRV 0 100 5432 db-1.db.data.svc.cluster.local.",
      "SRV 0 100 5432 127-42-0-7.db.data.svc.cluster.local."}),
    ("headless-ptr", "5.0.42.127.in-addr.arpa", "PTR", NOERROR, {"PTR db-0.db.data.svc.cluster.local."}),
    ("headless-no-endpoints-nxdomain", "lonely.default.svc.cluster.local", "A", NXDOMAIN, set()),
    ("headless-publish-not-ready", "warm.default.svc.cluster.local", "A", NOERROR, {"A 127.42.0.40"}),
    ("pod-hostname-subdomain", "box.sub.default.svc.cluster.local", "A", NOERROR, {"A 127.42.0.30"}),
    ("pod-hostname-not-ready", "box2.sub.default.svc.cluster.local", "A", NXDOMAIN, set()),
    ("externalname-cname", "ext.default.svc.cluster.local", "A", NOERROR, {"CNAME www.example.com."}),
    ("externalname-cname-query", "ext.default.svc.cluster.local", "CNAME", NOERROR, {"CNAME www.example.com."}),
    ("externalname-in-cluster-followed", "alias.default.svc.cluster.local", "A", NOERROR,
     {"CNAME web.default.svc.cluster.local.", "A 127.43.0.20"}),
    ("unallocated-clusterip-nodata", "pending.default.svc.cluster.local", "A", NOERROR, set()),
    ("missing-service-nxdomain", "nope.default.svc.cluster.local", "A", NXDOMAIN, set()),
    ("missing-namespace-nxdomain", "web.nope.svc.cluster.local", "A", NXDOMAIN, set()),
    ("namespace-ent-nodata", "default.svc.cluster.local", "A", NOERROR, set()),
    ("svc-ent-nodata", "svc.cluster.local", "A", NOERROR, set()),
    ("apex-soa", "cluster.local", "SOA", NOERROR,
     {"SOA ns.dns.cluster.local. hostmaster.cluster.local. {serial} 7200 1800 86400 30"}),
    ("apex-a-nodata", "cluster.local", "A", NOERROR, set()),
    ("random-in-zone-nxdomain", "foo.cluster.local", "A", NXDOMAIN, set()),
    ("dns-version", "dns-version.cluster.local", "TXT", NOERROR, {'TXT "1.1.0"'}),
    ("ns-host", "ns.dns.cluster.local", "A", NOERROR, {"A 127.43.0.10"}),
    ("pod-a", "127-42-0-30.default.pod.cluster.local", "A", NOERROR, {"A 127.42.0.30"}),
    ("pod-aaaa-nodata", "127-42-0-30.default.pod.cluster.local", "AAAA", NOERROR, set()),
    ("pod-bad-ip-nxdomain", "1-2-3.default.pod.cluster.local", "A", NXDOMAIN, set()),
    ("not-cluster-forwarded", "example.com", "A", FORWARD, set()),
    ("cluster-suffix-lookalike-forwarded", "cluster.local.example.com", "A", FORWARD, set()),
]


@pytest.mark.parametrize(("name", "rdtype", "rcode", "records"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_lookup(name: str, rdtype: str, rcode: int | str, records: set[str]) -> None:
    store = build()
    got_rcode, got, authority = ask(store, name, rdtype)
    assert got_rcode == rcode
    assert got == {r.replace("{serial}", str(store.serial)) for r in records}
    if rcode != FORWARD and not records:
        assert authority == {"SOA"}  # negative answers carry the SOA (RFC 2308)


def test_answer_keeps_question_spelling() -> None:
    answer = build().lookup(dns.name.from_text("WeB.default.svc.cluster.local"), dns.rdatatype.A)
    assert answer is not None and answer.answer[0].name.to_text() == "WeB.default.svc.cluster.local."


def test_srv_additional_has_target_addresses() -> None:
    answer = build().lookup(dns.name.from_text("_pg._tcp.db.data.svc.cluster.local"), dns.rdatatype.SRV)
    assert answer is not None
    glue = {(rr.name.to_text(), rd.to_text()) for rr in answer.additional for rd in rr}
    assert ("db-0.db.data.svc.cluster.local.", "127.42.0.5") in glue


def test_external_name_outside_cluster_is_chased() -> None:
    answer = build().lookup(dns.name.from_text("ext.default.svc.cluster.local"), dns.rdatatype.A)
    assert answer is not None and answer.chase == dns.name.from_text("www.example.com")


def test_delete_and_update_remove_records() -> None:
    store = build()
    store.delete_service(service("web"))
    assert ask(store, "web.default.svc.cluster.local", "A")[0] == NXDOMAIN
    assert ask(store, "20.0.43.127.in-addr.arpa", "PTR")[0] == NXDOMAIN
    assert ask(store, "_http._tcp.web.default.svc.cluster.local", "SRV")[0] == NXDOMAIN
    store.delete_slice(endpoint_slice("db", [], "data"))
    assert ask(store, "db.data.svc.cluster.local", "A")[0] == NXDOMAIN
    assert ask(store, "data.svc.cluster.local", "A")[0] == NXDOMAIN  # no service left in the namespace
    store.upsert_pod(pod("mypod", "127.42.0.30", hostname="box", subdomain="elsewhere"))
    assert ask(store, "box.sub.default.svc.cluster.local", "A")[0] == NXDOMAIN
    store.upsert_slice(endpoint_slice("db", [endpoint("127.42.0.50", hostname="db-0")], "data"))
    assert ask(store, "db-0.db.data.svc.cluster.local", "A")[1] == {"A 127.42.0.50"}
