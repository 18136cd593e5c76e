"""The nftables ruleset, rendered from plans: what each Service feature becomes, and what a change rewrites."""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

import pytest

from kubeling.proxy.nftables_rules import (
    NO_ENDPOINT_NODEPORTS,
    NO_ENDPOINT_SERVICES,
    SERVICE_IPS,
    SERVICE_NODEPORTS,
    RuleSettings,
    ServiceRules,
    random_choice,
    render_service,
)
from kubeling.proxy.nftables_transactions import diff_transaction, full_transaction
from kubeling.proxy.rules import plan_service
from tests.unit.proxy.nftnet import endpoint_slice, service

CIDR = RuleSettings(cluster_cidr="10.42.0.0/16")
PODS = {"10.42.0.2": "node-a", "10.42.0.3": "node-a", "10.42.1.4": "node-b"}


def render(svc: dict[str, Any], endpoints: dict[str, str] | None = None, settings: RuleSettings = CIDR,
           protocol: str = "TCP") -> ServiceRules:
    slices = [endpoint_slice(svc["metadata"]["name"], endpoints, protocol=protocol)] if endpoints else []
    plan = plan_service(svc, slices, node_name="node-a", node_address="10.250.0.1", any_address=True)
    return render_service(plan.frontends.values(), settings)


def chain(rules: ServiceRules, prefix: str) -> tuple[str, ...]:
    found = [rs for name, rs in rules.chains.items() if name.startswith(prefix)]
    assert len(found) == 1, (prefix, list(rules.chains))
    return found[0]


def element(rules: ServiceRules, map_: str, key: str) -> str:
    return rules.elements[(map_, key)]


def test_clusterip_dispatches_to_a_random_endpoint_and_masquerades_off_cluster_clients() -> None:
    rules = render(service("web", "10.43.0.5"), PODS)
    target = element(rules, SERVICE_IPS, "10.43.0.5 . tcp . 80")
    assert re.fullmatch(r"goto service-[A-Z2-7]{8}-default/web/tcp/p", target)
    svc_chain = rules.chains[target.split()[1]]
    assert svc_chain[0] == "ip daddr 10.43.0.5 tcp dport 80 ip saddr != 10.42.0.0/16 jump mark-for-masquerade"
    assert [r.split(" goto ")[0] for r in svc_chain[1:]] == ["numgen random mod 3 == 0", "numgen random mod 2 == 0",
                                                            "goto endpoint-" + svc_chain[-1].split("endpoint-")[1]]
    endpoints = {name: rs for name, rs in rules.chains.items() if name.startswith("endpoint-")}
    assert sorted(n.rsplit("__", 1)[1] for n in endpoints) == ["10.42.0.2/8080", "10.42.0.3/8080", "10.42.1.4/8080"]
    for name, rs in endpoints.items():
        pod_ip, port = name.rsplit("__", 1)[1].split("/")
        assert any(r.endswith(f"goto {name}") for r in svc_chain[1:])
        # A pod that reaches itself through its Service (hairpin) is masqueraded.
        assert rs == (f"ip saddr {pod_ip} jump mark-for-masquerade", f"meta l4proto tcp dnat to {pod_ip}:{port}")
    assert not rules.sets and set(rules.elements) == {(SERVICE_IPS, "10.43.0.5 . tcp . 80")}


@pytest.mark.parametrize(("settings", "masquerade"), [
    (RuleSettings(masquerade_all=True), "ip daddr 10.43.0.5 tcp dport 80 jump mark-for-masquerade"),
    (RuleSettings(), None),  # without a cluster CIDR nothing tells pods from the rest: no rule (kube-proxy)
], ids=["masquerade-all", "no-cluster-cidr"])
def test_clusterip_masquerade_settings(settings: RuleSettings, masquerade: str | None) -> None:
    rules = chain(render(service("web", "10.43.0.5"), PODS, settings), "service-")
    assert (rules[0] if masquerade else None) == masquerade
    assert rules[-3].startswith("numgen random mod 3 == 0 goto ") and len(rules) == (4 if masquerade else 3)


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_random_choice_is_uniform(n: int) -> None:
    """Rule i draws `numgen random mod (n-i)` and takes endpoint i on 0: each endpoint gets 1/n exactly."""
    rules = random_choice([f"endpoint-{i}" for i in range(n)])
    reach, chance = Fraction(1), {}
    for rule in rules:
        match = re.fullmatch(r"numgen random mod (\d+) == 0 goto (\S+)", rule)
        if match is None:
            target = re.fullmatch(r"goto (\S+)", rule).group(1)  # type: ignore[union-attr]
            chance[target] = reach
            break
        chance[match.group(2)] = reach / int(match.group(1))
        reach -= chance[match.group(2)]
    assert chance == {f"endpoint-{i}": Fraction(1, n) for i in range(n)}


def test_udp_port() -> None:
    rules = render(service("dns", "10.43.0.10", 53, protocol="UDP"), PODS, protocol="UDP")
    assert (SERVICE_IPS, "10.43.0.10 . udp . 53") in rules.elements
    assert chain(rules, "service-")[0].startswith("ip daddr 10.43.0.10 udp dport 53 ")
    assert all(rs[-1].startswith("meta l4proto udp dnat to ") for n, rs in rules.chains.items()
               if n.startswith("endpoint-"))


def test_nodeport_externalip_and_loadbalancer_go_through_the_external_chain() -> None:
    svc = service("web", "10.43.0.5", stype="LoadBalancer", node_port=30080, externalIPs=["192.0.2.10"])
    svc["status"] = {"loadBalancer": {"ingress": [{"ip": "198.51.100.7", "ipMode": "VIP"},
                                                  {"ip": "198.51.100.8", "ipMode": "Proxy"}]}}
    rules = render(svc, PODS)
    external = chain(rules, "external-")
    service_chain = next(n for n in rules.chains if n.startswith("service-"))
    # Traffic from outside may leave the node for another one: masquerade, then any endpoint.
    assert external == ("jump mark-for-masquerade", f"goto {service_chain}")
    ext = next(n for n in rules.chains if n.startswith("external-"))
    assert rules.elements == {
        (SERVICE_IPS, "10.43.0.5 . tcp . 80"): f"goto {service_chain}",
        (SERVICE_IPS, "192.0.2.10 . tcp . 80"): f"goto {ext}",
        (SERVICE_IPS, "198.51.100.7 . tcp . 80"): f"goto {ext}",  # ipMode Proxy: not served on the VIP
        (SERVICE_NODEPORTS, "tcp . 30080"): f"goto {ext}",  # every local address, not just the node IP
    }


def test_session_affinity_sets_lookups_and_updates() -> None:
    svc = service("sticky", "10.43.0.6", sessionAffinity="ClientIP",
                  sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}})
    rules = render(svc, PODS)
    assert len(rules.sets) == 3
    assert set(rules.sets.values()) == {"{ type ipv4_addr; flags dynamic,timeout; timeout 60s; }"}
    svc_chain = chain(rules, "service-")
    lookups = [r for r in svc_chain if r.startswith("ip saddr @affinity-")]
    assert svc_chain[1:4] == tuple(lookups) and len(svc_chain) == 1 + 3 + 3  # masquerade, lookups, random pick
    for rule in lookups:
        set_name, target = re.fullmatch(r"ip saddr @(\S+) goto (\S+)", rule).groups()  # type: ignore[union-attr]
        assert set_name in rules.sets
        assert rules.chains[target][1] == f"update @{set_name} {{ ip saddr }}"
    # Another timeout is another set (an existing set's definition cannot change in place).
    svc["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"] = 90
    assert not set(render(svc, PODS).sets) & set(rules.sets)


def test_external_traffic_policy_local() -> None:
    svc = service("local", "10.43.0.7", stype="NodePort", node_port=30081, externalTrafficPolicy="Local")
    rules = render(svc, PODS)
    local = chain(rules, "local-")
    assert local[0].startswith("numgen random mod 2 == 0 goto ") and len(local) == 2
    assert "10.42.1.4" not in " ".join(local)  # this node's pods only
    assert "10.42.1.4" in " ".join(chain(rules, "service-"))  # ClusterIP traffic: every pod
    cluster_chain = next(n for n in rules.chains if n.startswith("service-"))
    local_chain = next(n for n in rules.chains if n.startswith("local-"))
    # Source addresses are kept (no masquerade) except for the node itself; pods and the node
    # short-circuit to every endpoint.
    assert chain(rules, "external-") == (
        f"ip saddr 10.42.0.0/16 goto {cluster_chain}",
        "fib saddr type local jump mark-for-masquerade",
        f"fib saddr type local goto {cluster_chain}",
        f"goto {local_chain}")


def test_local_policies_without_local_endpoints_drop_and_never_fall_back() -> None:
    remote = {"10.42.1.4": "node-b"}
    svc = service("local", "10.43.0.7", stype="NodePort", node_port=30081, externalTrafficPolicy="Local",
                  internalTrafficPolicy="Local")
    rules = render(svc, remote)
    assert element(rules, NO_ENDPOINT_SERVICES, "10.43.0.7 . tcp . 80") == "drop"
    assert element(rules, NO_ENDPOINT_NODEPORTS, "tcp . 30081") == "drop"
    assert (SERVICE_IPS, "10.43.0.7 . tcp . 80") not in rules.elements
    assert not any(n.startswith("local-") for n in rules.chains)
    # Pods and the node still reach the Service's NodePort through the cluster-wide endpoints.
    assert element(rules, SERVICE_NODEPORTS, "tcp . 30081").startswith("goto external-")
    assert not any(r.startswith("goto local-") for r in chain(rules, "external-"))


def test_no_endpoints_rejects() -> None:
    svc = service("empty", "10.43.0.8", stype="NodePort", node_port=30082, externalIPs=["192.0.2.11"])
    rules = render(svc, None)
    assert rules.elements == {(NO_ENDPOINT_SERVICES, "10.43.0.8 . tcp . 80"): "goto reject-chain",
                              (NO_ENDPOINT_SERVICES, "192.0.2.11 . tcp . 80"): "goto reject-chain",
                              (NO_ENDPOINT_NODEPORTS, "tcp . 30082"): "goto reject-chain"}
    assert not rules.chains and not rules.sets


def test_ipv6_addresses_and_endpoints_are_left_out() -> None:
    svc = service("dual", "10.43.0.9", externalIPs=["2001:db8::1"])
    rules = render(svc, {"10.42.0.2": "node-a", "fd00::2": "node-a"})
    assert set(rules.elements) == {(SERVICE_IPS, "10.43.0.9 . tcp . 80")}
    assert "fd00" not in " ".join(rules.chains)
    assert chain(rules, "service-")[-1].startswith("goto endpoint-")  # one endpoint: no random choice


def test_chain_names_are_stable_and_per_service_port() -> None:
    a = render(service("web", "10.43.0.5"), PODS)
    b = render(service("web", "10.43.0.5"), {"10.42.0.2": "node-a"})
    assert set(b.chains) < set(a.chains)  # same Service port, same pod: same names
    other = render(service("web2", "10.43.0.6"), PODS)
    assert not set(other.chains) & set(a.chains)
    assert all(len(name) < 256 and re.fullmatch(r"[a-z]+-[A-Z2-7]{8}-[\w./-]+", name) for name in a.chains)


def _lines(text: str) -> list[str]:
    return text.splitlines()


def test_diff_touches_only_the_changed_service() -> None:
    web_before = render(service("web", "10.43.0.5"), PODS)
    web_after = render(service("web", "10.43.0.5"), {"10.42.0.2": "node-a", "10.42.0.9": "node-a"})
    text = diff_transaction({"default/web": web_before}, {"default/web": web_after})
    lines = _lines(text)
    assert all("default/web/" in line for line in lines) and not any("web2" in line for line in lines)
    gone = [n for n in web_before.chains if "10.42.0.3" in n or "10.42.1.4" in n]
    new = next(n for n in web_after.chains if "10.42.0.9" in n)
    kept = next(n for n in web_after.chains if "10.42.0.2" in n)
    svc_chain = next(n for n in web_after.chains if n.startswith("service-"))
    assert f"add chain ip kubeling-proxy {new}" in lines
    assert not any(line.startswith((f"flush chain ip kubeling-proxy {kept}", f"add chain ip kubeling-proxy {kept}",
                                    f"add rule ip kubeling-proxy {kept} ")) for line in lines)  # unchanged
    assert lines.index(f"flush chain ip kubeling-proxy {svc_chain}") < lines.index(
        f"delete chain ip kubeling-proxy {gone[0]}")
    assert all(f"delete chain ip kubeling-proxy {g}" in lines for g in gone)
    assert not any("element" in line for line in lines)  # the ClusterIP still points at the same chain
    assert diff_transaction({"default/web": web_after}, {"default/web": web_after}) == ""


def test_diff_adds_and_deletes_whole_services_in_order() -> None:
    web = render(service("web", "10.43.0.5", sessionAffinity="ClientIP"), PODS)
    added = _lines(diff_transaction({"default/web": ServiceRules()}, {"default/web": web}))
    first_element = min(i for i, line in enumerate(added) if line.startswith("add element"))
    assert all(i < first_element for i, line in enumerate(added) if line.startswith(("add chain", "add set")))
    removed = _lines(diff_transaction({"default/web": web}, {"default/web": ServiceRules()}))
    assert removed[0] == "delete element ip kubeling-proxy service-ips { 10.43.0.5 . tcp . 80 }"
    assert sum(line.startswith("flush chain") for line in removed) == len(web.chains)
    assert sum(line.startswith("delete chain") for line in removed) == len(web.chains)
    assert removed[-3:] == [f"delete set ip kubeling-proxy {s}" for s in web.sets]
    assert max(i for i, line in enumerate(removed) if line.startswith("flush chain")) < min(
        i for i, line in enumerate(removed) if line.startswith("delete chain"))


def test_diff_changes_an_element_by_delete_then_add() -> None:
    with_endpoints = render(service("web", "10.43.0.5"), PODS)
    without = render(service("web", "10.43.0.5"), None)
    lines = _lines(diff_transaction({"k": with_endpoints}, {"k": without}))
    assert lines.index("delete element ip kubeling-proxy service-ips { 10.43.0.5 . tcp . 80 }") < lines.index(
        "add element ip kubeling-proxy no-endpoint-services { 10.43.0.5 . tcp . 80 : goto reject-chain }")


def test_full_transaction_rebuilds_and_removes_what_a_previous_run_left() -> None:
    web = render(service("web", "10.43.0.5", sessionAffinity="ClientIP"), PODS)
    kept = next(n for n in web.chains if n.startswith("service-"))
    stale = ["service-AAAAAAAA-default/old/tcp/p", "endpoint-BBBBBBBB-default/old/tcp/p__10.42.0.9/80"]
    text = full_transaction({"default/web": web}, CIDR, existing_chains=[*stale, kept, "services", "filter-input"],
                            existing_sets=["affinity-CCCCCCCC-default/old/tcp/p__10.42.0.9/80", *web.sets])
    lines = _lines(text)
    assert lines[0].startswith("add table ip kubeling-proxy")
    assert "delete table ip kubeling-proxy" not in lines
    for name in ("service-ips", "service-nodeports", "no-endpoint-services", "no-endpoint-nodeports"):
        assert f"flush map ip kubeling-proxy {name}" in lines
    assert f"flush chain ip kubeling-proxy {kept}" in lines
    assert [line for line in lines if line.startswith("delete")] == [
        *(f"delete chain ip kubeling-proxy {c}" for c in sorted(stale)),
        "delete set ip kubeling-proxy affinity-CCCCCCCC-default/old/tcp/p__10.42.0.9/80"]
    assert "add rule ip kubeling-proxy nat-prerouting jump services" in lines
    assert "add rule ip kubeling-proxy nat-postrouting jump masquerading" in lines
    assert "add rule ip kubeling-proxy masquerading masquerade fully-random" in lines
    replaced = _lines(full_transaction({"default/web": web}, CIDR, existing_chains=stale, replace=True))
    assert replaced[:2] == ["add table ip kubeling-proxy", "delete table ip kubeling-proxy"]
    assert not any(line.startswith("delete chain") for line in replaced)
