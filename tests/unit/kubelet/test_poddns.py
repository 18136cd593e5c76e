"""A pod's resolv.conf and /etc/hosts: Kubernetes' dnsPolicy rules and the kubelet-managed files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kubeling.kubelet import poddns
from kubeling.kubelet.poddns import ResolvConf, parse_resolv_conf, pod_dns
from kubeling.kubelet.podfiles import render_hosts, write_pod_files
from kubeling.kubelet.runconfig import with_pod_mounts
from kubeling.runtime.interface import Mount

HOST = ResolvConf(["192.0.2.53", "192.0.2.54"], ["corp.example"], ["edns0"])
CLUSTER = ["10.43.0.10"]
CLUSTER_SEARCH = ["shop.svc.cluster.local", "svc.cluster.local", "cluster.local"]


def pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "web-0", "namespace": "shop", "uid": "u1"}, "spec": spec}


@pytest.mark.parametrize(("spec", "want"), [
    ({}, ResolvConf(CLUSTER, [*CLUSTER_SEARCH, "corp.example"], ["ndots:5"])),
    ({"dnsPolicy": "ClusterFirst", "hostNetwork": True}, HOST),
    ({"dnsPolicy": "ClusterFirstWithHostNet", "hostNetwork": True},
     ResolvConf(CLUSTER, [*CLUSTER_SEARCH, "corp.example"], ["ndots:5"])),
    ({"dnsPolicy": "ClusterFirstWithHostNet"}, ResolvConf(CLUSTER, [*CLUSTER_SEARCH, "corp.example"], ["ndots:5"])),
    ({"dnsPolicy": "Default"}, HOST),
    ({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.1.1.1"], "searches": ["a.example"],
                                         "options": [{"name": "ndots", "value": "2"}]}},
     ResolvConf(["1.1.1.1"], ["a.example"], ["ndots:2"])),
    ({"dnsConfig": {"nameservers": ["10.43.0.10", "9.9.9.9"], "searches": ["svc.cluster.local", "x.example"],
                    "options": [{"name": "ndots", "value": "1"}, {"name": "single-request"}]}},
     ResolvConf([*CLUSTER, "9.9.9.9"], [*CLUSTER_SEARCH, "corp.example", "x.example"],
                ["ndots:1", "single-request"])),
    ({"dnsPolicy": "Default", "dnsConfig": {"nameservers": ["1.1.1.1", "8.8.8.8"]}},
     ResolvConf(["192.0.2.53", "192.0.2.54", "1.1.1.1"], ["corp.example"], ["edns0"])),  # at most 3 servers
], ids=["cluster-first", "cluster-first-on-host-network-is-default", "with-host-net", "with-host-net-no-hostnet",
        "default", "none", "dns-config-merged", "three-nameservers"])
def test_pod_dns_follows_the_dns_policy(spec: dict[str, Any], want: ResolvConf) -> None:
    assert pod_dns(pod(**spec), cluster_dns=CLUSTER, domain="cluster.local", host=HOST) == want


def test_cluster_first_without_cluster_dns_falls_back_to_the_node() -> None:
    assert pod_dns(pod(), cluster_dns=[], domain="cluster.local", host=HOST) == HOST


def test_parse_and_render_resolv_conf() -> None:
    text = ("# generated\nnameserver 192.0.2.1 \nnameserver 192.0.2.2 # second\ndomain old.example\n"
            "search a.example b.example\noptions ndots:2 timeout:1\noptions ndots:3\n; comment\n")
    conf = parse_resolv_conf(text)
    assert conf == ResolvConf(["192.0.2.1", "192.0.2.2"], ["a.example", "b.example"], ["ndots:3", "timeout:1"])
    assert conf.render() == ("search a.example b.example\nnameserver 192.0.2.1\nnameserver 192.0.2.2\n"
                             "options ndots:3 timeout:1\n")


def test_a_systemd_stub_resolver_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stub, real = tmp_path / "resolv.conf", tmp_path / "systemd-resolv.conf"
    stub.write_text("nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n")
    real.write_text("nameserver 192.0.2.1\nsearch lan\n")
    monkeypatch.setattr(poddns, "HOST_RESOLV_CONF", str(stub))
    monkeypatch.setattr(poddns, "SYSTEMD_RESOLV_CONF", str(real))
    assert poddns.read_host_resolv_conf().nameservers == ["192.0.2.1"]  # 127.0.0.53 is the node's own loopback
    assert poddns.read_host_resolv_conf(str(stub)).nameservers == ["127.0.0.53"]  # --resolv-conf wins
    real.unlink()
    assert poddns.read_host_resolv_conf().nameservers == ["127.0.0.53"]


def test_managed_hosts_file() -> None:
    p = pod(subdomain="web", hostAliases=[{"ip": "192.0.2.9", "hostnames": ["db", "db.local"]}])
    text = render_hosts(p, hostname="web-0", pod_ips=["10.42.0.5"], domain="cluster.local")
    assert text == ("# Kubernetes-managed hosts file.\n"
                    "127.0.0.1\tlocalhost\n"
                    "::1\tlocalhost ip6-localhost ip6-loopback\n"
                    "fe00::0\tip6-localnet\n"
                    "fe00::0\tip6-mcastprefix\n"
                    "fe00::1\tip6-allnodes\n"
                    "fe00::2\tip6-allrouters\n"
                    "10.42.0.5\tweb-0.web.shop.svc.cluster.local\tweb-0\n"
                    "\n# Entries added by HostAliases.\n"
                    "192.0.2.9\tdb\tdb.local\n")
    assert render_hosts(pod(), hostname="web-0", pod_ips=["10.42.0.5"], domain="cluster.local").endswith(
        "fe00::2\tip6-allrouters\n10.42.0.5\tweb-0\n")


@pytest.mark.parametrize(("spec", "files"), [
    ({}, {"/etc/hosts", "/etc/resolv.conf"}),
    ({"dnsPolicy": "Default"}, {"/etc/hosts", "/etc/resolv.conf"}),  # own netns: the node's stub is unusable
    ({"hostNetwork": True}, set()),
    ({"hostNetwork": True, "dnsPolicy": "ClusterFirstWithHostNet"}, {"/etc/resolv.conf"}),
    ({"hostNetwork": True, "dnsPolicy": "Default", "dnsConfig": {"searches": ["x.example"]}}, {"/etc/resolv.conf"}),
], ids=["own-netns", "own-netns-default", "host-network", "host-network-cluster-dns", "host-network-dns-config"])
def test_which_files_a_pod_gets(tmp_path: Path, spec: dict[str, Any], files: set[str]) -> None:
    mounts = write_pod_files(pod(**spec), pod_dir=str(tmp_path / "pods" / "u1"), hostname="web-0",
                             pod_ips=["10.42.0.5"], cluster_dns=CLUSTER, domain="cluster.local", host_resolv=HOST)
    assert {m.container_path for m in mounts} == files
    for m in mounts:
        assert Path(m.host_path).parent == tmp_path / "pods" / "u1" and not m.read_only
        content = Path(m.host_path).read_text()
        if m.container_path == "/etc/resolv.conf":
            want = pod_dns(pod(**spec), cluster_dns=CLUSTER, domain="cluster.local", host=HOST)
            assert parse_resolv_conf(content) == want
        else:
            assert "10.42.0.5\tweb-0\n" in content


def test_a_container_mounting_etc_hosts_itself_keeps_its_own() -> None:
    own = [Mount("/data/hosts", "/etc/hosts/")]
    managed = [Mount("/k/etc-hosts", "/etc/hosts"), Mount("/k/etc-resolv.conf", "/etc/resolv.conf")]
    assert with_pod_mounts(own, managed) == [own[0], managed[1]]
