"""The issue-2 acceptance walk with the real kubectl, for 1.33 and 1.27."""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from .conftest import Kubectl, Server, make_kubectl

pytestmark = pytest.mark.e2e

MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web, tier: front}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        ports: [{containerPort: 80}]
        env: [{name: A, value: "1"}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 80}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, labels: {app: web}}
data: {color: blue}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: s3cret}
"""

CRD = """\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.stable.example.com
spec:
  group: stable.example.com
  scope: Namespaced
  names: {plural: crontabs, singular: crontab, kind: CronTab, shortNames: [ct]}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              cronSpec: {type: string}
              replicas: {type: integer}
    additionalPrinterColumns:
    - {name: Spec, type: string, jsonPath: .spec.cronSpec}
    - {name: Replicas, type: integer, jsonPath: .spec.replicas}
"""

CR = """\
apiVersion: stable.example.com/v1
kind: CronTab
metadata: {name: my-tab}
spec: {cronSpec: "* * * * */5", replicas: 3}
"""


@pytest.fixture(scope="module", params=[33, 27], ids=["kubectl-1.33", "kubectl-1.27"])
def kubectl(request: pytest.FixtureRequest, server: Server, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    return make_kubectl(server, request.param, tmp_path_factory.mktemp("kc"))


@pytest.fixture(scope="module")
def ns(kubectl: Kubectl) -> str:
    name = "demo-" + Path(kubectl.binary).name.replace(".", "-").replace("kubectl-", "")
    out = kubectl("create", "ns", name)
    assert f"namespace/{name} created" in out
    return name


def test_apply_multi_document_and_get_tables(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    f = tmp_path / "app.yaml"
    f.write_text(MANIFEST)
    out = kubectl("apply", "-n", ns, "-f", str(f))
    assert "deployment.apps/web created" in out
    assert "service/web created" in out
    assert "configmap/settings created" in out
    assert "secret/creds created" in out

    out = kubectl("get", "deploy", "-n", ns)
    assert out.split("\n")[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    # No nodes in this cluster: the controllers create the pods, none can become available.
    assert out.split("\n")[1].split()[:2] == ["web", "0/2"]
    wide = kubectl("get", "deployments", "-n", ns, "-o", "wide")
    assert "CONTAINERS" in wide and "nginx:1.25" in wide and "app=web" in wide
    svc = kubectl("get", "svc", "-n", ns)
    assert svc.split("\n")[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert "80/TCP" in svc
    cm = kubectl("get", "cm", "-n", ns)
    assert cm.split("\n")[0].split() == ["NAME", "DATA", "AGE"]
    assert "settings" in cm
    sec = kubectl("get", "secret", "creds", "-n", ns)
    assert sec.split("\n")[0].split() == ["NAME", "TYPE", "DATA", "AGE"]
    assert "Opaque" in sec


def test_output_formats_and_selectors(kubectl: Kubectl, ns: str) -> None:
    obj = json.loads(kubectl("get", "deploy", "web", "-n", ns, "-o", "json"))
    assert obj["spec"]["replicas"] == 2
    assert obj["spec"]["strategy"]["type"] == "RollingUpdate"  # defaulted
    y = yaml.safe_load(kubectl("get", "configmap", "settings", "-n", ns, "-o", "yaml"))
    assert y["data"] == {"color": "blue"}
    assert kubectl("get", "deploy", "web", "-n", ns, "-o", "jsonpath={.spec.template.spec.containers[0].image}") \
        == "nginx:1.25"
    labelled = kubectl("get", "cm,deploy", "-n", ns, "-l", "app=web", "-o", "name")
    assert "configmap/settings" in labelled and "deployment.apps/web" in labelled
    assert "kube-root" not in labelled
    by_field = kubectl("get", "cm", "-n", ns, "--field-selector", "metadata.name=settings", "-o", "name")
    assert by_field.strip() == "configmap/settings"
    everywhere = kubectl("get", "serviceaccounts", "-A")
    assert everywhere.split("\n")[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert "kube-system" in everywhere and ns in everywhere


def test_describe(kubectl: Kubectl, ns: str) -> None:
    out = kubectl("describe", "deployment", "web", "-n", ns)
    assert "Name:" in out and "web" in out
    assert "Replicas:" in out
    out = kubectl("describe", "svc", "web", "-n", ns)
    assert "Selector:" in out and "app=web" in out


def test_apply_again_merges_lists_by_key(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    edited = MANIFEST.replace("image: nginx:1.25", "image: nginx:1.26").replace(
        'env: [{name: A, value: "1"}]', 'env: [{name: A, value: "1"}, {name: B, value: "2"}]')
    edited = edited.replace("- {name: http, port: 80, targetPort: 80}",
                            "- {name: http, port: 80, targetPort: 80}\n  - {name: https, port: 443}")
    f = tmp_path / "app.yaml"
    f.write_text(edited)
    out = kubectl("apply", "-n", ns, "-f", str(f))
    assert "deployment.apps/web configured" in out
    assert "service/web configured" in out
    assert "configmap/settings unchanged" in out
    dep = json.loads(kubectl("get", "deploy", "web", "-n", ns, "-o", "json"))
    c = dep["spec"]["template"]["spec"]["containers"]
    assert len(c) == 1 and c[0]["image"] == "nginx:1.26"
    assert [e["name"] for e in c[0]["env"]] == ["A", "B"]
    assert dep["metadata"]["generation"] == 2
    svc = json.loads(kubectl("get", "svc", "web", "-n", ns, "-o", "json"))
    assert sorted(p["port"] for p in svc["spec"]["ports"]) == [80, 443]


def test_server_side_apply(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    f = tmp_path / "ssa.yaml"
    f.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa}\ndata: {a: '1'}\n")
    out = kubectl("apply", "--server-side", "-n", ns, "-f", str(f))
    assert "configmap/ssa serverside-applied" in out
    f.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa}\ndata: {b: '2'}\n")
    kubectl("apply", "--server-side", "-n", ns, "-f", str(f))
    cm = json.loads(kubectl("get", "cm", "ssa", "-n", ns, "-o", "json", "--show-managed-fields"))
    assert cm["data"] == {"b": "2"}  # the manager dropped `a`, so it is gone
    managers = {m["manager"] for m in cm["metadata"]["managedFields"]}
    assert "kubectl" in managers


def test_patch_each_type(kubectl: Kubectl, ns: str) -> None:
    kubectl("patch", "deploy", "web", "-n", ns, "-p",
            '{"spec":{"template":{"spec":{"containers":[{"name":"web","image":"nginx:1.27"}]}}}}')
    kubectl("patch", "deploy", "web", "-n", ns, "--type=merge", "-p", '{"metadata":{"labels":{"m":"1"}}}')
    kubectl("patch", "deploy", "web", "-n", ns, "--type=json",
            "-p", '[{"op":"replace","path":"/spec/replicas","value":4}]')
    dep = json.loads(kubectl("get", "deploy", "web", "-n", ns, "-o", "json"))
    c = dep["spec"]["template"]["spec"]["containers"]
    assert c[0]["image"] == "nginx:1.27" and c[0]["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert dep["metadata"]["labels"]["m"] == "1"
    assert dep["spec"]["replicas"] == 4


def test_label_annotate_scale(kubectl: Kubectl, ns: str) -> None:
    assert "labeled" in kubectl("label", "cm", "settings", "-n", ns, "env=prod")
    assert "configmap/settings annotate" in kubectl("annotate", "cm", "settings", "-n", ns, "note=hello")
    cm = json.loads(kubectl("get", "cm", "settings", "-n", ns, "-o", "json"))
    assert cm["metadata"]["labels"]["env"] == "prod"
    assert cm["metadata"]["annotations"]["note"] == "hello"
    assert "scaled" in kubectl("scale", "deploy", "web", "-n", ns, "--replicas=7")
    dep = json.loads(kubectl("get", "deploy", "web", "-n", ns, "-o", "json"))
    assert dep["spec"]["replicas"] == 7


def read_until(proc: subprocess.Popen[str], needle: str, timeout: float) -> str:
    """Read a child's stdout (unbuffered, by fd) until `needle` shows up or time runs out."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    seen = b""
    deadline = time.time() + timeout
    while time.time() < deadline and needle.encode() not in seen:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            seen += chunk
    return seen.decode(errors="replace")


def test_get_watch_prints_later_changes(kubectl: Kubectl, ns: str) -> None:
    proc = kubectl.popen("get", "cm", "-n", ns, "-w")
    try:
        assert "NAME" in read_until(proc, "NAME", 15)
        kubectl("create", "cm", "watched", "-n", ns, "--from-literal=k=v")
        seen = read_until(proc, "watched", 15)
        assert "watched" in seen, seen
    finally:
        proc.kill()
        proc.wait()


def test_crd_and_custom_resource(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    (tmp_path / "crd.yaml").write_text(CRD)
    kubectl("apply", "-f", str(tmp_path / "crd.yaml"))
    kubectl("wait", "--for=condition=Established", "crd/crontabs.stable.example.com", "--timeout=20s")
    (tmp_path / "cr.yaml").write_text(CR)
    assert "crontab.stable.example.com/my-tab created" in kubectl("apply", "-n", ns, "-f", str(tmp_path / "cr.yaml"))
    out = kubectl("get", "ct", "-n", ns)
    # A CRD that declares printer columns gets exactly those (AGE only when it declares none).
    assert out.split("\n")[0].split() == ["NAME", "SPEC", "REPLICAS"]
    assert "my-tab" in out and "3" in out
    assert "my-tab" in kubectl("get", "crontabs", "my-tab", "-n", ns, "-o", "name")


def test_explain(kubectl: Kubectl) -> None:
    out = kubectl("explain", "deployment.spec")
    assert "replicas" in out and "template" in out


def test_error_messages(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    res = kubectl.run("get", "cm", "nosuch", "-n", ns, check=False)
    assert res.returncode == 1
    assert 'Error from server (NotFound): configmaps "nosuch" not found' in res.stderr
    dup = tmp_path / "dup.yaml"
    dup.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n")
    res = kubectl.run("create", "-n", ns, "-f", str(dup), check=False)
    assert 'Error from server (AlreadyExists): error when creating' in res.stderr
    assert 'configmaps "settings" already exists' in res.stderr
    live = json.loads(kubectl("get", "cm", "settings", "-n", ns, "-o", "json"))
    stale = tmp_path / "stale.json"
    live["metadata"]["resourceVersion"] = "1"
    stale.write_text(json.dumps(live))
    res = kubectl.run("replace", "-n", ns, "-f", str(stale), check=False)
    assert "Error from server (Conflict)" in res.stderr and "the object has been modified" in res.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: bad}\nspec:\n"
                   "  selector: {matchLabels: {app: bad}}\n  template:\n    metadata: {labels: {app: bad}}\n"
                   "    spec:\n      containers: [{image: nginx}]\n")
    res = kubectl.run("apply", "-n", ns, "-f", str(bad), check=False)
    assert res.returncode != 0
    # kubectl rewrites a 422 from details.kind/name, exactly as against Kubernetes.
    assert 'The Deployment "bad" is invalid: spec.template.spec.containers[0].name: Required value' \
        in res.stderr
    res = kubectl.run("get", "cm", "-n", "no-such-ns-x", "settings", check=False)
    assert "NotFound" in res.stderr
    res = kubectl.run("create", "cm", "x", "-n", "no-such-ns-x", check=False)
    assert 'namespaces "no-such-ns-x" not found' in res.stderr


def test_delete_file(kubectl: Kubectl, ns: str, tmp_path: Path) -> None:
    f = tmp_path / "app.yaml"
    f.write_text(MANIFEST)
    out = kubectl("delete", "-n", ns, "-f", str(f))
    assert 'deployment.apps "web" deleted' in out
    assert 'configmap "settings" deleted' in out
    res = kubectl.run("get", "deploy", "web", "-n", ns, check=False)
    assert "NotFound" in res.stderr
