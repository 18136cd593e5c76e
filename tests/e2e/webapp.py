"""The web application the Service e2e tests run (both network modes) and the lookups they share.

Pods of the `web` Deployment answer GET / with their pod name and GET /whoami with "<name>
<client address>"; /ready is 200 until someone GETs /fail. They bind $POD_IP when it is set (the
no-root mode, where pods share the host network) and every address otherwise.
"""

from __future__ import annotations

import json
from typing import Any

from .conftest import Kubectl
from .simcluster import get_json, pod_ready

Obj = dict[str, Any]

SERVER = """
import http.server, os
name = os.environ["HOSTNAME"]
state = {"ready": True}
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/fail":
            state["ready"] = False
        code = 503 if self.path == "/ready" and not state["ready"] else 200
        body = (f"{name} {self.client_address[0]}" if self.path == "/whoami" else name).encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer((os.environ.get("POD_IP", ""), 8080), H).serve_forever()
"""

# N requests to a URL (argv 1, 2); the count per answering pod name as JSON.
CLIENT = """
import collections, json, sys, urllib.request
counts = collections.Counter()
for _ in range(int(sys.argv[2])):
    with urllib.request.urlopen(sys.argv[1], timeout=5) as resp:
        counts[resp.read().decode().split()[0]] += 1
print(json.dumps(counts))
"""


def web_deployment(namespace: str, *, probe_period: int, bind_pod_ip: bool, **pod_spec: Any) -> Obj:
    """The 3-replica `web` Deployment, its readiness probe every `probe_period` seconds."""
    container: Obj = {
        "name": "web", "image": "python:3-slim", "command": ["python3", "-c", SERVER],
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": probe_period,
                           "failureThreshold": 1}}
    if bind_pod_ip:
        container["env"] = [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": namespace},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                         "terminationGracePeriodSeconds": 2, "containers": [container], **pod_spec}}}}


def web_service(namespace: str, name: str, **spec: Any) -> Obj:
    """A Service selecting the `web` pods."""
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": {"app": "web"}, **spec}}


def object_list(*items: Obj) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": list(items)})


def spread(counts: dict[str, int], names: set[str], total: int) -> None:
    """Every pod answered, each within 20–46 % of the requests."""
    assert set(counts) == names, counts
    assert sum(counts.values()) == total, counts
    for name, n in counts.items():
        assert 0.20 * total <= n <= 0.46 * total, f"{name} got {n} of {total}: {counts}"


def pod_names(pods: list[Obj]) -> set[str]:
    return {p["metadata"]["name"] for p in pods}


class WebLookups:
    """kubectl reads of the `web` app's Services, pods and slices in `namespace`."""

    k: Kubectl
    namespace: str
    names: set[str]

    def svc(self, name: str) -> Obj:
        return get_json(self.k, "service", name, "-n", self.namespace)

    def cluster_ip(self, name: str = "web") -> str:
        return str(self.svc(name)["spec"]["clusterIP"])

    def ready_pods(self) -> list[Obj]:
        pods = get_json(self.k, "pods", "-n", self.namespace, "-l", "app=web")["items"]
        self.names |= pod_names(pods)
        return [p for p in pods if pod_ready(p) and not p["metadata"].get("deletionTimestamp")]

    def slice_ips(self) -> set[str]:
        slices = get_json(self.k, "endpointslices", "-n", self.namespace,
                          "-l", "kubernetes.io/service-name=web")["items"]
        return {a for s in slices for e in s.get("endpoints") or []
                if (e.get("conditions") or {}).get("ready") for a in e["addresses"]}
