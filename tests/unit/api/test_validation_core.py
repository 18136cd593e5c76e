"""core/v1 validation (Pod, Service, ConfigMap, Secret, storage, quota): exact paths and messages."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.unit.api.validation_cases import causes as shared_causes
from tests.unit.api.validation_cases import resource_info

PORT_RANGE = "must be between 1 and 65535, inclusive"
CONFIG_KEY_MSG = ("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  "
                  "or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')")


def causes(key: str, obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    """Default then validate, as the server does (the old object too); "field: message" per cause."""
    return shared_causes(key, obj, old, default_old=True)


def pod(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"containers": [{"name": "c", "image": "nginx:1.25"}]}
    base.update(spec)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"}, "spec": base}


def ctr(**fields: Any) -> dict[str, Any]:
    return {"name": "c", "image": "nginx:1.25", **fields}


POD_CASES = [
    ("valid", pod(), []),
    ("no-containers", pod(containers=[]), ["spec.containers: Required value"]),
    ("container-name-required", pod(containers=[{"image": "x"}]), ["spec.containers[0].name: Required value"]),
    ("container-name-syntax", pod(containers=[ctr(name="Web_1")]),
     ['spec.containers[0].name: Invalid value: "Web_1": a lowercase RFC 1123 label must consist of lower case '
      "alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  "
      "or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"]),
    ("duplicate-across-init", pod(initContainers=[ctr(name="x")], containers=[ctr(name="x")]),
     ['spec.containers[0].name: Duplicate value: "x"']),
    ("image-required", pod(containers=[{"name": "c"}]), ["spec.containers[0].image: Required value"]),
    ("port-range", pod(containers=[ctr(ports=[{"containerPort": 70000}])]),
     [f"spec.containers[0].ports[0].containerPort: Invalid value: 70000: {PORT_RANGE}"]),
    ("port-required", pod(containers=[ctr(ports=[{"name": "web"}])]),
     ["spec.containers[0].ports[0].containerPort: Required value"]),
    ("port-protocol", pod(containers=[ctr(ports=[{"containerPort": 80, "protocol": "HTTP"}])]),
     ['spec.containers[0].ports[0].protocol: Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"']),
    ("port-name", pod(containers=[ctr(ports=[{"containerPort": 80, "name": "Web"}])]),
     ['spec.containers[0].ports[0].name: Invalid value: "Web": must contain only alpha-numeric characters '
      "(a-z, 0-9), and hyphens (-)"]),
    ("duplicate-port-name", pod(containers=[ctr(ports=[{"containerPort": 80, "name": "w"},
                                                       {"containerPort": 81, "name": "w"}])]),
     ['spec.containers[0].ports[1].name: Duplicate value: "w"']),
    ("bad-quantity", pod(containers=[ctr(resources={"requests": {"cpu": "abc"}})]),
     ['spec.containers[0].resources.requests[cpu]: Invalid value: "abc": quantities must match the regular '
      "expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"]),
    ("negative-quantity", pod(containers=[ctr(resources={"requests": {"memory": "-1Gi"}})]),
     ['spec.containers[0].resources.requests[memory]: Invalid value: "-1Gi": must be greater than or equal to 0']),
    ("requests-over-limits", pod(containers=[ctr(resources={"limits": {"cpu": "500m"}, "requests": {"cpu": "1"}})]),
     ['spec.containers[0].resources.requests[cpu]: Invalid value: "1": must be less than or equal to cpu limit '
      "of 500m"]),
    ("restart-policy", pod(restartPolicy="Sometimes"),
     ['spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"']),
    ("dns-policy", pod(dnsPolicy="Google"),
     ['spec.dnsPolicy: Unsupported value: "Google": supported values: "ClusterFirstWithHostNet", '
      '"ClusterFirst", "Default", "None"']),
    ("env-name", pod(containers=[ctr(env=[{"name": "1BAD", "value": "x"}])]),
     ['spec.containers[0].env[0].name: Invalid value: "1BAD": a valid environment variable name must consist '
      "of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit (e.g. 'my.env-name',  "
      "or 'MY_ENV.NAME',  or 'MyEnvName1', regex used for validation is '[-._a-zA-Z][-._a-zA-Z0-9]*')"]),
    ("env-name-required", pod(containers=[ctr(env=[{"value": "x"}])]),
     ["spec.containers[0].env[0].name: Required value"]),
    ("env-field-path", pod(containers=[ctr(env=[{"name": "A", "valueFrom": {"fieldRef": {"fieldPath": "x"}}}])]),
     ['spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: Unsupported value: "x": supported values: '
      '"metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", "spec.serviceAccountName", '
      '"status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs"']),
    ("env-label-field-path", pod(containers=[ctr(env=[{"name": "A", "valueFrom": {
        "fieldRef": {"fieldPath": "metadata.labels['app']"}}}])]), []),
    ("env-key-ref", pod(containers=[ctr(env=[{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s"}}}])]),
     ["spec.containers[0].env[0].valueFrom.secretKeyRef.key: Required value"]),
    ("volume-duplicate", pod(volumes=[{"name": "v", "emptyDir": {}}, {"name": "v", "emptyDir": {}}]),
     ['spec.volumes[1].name: Duplicate value: "v"']),
    ("volume-two-sources", pod(volumes=[{"name": "v", "emptyDir": {}, "hostPath": {"path": "/x"}}]),
     ["spec.volumes[0].hostPath: Forbidden: may not specify more than 1 volume type"]),
    ("volume-configmap-name", pod(volumes=[{"name": "v", "configMap": {}}]),
     ["spec.volumes[0].configMap.name: Required value"]),
    ("mount-unknown-volume", pod(containers=[ctr(volumeMounts=[{"name": "data", "mountPath": "/d"}])]),
     ['spec.containers[0].volumeMounts[0].name: Not found: "data"']),
    ("mount-path-required", pod(volumes=[{"name": "v"}], containers=[ctr(volumeMounts=[{"name": "v"}])]),
     ["spec.containers[0].volumeMounts[0].mountPath: Required value"]),
    ("probe-handler", pod(containers=[ctr(livenessProbe={"periodSeconds": 5})]),
     ["spec.containers[0].livenessProbe: Required value: must specify a handler type"]),
    ("liveness-success-threshold", pod(containers=[ctr(livenessProbe={"exec": {"command": ["true"]},
                                                                      "successThreshold": 2})]),
     ["spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1"]),
    ("node-selector", pod(nodeSelector={"disk": "fast ssd"}),
     ['spec.nodeSelector: Invalid value: "fast ssd": a valid label must be an empty string or consist of '
      "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. "
      "'MyValue',  or 'my_value',  or '12345', regex used for validation is "
      "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"]),
    ("toleration-operator", pod(tolerations=[{"key": "k", "operator": "Maybe"}]),
     ['spec.tolerations[0].operator: Unsupported value: "Maybe": supported values: "Equal", "Exists"']),
    ("active-deadline", pod(activeDeadlineSeconds=0),
     ["spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 4294967295, inclusive"]),
]


@pytest.mark.parametrize(("obj", "expected"), [c[1:] for c in POD_CASES], ids=[c[0] for c in POD_CASES])
def test_pod(obj: dict[str, Any], expected: list[str]) -> None:
    assert causes("pods", obj) == expected


def test_pod_update_allows_image_only() -> None:
    old = pod()
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = "nginx:1.26"
    assert causes("pods", new, old) == []
    new["spec"]["containers"][0]["args"] = ["x"]
    out = causes("pods", new, old)
    assert len(out) == 1 and out[0].startswith("spec: Forbidden: pod updates may not change fields other than")


def test_pod_binding_sets_node_name() -> None:
    old = pod()
    new = copy.deepcopy(old)
    new["spec"]["nodeName"] = "node-1"
    assert causes("pods", new, old) == []


def svc(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"ports": [{"port": 80}], "selector": {"app": "x"}}
    base.update(spec)
    return {"metadata": {"name": "s", "namespace": "default"}, "spec": base}


SERVICE_CASES = [
    ("valid", svc(), []),
    ("ports-required", svc(ports=[]), ["spec.ports: Required value"]),
    ("headless-no-ports", svc(ports=[], clusterIP="None"), []),
    ("external-name", svc(type="ExternalName", ports=[], externalName="db.example.com"), []),
    ("external-name-required", svc(type="ExternalName", ports=[]), ["spec.externalName: Required value"]),
    ("port-range", svc(ports=[{"port": 0}]), [f"spec.ports[0].port: Invalid value: 0: {PORT_RANGE}"]),
    ("port-name-required", svc(ports=[{"port": 80}, {"port": 81, "name": "b"}]),
     ["spec.ports[0].name: Required value"]),
    ("port-name-duplicate", svc(ports=[{"port": 80, "name": "a"}, {"port": 81, "name": "a"}]),
     ['spec.ports[1].name: Duplicate value: "a"']),
    ("protocol", svc(ports=[{"port": 80, "protocol": "tcp"}]),
     ['spec.ports[0].protocol: Unsupported value: "tcp": supported values: "SCTP", "TCP", "UDP"']),
    ("type", svc(type="Internal"),
     ['spec.type: Unsupported value: "Internal": supported values: "ClusterIP", "ExternalName", '
      '"LoadBalancer", "NodePort"']),
    ("target-port-range", svc(ports=[{"port": 80, "targetPort": 70000}]),
     [f"spec.ports[0].targetPort: Invalid value: 70000: {PORT_RANGE}"]),
    ("target-port-name", svc(ports=[{"port": 80, "targetPort": "HTTP"}]),
     ['spec.ports[0].targetPort: Invalid value: "HTTP": must contain only alpha-numeric characters (a-z, 0-9), '
      "and hyphens (-)",
      'spec.ports[0].targetPort: Invalid value: "HTTP": must contain at least one letter (a-z)']),
    ("node-port-on-cluster-ip", svc(ports=[{"port": 80, "nodePort": 30080}]),
     ["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"]),
    ("node-port-number", svc(type="NodePort", ports=[{"port": 80, "nodePort": 70000}]),
     [f"spec.ports[0].nodePort: Invalid value: 70000: {PORT_RANGE}"]),
    ("selector", svc(selector={"app": "a b"}), ["spec.selector"]),
    ("session-affinity", svc(sessionAffinity="Sticky"),
     ['spec.sessionAffinity: Unsupported value: "Sticky": supported values: "ClientIP", "None"']),
]


@pytest.mark.parametrize(("obj", "expected"), [c[1:] for c in SERVICE_CASES], ids=[c[0] for c in SERVICE_CASES])
def test_service(obj: dict[str, Any], expected: list[str]) -> None:
    out = causes("services", obj)
    if expected == ["spec.selector"]:
        assert [o.split(":")[0] for o in out] == expected
    else:
        assert out == expected


def test_service_cluster_ip_may_not_change() -> None:
    old, new = svc(clusterIP="10.96.0.10"), svc(clusterIP="10.96.0.11")
    assert causes("services", new, old) == [
        'spec.clusterIPs[0]: Invalid value: []string{"10.96.0.11"}: may not change once set']


DATA_CASES = [
    ("configmaps", {"data": {"good.key": "v", "bad key": "v"}}, [f'data[bad key]: Invalid value: "bad key": {CONFIG_KEY_MSG}']),
    ("configmaps", {"data": {"..x": "v"}}, ['data[..x]: Invalid value: "..x": must not start with \'..\'']),
    ("configmaps", {"data": {"k": "v"}, "binaryData": {"k": "dg=="}},
     ['data[k]: Invalid value: "k": duplicate of key present in binaryData']),
    ("secrets", {"data": {"bad/key": "dg=="}},
     ['data[bad/key]: Invalid value: "bad/key": ' + CONFIG_KEY_MSG]),
    ("secrets", {"type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}}, ["data[tls.key]: Required value"]),
    ("secrets", {"type": "kubernetes.io/dockerconfigjson"}, ["data[.dockerconfigjson]: Required value"]),
    ("secrets", {"type": "kubernetes.io/basic-auth", "data": {}}, ["data[username]: Required value"]),
    ("secrets", {"type": "example.com/custom"}, []),
]


@pytest.mark.parametrize(("key", "body", "expected"), DATA_CASES,
                         ids=["cm-key", "cm-dotdot", "cm-binary-dup", "secret-key", "tls", "dockerconfigjson",
                              "basic-auth", "custom-type"])
def test_data_keys(key: str, body: dict[str, Any], expected: list[str]) -> None:
    obj = {"metadata": {"name": "x", "namespace": "default"}, **body}
    assert causes(key, obj) == expected


def test_secret_type_and_immutable_data() -> None:
    old = {"metadata": {"name": "x", "namespace": "d"}, "type": "Opaque", "immutable": True, "data": {"a": "eA=="}}
    new = copy.deepcopy(old)
    new["type"] = "kubernetes.io/tls"
    new["data"] = {"tls.crt": "eA==", "tls.key": "eA=="}
    assert causes("secrets", new, old) == [
        'type: Invalid value: "kubernetes.io/tls": field is immutable',
        "data: Forbidden: field is immutable when `immutable` is set",
    ]


STORAGE_CASES = [
    ("persistentvolumeclaims", {"spec": {"resources": {"requests": {"storage": "1Gi"}}}},
     ["spec.accessModes: Required value: at least 1 access mode is required"]),
    ("persistentvolumeclaims", {"spec": {"accessModes": ["ReadWriteOnce"]}}, ["spec.resources[storage]: Required value"]),
    ("persistentvolumeclaims", {"spec": {"accessModes": ["ReadWriteSometimes"],
                                         "resources": {"requests": {"storage": "1Gi"}}}},
     ['spec.accessModes: Unsupported value: "ReadWriteSometimes": supported values: "ReadOnlyMany", '
      '"ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"']),
    ("persistentvolumes", {"spec": {"accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/d"}}},
     ["spec.capacity: Required value"]),
    ("resourcequotas", {"spec": {"hard": {"pods": "ten"}}},
     ['spec.hard[pods]: Invalid value: "ten": quantities must match the regular expression '
      "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"]),
    ("limitranges", {"spec": {"limits": [{"type": "Node"}]}},
     ['spec.limits[0].type: Unsupported value: "Node": supported values: "Container", "Pod", '
      '"PersistentVolumeClaim"']),
]


@pytest.mark.parametrize(("key", "body", "expected"), STORAGE_CASES,
                         ids=["pvc-access-modes", "pvc-storage", "pvc-mode-enum", "pv-capacity", "quota-hard",
                              "limitrange-type"])
def test_storage_and_quota(key: str, body: dict[str, Any], expected: list[str]) -> None:
    namespaced = resource_info(key).namespaced
    meta = {"name": "x", "namespace": "default"} if namespaced else {"name": "x"}
    assert causes(key, {"metadata": meta, **body}) == expected


@pytest.mark.parametrize(("involved", "expected"), [
    ({"kind": "Pod", "name": "p", "namespace": "default"}, []),
    ({"kind": "Node", "name": "n"}, []),
    ({"kind": "Pod", "name": "p", "namespace": "other"},
     ['involvedObject.namespace: Invalid value: "other": does not match event.namespace']),
], ids=["same-namespace", "cluster-scoped", "mismatch"])
def test_event_namespace(involved: dict[str, Any], expected: list[str]) -> None:
    obj = {"metadata": {"name": "e", "namespace": "default"}, "involvedObject": involved, "reason": "X"}
    assert causes("events", obj) == expected
