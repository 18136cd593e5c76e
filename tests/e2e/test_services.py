"""Services end to end on one `kubeling up` (the no-root network mode: a loopback address per pod, the
userspace proxy, cluster DNS) driven by the real kubectl 1.33.

A 3-replica Deployment whose pods answer with their own name sits behind a ClusterIP Service: requests
from the node and from another pod spread over all three; a pod failing readiness leaves the endpoints
and gets no traffic; NodePort and LoadBalancer answer on the node address; the cluster DNS serves A,
headless, SRV and NXDOMAIN; `<SVC>_SERVICE_HOST` reaches a later pod; and traffic flows again after
`kubeling up` (and with it the proxy) restarts.

The cluster takes its own random service range, pod range and API port, and lets the allocator pick
NodePorts, so that other test runs on this host never answer in its place.
"""

from __future__ import annotations

import collections
import json
import random
import re
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import dns.message
import dns.query
import dns.rcode
import pytest

from .cluster import Up, kill_pids, pod_host_processes, stable_port
from .conftest import Kubectl, make_kubectl
from .simcluster import get_json, wait_until
from .webapp import CLIENT, WebLookups, object_list, pod_names, spread, web_deployment, web_service

pytestmark = pytest.mark.e2e

Obj = dict[str, Any]
NS = "demo"
NODE = "services-node"
PERIOD = 1  # readiness probe period (seconds)

def manifests() -> str:
    return object_list(
        web_deployment(NS, probe_period=PERIOD, bind_pod_ip=True),
        web_service(NS, "web", ports=[{"name": "http", "port": 80, "targetPort": 8080}]),
        web_service(NS, "web-headless", clusterIP="None", ports=[{"name": "http", "port": 8080}]),
        web_service(NS, "web-np", type="NodePort", ports=[{"port": 80, "targetPort": "http"}]))


def lb_service(port: int) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web-lb", "namespace": NS},
                       "spec": {"type": "LoadBalancer", "selector": {"app": "web"},
                                "ports": [{"port": port, "targetPort": 8080}]}})


class Env(WebLookups):
    def __init__(self, up: Up, k: Kubectl, service_cidr: str) -> None:
        self.up = up
        self.k = k
        self.namespace = NS
        self.service_cidr = service_cidr  # a /16 of 127/8
        self.names: set[str] = set()

    def endpoint_ips(self) -> set[str]:
        ep = get_json(self.k, "endpoints", "web", "-n", NS)
        return {a["ip"] for s in ep.get("subsets") or [] for a in s.get("addresses") or []}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("services")
    service_cidr = f"127.{random.randint(50, 90)}.0.0/16"
    up = Up(tmp / "data", node_name=NODE, extra_args=["--service-cidr", service_cidr])
    e: Env | None = None
    try:
        up.start()
        e = Env(up, make_kubectl(up, 33, tmp), service_cidr)  # type: ignore[arg-type]
        e.k("create", "namespace", NS)
        yield e
    finally:
        up.stop()
        kill_pids(up.survivors())
        if e is not None:
            kill_pids(pod_host_processes(e.names))


@pytest.fixture(scope="module")
def web(env: Env) -> Env:
    """The Deployment and its Services, all 3 pods ready and in the endpoints."""
    k = env.k
    k("apply", "-f", "-", input=manifests())
    wait_until("web 3/3 available", lambda: get_json(k, "deployment", "web", "-n", NS).get("status", {})
               .get("availableReplicas") == 3, timeout=60)
    ips = {p["status"]["podIP"] for p in env.ready_pods()}
    assert len(ips) == 3, ips
    wait_until("3 endpoints", lambda: env.endpoint_ips() == ips and env.slice_ips() == ips, timeout=15)
    return env


def get(url: str, timeout: float = 5) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read().decode()


def test_clusterip_from_the_node_reaches_all_pods(web: Env) -> None:
    ip = web.cluster_ip()
    assert ip.startswith(web.service_cidr.removesuffix("0.0/16")), f"{ip} not in {web.service_cidr}"
    counts = collections.Counter(get(f"http://{ip}:80/") for _ in range(300))
    spread(counts, pod_names(web.ready_pods()), 300)


def test_clusterip_from_another_pod_and_service_env(web: Env) -> None:
    k = web.k
    k("run", "client", "-n", NS, "--image=python:3-slim", "--restart=Never", "--command", "--",
      "sleep", "3600")
    web.names.add("client")
    k("wait", "-n", NS, "--for=condition=Ready", "pod/client", "--timeout=60s")
    ip = web.cluster_ip()
    out = k("exec", "-n", NS, "client", "--", "python3", "-c", CLIENT, f"http://{ip}:80/", "300")
    spread(json.loads(out), pod_names(web.ready_pods()), 300)
    # the pod came after the Service: the kubelet gave it the Service's environment variables
    env = dict(line.split("=", 1) for line in k("exec", "-n", NS, "client", "--", "env").splitlines()
               if "=" in line)
    assert env.get("WEB_SERVICE_HOST") == ip, env
    assert env.get("WEB_SERVICE_PORT") == "80", env
    assert env.get("WEB_SERVICE_PORT_HTTP") == "80", env
    assert env.get("WEB_PORT") == f"tcp://{ip}:80", env
    assert env.get("WEB_PORT_80_TCP_ADDR") == ip, env


def test_nodeport_answers_on_the_node_address(web: Env) -> None:
    node_port = web.svc("web-np")["spec"]["ports"][0]["nodePort"]
    assert 30000 <= node_port <= 32767
    names = pod_names(web.ready_pods())
    counts = collections.Counter(get(f"http://127.0.0.1:{node_port}/") for _ in range(60))
    assert set(counts) == names, counts


def test_loadbalancer_gets_an_ingress_at_once_and_answers(web: Env) -> None:
    port = stable_port()  # a LoadBalancer's port is served on the node address: take one free there
    web.k("apply", "-f", "-", input=lb_service(port))
    t0 = time.monotonic()
    ingress = wait_until("LoadBalancer ingress", lambda: web.svc("web-lb").get("status", {})
                         .get("loadBalancer", {}).get("ingress"), timeout=10, interval=0.1)
    elapsed = time.monotonic() - t0
    assert [i.get("ip") for i in ingress] == ["127.0.0.1"], ingress
    assert elapsed < 2, f"the ingress came after {elapsed:.1f}s"
    row = web.k("get", "svc", "web-lb", "-n", NS, "--no-headers").split()
    assert row[1] == "LoadBalancer" and row[3] == "127.0.0.1", row  # TYPE, EXTERNAL-IP
    assert row[4].startswith(f"{port}:"), row  # PORT(S) port:nodePort
    names = pod_names(web.ready_pods())

    def answers() -> str | None:
        try:
            return get(f"http://127.0.0.1:{port}/", timeout=2)
        except OSError:
            return None

    wait_until(f"127.0.0.1:{port} answers", answers, timeout=5, interval=0.1)
    counts = collections.Counter(get(f"http://127.0.0.1:{port}/") for _ in range(60))
    assert set(counts) == names, counts


def test_kube_dns_service_in_the_service_range(web: Env) -> None:
    """kube-system/kube-dns sits at the .10 of the range given with --service-cidr."""
    net = web.service_cidr
    want = net.replace(".0.0/16", ".0.10")
    found = web.k.run("get", "service", "kube-dns", "-n", "kube-system", "-o", "jsonpath={.spec.clusterIP}",
                      check=False)
    assert found.stdout == want, (f"kube-dns: {found.stdout or found.stderr.strip()}; expected {want} "
                                  f"(--service-cidr {net}); DNS log: {dns_log_lines(web.up)}")


def test_cluster_dns_records(web: Env) -> None:
    """Queried over UDP where this cluster's DNS says it serves (its log line), with dnspython."""
    ip, port = dns_address(web.up)

    def query(name: str, rdtype: str) -> Any:
        return dns.query.udp(dns.message.make_query(name, rdtype), ip, port=port, timeout=3)

    fqdn = f"web.{NS}.svc.cluster.local."
    a = query(fqdn, "A")
    assert a.rcode() == dns.rcode.NOERROR, a
    assert {r.address for rr in a.answer for r in rr} == {web.cluster_ip()}, a
    pod_ips = {p["status"]["podIP"] for p in web.ready_pods()}
    headless = query(f"web-headless.{NS}.svc.cluster.local.", "A")
    assert {r.address for rr in headless.answer for r in rr} == pod_ips, headless
    srv = query(f"_http._tcp.{fqdn}", "SRV")
    assert [(r.port, r.target.to_text()) for rr in srv.answer for r in rr] == [(80, fqdn)], srv
    headless_srv = query(f"_http._tcp.web-headless.{NS}.svc.cluster.local.", "SRV")
    assert {r.port for rr in headless_srv.answer for r in rr} == {8080}, headless_srv
    assert len([r for rr in headless_srv.answer for r in rr]) == 3, headless_srv
    missing = query(f"nothing-here.{NS}.svc.cluster.local.", "A")
    assert missing.rcode() == dns.rcode.NXDOMAIN, missing
    assert not missing.answer


def dns_log_lines(up: Up) -> list[str]:
    return [line for line in up.log_tail(10**7).splitlines() if "kubeling.dns" in line][-3:]


def dns_address(up: Up) -> tuple[str, int]:
    """Where the cluster DNS serves: the kube-dns address on 53 as root, else the fallback it logged."""
    found = wait_until("cluster DNS serving line in the log",
                       lambda: re.findall(r"cluster DNS serving \S+ on ([\d.]+):(\d+)", up.log_tail(10**7)),
                       timeout=10)
    return found[-1][0], int(found[-1][1])


def test_unready_pod_leaves_endpoints_and_gets_no_traffic(web: Env) -> None:
    k = web.k
    pods = web.ready_pods()
    victim = pods[0]
    victim_ip = victim["status"]["podIP"]
    assert get(f"http://{victim_ip}:8080/fail") == victim["metadata"]["name"]
    t0 = time.monotonic()
    wait_until("the unready pod leaves Endpoints and EndpointSlice",
               lambda: victim_ip not in web.endpoint_ips() and victim_ip not in web.slice_ips(), timeout=10)
    elapsed = time.monotonic() - t0
    assert elapsed <= PERIOD + 1.5, f"took {elapsed:.1f}s, probe period {PERIOD}s"
    assert len(web.endpoint_ips()) == 2
    described = k("describe", "svc", "web", "-n", NS)
    line = next(x for x in described.splitlines() if x.startswith("Endpoints:"))
    others = sorted(p["status"]["podIP"] for p in pods[1:])
    assert sorted(x.split(":")[0] for x in line.split()[1].split(",")) == others, described
    ip = web.cluster_ip()
    counts = collections.Counter(get(f"http://{ip}:80/") for _ in range(100))
    assert victim["metadata"]["name"] not in counts, counts
    assert set(counts) == {p["metadata"]["name"] for p in pods[1:]}, counts


def test_traffic_flows_across_a_restart(web: Env) -> None:
    """Last: the proxy lives in `kubeling up`; restart the whole process on the same data dir."""
    up = web.up
    ip = web.cluster_ip()
    assert up.stop() == 0, up.log_tail()
    with pytest.raises((urllib.error.URLError, OSError)):
        get(f"http://{ip}:80/", timeout=2)
    up.start()
    t0 = time.monotonic()

    def answers() -> str | None:
        try:
            return get(f"http://{ip}:80/", timeout=2)
        except OSError:
            return None

    name = wait_until("the ClusterIP answers after the restart", answers, timeout=30)
    elapsed = time.monotonic() - t0
    assert web.cluster_ip() == ip
    assert name in pod_names(web.ready_pods())
    assert elapsed < 10, f"the ClusterIP answered {elapsed:.1f}s after ready"
    counts = collections.Counter(get(f"http://{ip}:80/") for _ in range(30))
    assert set(counts) <= pod_names(web.ready_pods()) and counts, counts

