"""Field selectors: parsing/escaping as fields.ParseSelector, per-kind fields and their errors."""

from __future__ import annotations

from typing import Any

import pytest

from kubeling.api.errors import StatusError
from kubeling.api.fields import field_value, matches_fields, parse_field_selector, supported_fields
from kubeling.api.registry import Registry

REG = Registry()


def info(group: str, version: str, resource: str):
    found = REG.get(group, version, resource)
    assert found is not None
    return found


@pytest.mark.parametrize(("text", "want"), [
    ("", []),
    ("metadata.name=x", [("metadata.name", "=", "x")]),
    ("metadata.name==x", [("metadata.name", "==", "x")]),
    ("status.phase!=Running", [("status.phase", "!=", "Running")]),
    ("spec.nodeName=", [("spec.nodeName", "=", "")]),
    ("b=2,a=1", [("a", "=", "1"), ("b", "=", "2")]),
    (r"a=x\,y\=z\\", [("a", "=", "x,y=z\\")]),
    ("a=1,,b=2", [("a", "=", "1"), ("b", "=", "2")]),
], ids=["empty", "eq", "double-eq", "not-eq", "empty-value", "sorted", "escapes", "empty-term"])
def test_parse(text: str, want: list[tuple[str, str, str]]) -> None:
    assert parse_field_selector(text) == want


@pytest.mark.parametrize(("text", "message"), [
    ("metadata.name", "invalid selector: 'metadata.name'; can't understand 'metadata.name'"),
    ("a=b=c", "invalid field selector: unescaped character in value: ="),
    (r"a=b\x", "invalid field selector: invalid escape sequence: \\x"),
    ("a=b\\", "invalid field selector: invalid escape sequence: \\"),
], ids=["no-operator", "unescaped-equals", "bad-escape", "trailing-backslash"])
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(StatusError) as err:
        parse_field_selector(text)
    assert err.value.code == 400 and err.value.message == message


POD: dict[str, Any] = {
    "metadata": {"name": "p", "namespace": "ns"},
    "spec": {"nodeName": "n1", "restartPolicy": "Always", "schedulerName": "default-scheduler",
             "serviceAccountName": "default"},
    "status": {"phase": "Running", "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}, {"ip": "fd00::5"}]},
}


@pytest.mark.parametrize(("selector", "matches"), [
    ("spec.nodeName=n1", True),
    ("spec.nodeName=n2", False),
    ("spec.nodeName!=n2,status.phase=Running", True),
    ("spec.host=n1", True),
    ("spec.hostNetwork=false", True),
    ("status.podIP=10.0.0.5", True),
    ("status.podIPs=", True),
    ("status.nominatedNodeName=", True),
    ("metadata.namespace=ns,metadata.name=p", True),
    ("spec.restartPolicy=Never", False),
], ids=["node", "other-node", "not-and-phase", "legacy-spec-host", "host-network", "pod-ip", "pod-ips-always-empty", "empty-nominated",
        "metadata", "restart-policy"])
def test_pod_fields(selector: str, matches: bool) -> None:
    assert matches_fields(info("", "v1", "pods"), POD, parse_field_selector(selector)) is matches


@pytest.mark.parametrize(("group", "resource", "obj", "fld", "value"), [
    ("", "nodes", {"metadata": {"name": "n"}, "spec": {}}, "spec.unschedulable", "false"),
    ("", "nodes", {"metadata": {"name": "n"}, "spec": {"unschedulable": True}}, "spec.unschedulable", "true"),
    ("", "secrets", {"type": "kubernetes.io/tls"}, "type", "kubernetes.io/tls"),
    ("", "namespaces", {"status": {"phase": "Terminating"}}, "status.phase", "Terminating"),
    ("", "services", {"spec": {"type": "NodePort", "clusterIP": "None"}}, "spec.clusterIP", "None"),
    ("apps", "replicasets", {"status": {}}, "status.replicas", "0"),
    ("batch", "jobs", {"status": {"succeeded": 2}}, "status.successful", "2"),
    ("", "events", {"involvedObject": {"uid": "u1", "kind": "Pod"}}, "involvedObject.uid", "u1"),
    ("", "events", {"source": {"component": "kubelet"}}, "source", "kubelet"),
    ("", "events", {"reportingComponent": "sched"}, "source", "sched"),
    ("events.k8s.io", "events", {"regarding": {"name": "web"}}, "regarding.name", "web"),
    ("events.k8s.io", "events", {"involvedObject": {"name": "web"}}, "regarding.name", "web"),
    ("events.k8s.io", "events", {"reportingController": "c"}, "reportingController", "c"),
    ("", "configmaps", {"metadata": {"name": "c"}}, "metadata.namespace", ""),
], ids=["node-schedulable", "node-unschedulable", "secret-type", "ns-phase", "svc-clusterip", "rs-replicas",
        "job-successful", "event-uid", "event-source", "event-source-fallback", "eventsv1-regarding",
        "eventsv1-over-core-shape", "eventsv1-controller", "cluster-metadata-empty"])
def test_field_values(group: str, resource: str, obj: dict[str, Any], fld: str, value: str) -> None:
    assert field_value(info(group, "v1", resource), obj, fld) == value


@pytest.mark.parametrize(("group", "resource", "fld", "message"), [
    ("", "pods", "spec.foo", "field label not supported: spec.foo"),
    ("", "nodes", "metadata.namespace", "field label not supported: metadata.namespace"),
    ("", "events", "regarding.name", "field label not supported: regarding.name"),
    ("", "configmaps", "data.x", '"data.x" is not a known field selector: only "metadata.name", "metadata.namespace"'),
    ("apps", "deployments", "spec.replicas",
     '"spec.replicas" is not a known field selector: only "metadata.name", "metadata.namespace"'),
], ids=["pod", "node-namespace", "core-event-v1-name", "configmap", "deployment"])
def test_unknown_fields(group: str, resource: str, fld: str, message: str) -> None:
    with pytest.raises(StatusError) as err:
        matches_fields(info(group, "v1", resource), {}, [(fld, "=", "x")])
    assert err.value.code == 400 and err.value.message == message


def test_supported_fields() -> None:
    assert supported_fields(info("", "v1", "configmaps")) == {"metadata.name", "metadata.namespace"}
    assert "status.podIP" in supported_fields(info("", "v1", "pods"))
    assert field_value(info("", "v1", "configmaps"), {}, "data.x") is None
