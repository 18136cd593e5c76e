"""Planning what to serve: endpoint conditions, traffic policies, addresses that cannot be served."""

from __future__ import annotations

from typing import Any

from kubeling.proxy.relay import Backends
from kubeling.proxy.rules import endpoints_for, plan_service


def _slice(*endpoints: dict[str, Any], port: int = 80, name: str = "http") -> dict[str, Any]:
    return {"addressType": "IPv4", "metadata": {"namespace": "ns", "name": "s",
                                               "labels": {"kubernetes.io/service-name": "web"}},
            "ports": [{"name": name, "port": port, "protocol": "TCP"}], "endpoints": list(endpoints)}


def _ep(ip: str, node: str = "a", **conditions: bool) -> dict[str, Any]:
    return {"addresses": [ip], "nodeName": node, "conditions": conditions}


def _svc(**spec: Any) -> dict[str, Any]:
    base = {"type": "ClusterIP", "clusterIP": "127.43.0.5",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}]}
    return {"metadata": {"namespace": "ns", "name": "web"}, "spec": {**base, **spec}}


def test_ready_endpoints_and_terminating_fallback() -> None:
    s = _slice(_ep("127.42.0.1", ready=True), _ep("127.42.0.2", ready=False, serving=True, terminating=True),
               _ep("127.42.0.3"))  # nil ready means ready
    assert endpoints_for([s], "http", "TCP") == (("127.42.0.1", 80), ("127.42.0.3", 80))
    only_terminating = _slice(_ep("127.42.0.2", ready=False, serving=True, terminating=True),
                              _ep("127.42.0.4", ready=False, serving=False, terminating=True))
    assert endpoints_for([only_terminating], "http", "TCP") == (("127.42.0.2", 80),)
    assert endpoints_for([s], "other", "TCP") == ()
    assert endpoints_for([s], "http", "UDP") == ()


def test_traffic_policies_filter_by_node() -> None:
    slices = [_slice(_ep("127.42.0.1", node="a"), _ep("127.42.0.2", node="b"))]
    svc = _svc(type="NodePort", internalTrafficPolicy="Local", externalTrafficPolicy="Cluster")
    plan = plan_service(svc, slices, node_name="a", node_address="127.0.0.1")
    assert plan.frontends[("TCP", "127.43.0.5", 80)].endpoints == (("127.42.0.1", 80),)
    assert len(plan.frontends[("TCP", "127.0.0.1", 30080)].endpoints) == 2
    svc = _svc(type="NodePort", externalTrafficPolicy="Local")
    plan = plan_service(svc, slices, node_name="b", node_address="127.0.0.1")
    assert plan.frontends[("TCP", "127.0.0.1", 30080)].endpoints == (("127.42.0.2", 80),)
    assert len(plan.frontends[("TCP", "127.43.0.5", 80)].endpoints) == 2


def test_frontends_of_each_type_and_problems() -> None:
    svc = _svc(type="LoadBalancer", externalIPs=["127.44.0.1", "192.0.2.1"], sessionAffinity="ClientIP")
    svc["status"] = {"loadBalancer": {"ingress": [{"ip": "127.0.0.1", "ipMode": "VIP"},
                                                  {"ip": "127.9.9.9", "ipMode": "Proxy"}]}}
    plan = plan_service(svc, [], node_name="a", node_address="127.0.0.1")
    kinds = {key: f.kind for key, f in plan.frontends.items()}
    assert kinds == {("TCP", "127.43.0.5", 80): "ClusterIP", ("TCP", "127.44.0.1", 80): "ExternalIP",
                     ("TCP", "127.0.0.1", 30080): "NodePort", ("TCP", "127.0.0.1", 80): "LoadBalancer"}
    assert all(f.affinity_timeout == 10800 for f in plan.frontends.values())
    assert [reason for reason, _ in plan.problems] == ["AddressNotServed"]
    assert not plan_service(_svc(clusterIP="None", clusterIPs=["None"]), [], node_name="a",
                            node_address="127.0.0.1").frontends
    assert not plan_service(_svc(type="ExternalName", externalName="x.example"), [], node_name="a",
                            node_address="127.0.0.1").frontends
    sctp = _svc(ports=[{"name": "s", "port": 9, "protocol": "SCTP"}])
    assert plan_service(sctp, [], node_name="a", node_address="127.0.0.1").problems[0][0] == "UnsupportedProtocol"


def test_backends_affinity_rebalances_when_endpoint_leaves() -> None:
    backends = Backends((("127.42.0.1", 80), ("127.42.0.2", 80)), affinity_timeout=100)
    first = backends.pick("127.0.0.9")
    assert all(backends.pick("127.0.0.9") == first for _ in range(20))
    remaining = tuple(e for e in backends.endpoints if e != first)
    backends.update(remaining, 100)
    assert backends.pick("127.0.0.9") == remaining[0]
    backends.update((), None)
    assert backends.pick("127.0.0.9") is None


def test_privileged_port_message_says_why() -> None:
    import errno

    from kubeling.proxy.userspace import _bind_error

    message = _bind_error(("TCP", "127.43.0.5", 80), PermissionError(errno.EACCES, "Permission denied"))
    assert "below 1024 need root or CAP_NET_BIND_SERVICE" in message and "127.43.0.5:80" in message


def test_services_of_another_proxy_are_skipped() -> None:
    svc = _svc()
    svc["metadata"]["labels"] = {"service.kubernetes.io/service-proxy-name": "kubeling-dns"}
    assert not plan_service(svc, [], node_name="a", node_address="127.0.0.1").frontends


def test_any_address_serves_every_address_and_keeps_cluster_endpoints() -> None:
    """The nftables proxy's view: no address refused; Local frontends still carry every endpoint."""
    slices = [_slice(_ep("10.42.0.1", node="a"), _ep("10.42.1.2", node="b"))]
    svc = _svc(type="NodePort", clusterIP="10.43.0.5", externalIPs=["192.0.2.1"], externalTrafficPolicy="Local")
    plan = plan_service(svc, slices, node_name="a", node_address="10.250.0.1", any_address=True)
    assert not plan.problems
    external = plan.frontends[("TCP", "192.0.2.1", 80)]
    assert external.local_policy and external.endpoints == (("10.42.0.1", 80),)
    assert external.cluster_endpoints == (("10.42.0.1", 80), ("10.42.1.2", 80))
    cluster_ip = plan.frontends[("TCP", "10.43.0.5", 80)]
    assert not cluster_ip.local_policy and cluster_ip.endpoints == cluster_ip.cluster_endpoints
    # The userspace view of the same Service is unchanged: those addresses are reported, not served.
    userspace = plan_service(svc, slices, node_name="a", node_address="10.250.0.1")
    assert [reason for reason, _ in userspace.problems] == ["AddressNotServed", "AddressNotServed"]
    assert set(userspace.frontends) == {("TCP", "10.250.0.1", 30080)}
