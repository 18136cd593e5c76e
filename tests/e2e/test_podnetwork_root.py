"""The root network mode end to end: two nodes, each in a network namespace this test creates.

Node 1 runs `kubeling up --pod-network cni`, node 2 `kubeling agent --pod-network cni --disable proxy`
plus `kubeling proxy` as a process of its own (so the proxy can be restarted alone). Pods live in
their own network namespaces wired by the CNI plugins, pod traffic crosses nodes over host-gw
routes, Services are nftables rules, and each node serves cluster DNS on the kube-dns address.
Driven by the real kubectl 1.33 and the `kubernetes` client through a forwarder on the machine's
loopback (netcluster.py); every address, bridge and rule lives in the test's namespaces.

A 3-replica Deployment whose pods answer with their own name (and the address they saw the
request come from) sits behind ClusterIP, headless, NodePort and LoadBalancer Services.
"""

from __future__ import annotations

import collections
import ipaddress
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from .cluster import _Process, kill_pids, pod_host_processes
from .conftest import Kubectl, kubectl_binary
from .netcluster import (
    ApiForwarder,
    NetAgent,
    NetUp,
    Topology,
    forwarded_kubeconfig,
    root_network_skip_reason,
)
from .simcluster import get_json, wait_until
from .webapp import CLIENT, SERVER, WebLookups, object_list, pod_names, spread, web_deployment, web_service

pytestmark = pytest.mark.e2e

Obj = dict[str, Any]
NS = "demo"
NODES = ("net-a", "net-b")
PERIOD = 1  # readiness probe period (seconds)
DNS_IP = "10.43.0.10"

SPREAD = {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
          "labelSelector": {"matchLabels": {"app": "web"}}}


def manifests() -> str:
    return object_list(
        web_deployment(NS, probe_period=PERIOD, bind_pod_ip=False, topologySpreadConstraints=[SPREAD]),
        web_service(NS, "web", ports=[{"name": "http", "port": 80, "targetPort": 8080}]),
        web_service(NS, "web-headless", clusterIP="None", ports=[{"name": "http", "port": 8080}]),
        web_service(NS, "web-np", type="NodePort", ports=[{"port": 80, "targetPort": "http"}]),
        web_service(NS, "web-lb", type="LoadBalancer", ports=[{"port": 8081, "targetPort": 8080}]))


def client_pod(name: str, node: str) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS},
                       "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                                "containers": [{"name": "c", "image": "python:3-slim",
                                                "command": ["sleep", "3600"]}]}})


class Proxy(_Process):
    """`kubeling proxy` in a node's namespace (the agent there runs with --disable proxy)."""

    ready_text = "serving Services on node"

    def __init__(self, topology: Topology, index: int, data_dir: Any, *, up: NetUp, node_name: str) -> None:
        super().__init__(data_dir, f"{data_dir.name}-proxy.log")
        self.args = ["proxy", "--server", up.lan_url, "--token", up.token, "--node-name", node_name,
                     "--pod-network", "cni", "--node-address", topology.address(index)]
        self.python = ["nsenter", f"--net={topology.path(topology.nodes[index])}", *self.python]

    def _args(self) -> list[str]:
        return self.args


class Env(WebLookups):
    def __init__(self, topo: Topology, up: NetUp, agent: NetAgent, proxy: Proxy, k: Kubectl) -> None:
        self.topo, self.up, self.agent, self.proxy, self.k = topo, up, agent, proxy, k
        self.namespace = NS
        self.names: set[str] = set()

    def on_node(self, index: int, *argv: str, timeout: float = 60) -> str:
        """Run a command in node `index`'s network namespace; its stdout."""
        res = self.topo.run(self.topo.nodes[index], *argv, timeout=timeout, check=False)
        assert res.returncode == 0, f"{argv} on node {index}: {res.returncode}\n{res.stdout}\n{res.stderr}"
        return res.stdout

    def requests_from_node(self, index: int, url: str, n: int) -> dict[str, int]:
        return json.loads(self.on_node(index, sys.executable, "-c", CLIENT, url, str(n)))

    def requests_from_pod(self, pod: str, url: str, n: int) -> dict[str, int]:
        return json.loads(self.k("exec", "-n", NS, pod, "--", "python3", "-c", CLIENT, url, str(n)))


def host_network_is_clean() -> list[str]:
    """What the root mode must never leave in the machine's own namespace (bridge, nft tables)."""
    problems = []
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    if "kubeling0" in links:
        problems.append("bridge kubeling0 in the host namespace")
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    problems += [f"nft {line.strip()} in the host namespace" for line in tables.splitlines() if "kubeling" in line]
    return problems


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    reason = root_network_skip_reason()
    if reason:
        pytest.skip(reason)
    binary = kubectl_binary(33)
    if binary is None:
        pytest.skip("kubectl 1.33 is not installed (looked beside `kubectl` on PATH)")
    clean_before = not host_network_is_clean()  # only then can the end be checked
    tmp = tmp_path_factory.mktemp("podnet")
    topo = Topology(2)
    up = agent = proxy = None
    forwarder = None
    e: Env | None = None
    try:
        topo.create()
        up = NetUp(topo, tmp / "n1", node_name=NODES[0])
        up.start(timeout=60)
        agent = NetAgent(topo, 1, tmp / "n2", up=up, node_name=NODES[1], extra_args=["--disable", "proxy"])
        agent.start(timeout=90)
        proxy = Proxy(topo, 1, tmp / "proxy", up=up, node_name=NODES[1])
        proxy.start(timeout=30)
        forwarder = ApiForwarder(topo.path(topo.nodes[0]), up.port)
        kubeconfig = forwarded_kubeconfig(up.kubeconfig, tmp / "kubeconfig", forwarder.port)
        k = Kubectl(binary, kubeconfig, tmp / "cache")
        e = Env(topo, up, agent, proxy, k)
        k("create", "namespace", NS)
        yield e
    finally:
        for p in (proxy, agent, up):
            if p is not None:
                p.stop()
                kill_pids(p.survivors())
        if e is not None:
            kill_pids(pod_host_processes(e.names | {"client-a", "client-b"}))
        if forwarder is not None:
            forwarder.close()
        topo.delete()
    if clean_before:
        assert host_network_is_clean() == [], "the root mode left something in the host namespace"


@pytest.fixture(scope="module")
def web(env: Env) -> Env:
    """The Deployment (pods on both nodes), its Services, and a client pod on each node."""
    k = env.k
    k("apply", "-f", "-", input=manifests())
    k("apply", "-f", "-", input=client_pod("client-a", NODES[0]))
    k("apply", "-f", "-", input=client_pod("client-b", NODES[1]))
    wait_until("web 3/3 available", lambda: get_json(k, "deployment", "web", "-n", NS).get("status", {})
               .get("availableReplicas") == 3, timeout=90)
    k("wait", "-n", NS, "--for=condition=Ready", "pod/client-a", "pod/client-b", "--timeout=60s")
    ips = {p["status"]["podIP"] for p in env.ready_pods()}
    assert len(ips) == 3, ips
    wait_until("3 endpoints", lambda: env.slice_ips() == ips, timeout=15)
    return env


def node_pod_cidr(env: Env, node: str) -> str:
    return str(get_json(env.k, "node", node)["spec"]["podCIDR"])


def test_pods_get_addresses_from_their_nodes_pod_cidr(web: Env) -> None:
    pods = web.ready_pods()
    assert {p["spec"]["nodeName"] for p in pods} == set(NODES), "the spread constraint puts pods on both nodes"
    for pod in pods:
        cidr = ipaddress.ip_network(node_pod_cidr(web, pod["spec"]["nodeName"]))
        assert ipaddress.ip_address(pod["status"]["podIP"]) in cidr, (pod["status"], cidr)
        assert pod["status"]["podIPs"] == [{"ip": pod["status"]["podIP"]}]
        assert pod["status"]["hostIP"] in (web.topo.address(0), web.topo.address(1))
    # the pod's own view: eth0 with its pod IP, inside its own network namespace
    client = get_json(web.k, "pod", "client-a", "-n", NS)
    out = web.k("exec", "-n", NS, "client-a", "--", "ip", "-o", "-4", "addr", "show", "dev", "eth0")
    assert f" {client['status']['podIP']}/" in out, out


def test_clusterip_from_the_node_reaches_all_pods(web: Env) -> None:
    ip = web.cluster_ip()
    assert ipaddress.ip_address(ip) in ipaddress.ip_network("10.43.0.0/16")
    spread(web.requests_from_node(0, f"http://{ip}/", 300), pod_names(web.ready_pods()), 300)
    spread(web.requests_from_node(1, f"http://{ip}/", 300), pod_names(web.ready_pods()), 300)


def test_clusterip_by_name_from_a_pod_reaches_all_pods(web: Env) -> None:
    url = "http://web.demo.svc.cluster.local/"
    spread(web.requests_from_pod("client-a", url, 300), pod_names(web.ready_pods()), 300)
    # the short name through the search path of the pod's resolv.conf
    spread(web.requests_from_pod("client-b", "http://web/", 300), pod_names(web.ready_pods()), 300)


def test_pod_resolv_conf_points_at_cluster_dns(web: Env) -> None:
    conf = web.k("exec", "-n", NS, "client-a", "--", "cat", "/etc/resolv.conf")
    lines = [line.split() for line in conf.splitlines() if line.strip()]
    assert ["nameserver", DNS_IP] in lines, conf
    assert ["search", "demo.svc.cluster.local", "svc.cluster.local", "cluster.local"] in lines, conf
    assert ["options", "ndots:5"] in lines, conf


def test_dns_names_inside_a_pod(web: Env) -> None:
    ip = web.cluster_ip()
    out = web.k("exec", "-n", NS, "client-b", "--", "getent", "hosts", "web.demo.svc.cluster.local")
    assert out.split()[0] == ip, out
    out = web.k("exec", "-n", NS, "client-a", "--", "nslookup", "web.demo.svc.cluster.local")
    assert ip in out, out
    pod_ips = {p["status"]["podIP"] for p in web.ready_pods()}
    out = web.k("exec", "-n", NS, "client-a", "--", "nslookup", "web-headless.demo.svc.cluster.local")
    found = {line.split()[-1] for line in out.splitlines() if line.startswith("Address") and "#" not in line}
    assert found == pod_ips, out
    res = web.k.run("exec", "-n", NS, "client-a", "--", "getent", "hosts", "nope.demo.svc.cluster.local",
                    check=False)
    assert res.returncode != 0 and not res.stdout.strip(), res


def test_pod_reaches_a_pod_on_the_other_node_by_ip_without_nat(web: Env) -> None:
    clients = {p["metadata"]["name"]: p for p in (get_json(web.k, "pod", c, "-n", NS) for c in ("client-a",
                                                                                                 "client-b"))}
    for server in web.ready_pods():
        for name, client in clients.items():
            if client["spec"]["nodeName"] == server["spec"]["nodeName"]:
                continue
            url = f"http://{server['status']['podIP']}:8080/whoami"
            out = web.k("exec", "-n", NS, name, "--", "python3", "-c",
                        f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=5).read().decode())")
            pod_name, seen_from = out.split()
            assert pod_name == server["metadata"]["name"]
            assert seen_from == client["status"]["podIP"], "pod-to-pod traffic keeps the real pod address"


def test_nodeport_answers_on_every_node_address(web: Env) -> None:
    node_port = web.svc("web-np")["spec"]["ports"][0]["nodePort"]
    assert 30000 <= node_port <= 32767
    everyone = pod_names(web.ready_pods())
    for target in (0, 1):
        counts = web.requests_from_node(1 - target, f"http://{web.topo.address(target)}:{node_port}/", 90)
        assert set(counts) == everyone, counts


def test_loadbalancer_has_node_addresses_and_answers(web: Env) -> None:
    ingress = wait_until("LoadBalancer ingress", lambda: web.svc("web-lb").get("status", {})
                         .get("loadBalancer", {}).get("ingress"), timeout=10, interval=0.1)
    addresses = {i["ip"] for i in ingress}
    assert addresses <= {web.topo.address(0), web.topo.address(1)} and addresses, ingress
    everyone = pod_names(web.ready_pods())
    for address in addresses:
        counts = web.requests_from_pod("client-a", f"http://{address}:8081/", 90)
        assert set(counts) == everyone, counts


def test_python_client_sees_pods_on_both_nodes(web: Env) -> None:
    kubernetes = pytest.importorskip("kubernetes", reason="the official kubernetes client is not installed")
    config = kubernetes.config.new_client_from_config(str(web.k.kubeconfig))
    try:
        pods = kubernetes.client.CoreV1Api(config).list_namespaced_pod(NS, label_selector="app=web")
        assert {p.spec.node_name for p in pods.items} == set(NODES)
        assert all(p.status.pod_ip for p in pods.items)
    finally:
        config.close()


def test_traffic_keeps_flowing_across_a_proxy_restart(web: Env) -> None:
    ip = web.cluster_ip()
    everyone = pod_names(web.ready_pods())
    failures: list[str] = []
    answered: collections.Counter[str] = collections.Counter()
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                answered.update(web.requests_from_node(1, f"http://{ip}/", 20))
            except AssertionError as exc:
                failures.append(str(exc))

    worker = threading.Thread(target=load)
    worker.start()
    try:
        time.sleep(1)
        assert web.proxy.stop() == 0, web.proxy.log_tail()
        time.sleep(2)  # no proxy at all: the rules in the kernel keep serving
        web.proxy.start(timeout=30)
        time.sleep(2)
    finally:
        stop.set()
        worker.join(60)
    assert not failures, failures[:3]
    assert set(answered) == everyone, answered
    # the restarted proxy re-synced and follows changes again
    web.k("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "after-restart", "namespace": NS},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 81, "targetPort": 8080}]}}))
    new_ip = web.cluster_ip("after-restart")

    def answers() -> bool:
        try:
            return bool(web.requests_from_node(1, f"http://{new_ip}:81/", 3))
        except AssertionError:
            return False

    wait_until("the new Service answers on node 2", answers, timeout=15, interval=0.3)


def test_failing_readiness_leaves_the_endpoints_and_gets_no_traffic(web: Env) -> None:
    pods = web.ready_pods()
    victim = next(p for p in pods if p["spec"]["nodeName"] == NODES[1])
    web.on_node(1, "curl", "-s", f"http://{victim['status']['podIP']}:8080/fail")
    t0 = time.monotonic()
    wait_until("the failing pod leaves the endpoints", lambda: victim["status"]["podIP"] not in web.slice_ips(),
               timeout=10, interval=0.1)
    elapsed = time.monotonic() - t0
    assert elapsed <= PERIOD + 1.5, f"took {elapsed:.1f}s, probe period {PERIOD}s"
    time.sleep(0.5)  # the proxies' batched sync
    rest = pod_names(pods) - {victim["metadata"]["name"]}
    for index in (0, 1):
        counts = web.requests_from_node(index, f"http://{web.cluster_ip()}/", 100)
        assert set(counts) == rest, counts


def test_pods_reach_the_api_server_through_the_kubernetes_service(web: Env) -> None:
    """`kubernetes.default` (443 → the API server's advertised node address) answers from a pod (plain
    HTTP until TLS lands, so the scheme is http)."""
    out = web.k("exec", "-n", NS, "client-b", "--", "python3", "-c",
                "import urllib.request; print(urllib.request.urlopen("
                "'http://kubernetes.default.svc.cluster.local:443/version', timeout=5).read().decode())")
    assert json.loads(out)["major"] == "1", out


def test_host_port_reaches_the_pod_through_portmap(web: Env) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hostport", "namespace": NS},
           "spec": {"nodeName": NODES[1], "terminationGracePeriodSeconds": 1,
                    "containers": [{"name": "web", "image": "python:3-slim", "command": ["python3", "-c", SERVER],
                                    "ports": [{"containerPort": 8080, "hostPort": 18080}]}]}}
    web.k("apply", "-f", "-", input=json.dumps(pod))
    web.names.add("hostport")
    web.k("wait", "-n", NS, "--for=condition=Ready", "pod/hostport", "--timeout=60s")
    url = f"http://{web.topo.address(1)}:18080/"

    def answers() -> dict[str, int] | None:
        try:
            return web.requests_from_node(0, url, 3)
        except AssertionError:
            return None

    assert wait_until("hostPort answers from node 1", answers, timeout=10, interval=0.3) == {"hostport": 3}
    assert web.requests_from_pod("client-a", url, 3) == {"hostport": 3}
    web.k("delete", "pod", "hostport", "-n", NS, "--wait=true", "--timeout=30s")
    res = web.topo.run(web.topo.nodes[0], "curl", "-s", "-m", "2", url, check=False)
    assert res.returncode != 0, "the hostPort mapping is gone with the pod"


def test_statefulset_pods_have_stable_dns_names(web: Env) -> None:
    """`<pod>.<service>.<ns>.svc.cluster.local` for the pods of a StatefulSet behind a headless Service,
    and the pod's own /etc/hosts carries that name (the kubelet-managed hosts file)."""
    objs = [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db", "namespace": NS},
             "spec": {"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"name": "db", "port": 5432}]}},
            {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": NS},
             "spec": {"serviceName": "db", "replicas": 2, "selector": {"matchLabels": {"app": "db"}},
                      "template": {"metadata": {"labels": {"app": "db"}}, "spec": {
                          "terminationGracePeriodSeconds": 1,
                          "containers": [{"name": "db", "image": "python:3-slim", "command": ["sleep", "3600"]}]}}}}]
    web.k("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objs}))
    web.names |= {"db-0", "db-1"}
    wait_until("db 2/2 ready", lambda: get_json(web.k, "statefulset", "db", "-n", NS).get("status", {})
               .get("readyReplicas") == 2, timeout=60)
    for name in ("db-0", "db-1"):
        pod_ip = get_json(web.k, "pod", name, "-n", NS)["status"]["podIP"]
        fqdn = f"{name}.db.{NS}.svc.cluster.local"

        def resolved(fqdn: str = fqdn) -> str:
            res = web.k.run("exec", "-n", NS, "client-a", "--", "getent", "hosts", fqdn, check=False)
            return res.stdout.split()[0] if res.returncode == 0 and res.stdout.strip() else ""

        assert wait_until(f"{fqdn} resolves", resolved, timeout=10, interval=0.3) == pod_ip
        hosts = web.k("exec", "-n", NS, name, "--", "cat", "/etc/hosts")
        assert any(line.split()[:3] == [pod_ip, fqdn, name] for line in hosts.splitlines()), hosts


def test_proxy_cleanup_removes_its_rules(web: Env) -> None:
    """Last: `kubeling proxy --cleanup` (uninstall) deletes the table of node 2's stopped proxy."""
    web.proxy.stop()
    assert "kubeling-proxy" in web.on_node(1, "nft", "list", "tables")
    out = web.on_node(1, sys.executable, "-m", "kubeling", "proxy", "--cleanup")
    assert "removed" in out, out
    assert "kubeling-proxy" not in web.on_node(1, "nft", "list", "tables")
