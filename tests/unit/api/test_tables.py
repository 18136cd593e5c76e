"""Server-side tables: the cells `kubectl get` prints, checked against printers.go behaviour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kubeling.api import tables
from kubeling.api.errors import StatusError
from kubeling.api.registry import Registry
from kubeling.api.tables.format import human_duration, short_human_duration

NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)
REG = Registry()


def ago(**kw: float) -> str:
    return (NOW - timedelta(**kw)).strftime("%Y-%m-%dT%H:%M:%SZ")


def info(group: str, version: str, resource: str):
    found = REG.get(group, version, resource)
    assert found is not None
    return found


def cells(resource: str, obj: dict[str, Any], group: str = "", version: str = "v1") -> list[Any]:
    return tables.row_cells(info(group, version, resource), obj, NOW)


def obj_meta(name: str = "x", **extra: Any) -> dict[str, Any]:
    return {"name": name, "creationTimestamp": ago(minutes=5), **extra}


# --- durations -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("delta", "want"), [
    (timedelta(seconds=-5), "<invalid>"),
    (timedelta(seconds=-1), "0s"),
    (timedelta(seconds=0), "0s"),
    (timedelta(seconds=5), "5s"),
    (timedelta(seconds=119), "119s"),
    (timedelta(minutes=2), "2m"),
    (timedelta(minutes=3, seconds=2), "3m2s"),
    (timedelta(minutes=9, seconds=59), "9m59s"),
    (timedelta(minutes=10, seconds=30), "10m"),
    (timedelta(minutes=179), "179m"),
    (timedelta(hours=3), "3h"),
    (timedelta(hours=2, minutes=10), "130m"),
    (timedelta(hours=7, minutes=10), "7h10m"),
    (timedelta(hours=8, minutes=10), "8h"),
    (timedelta(hours=47), "47h"),
    (timedelta(days=3, hours=4), "3d4h"),
    (timedelta(days=3), "3d"),
    (timedelta(days=45), "45d"),
    (timedelta(days=729), "729d"),
    (timedelta(days=365 * 2 + 30), "2y30d"),
    (timedelta(days=365 * 3), "3y"),
    (timedelta(days=365 * 9), "9y"),
], ids=lambda v: str(v))
def test_human_duration(delta: timedelta, want: str) -> None:
    assert human_duration(delta) == want


@pytest.mark.parametrize(("delta", "want"), [
    (timedelta(seconds=-2), "<invalid>"), (timedelta(seconds=59), "59s"), (timedelta(minutes=59), "59m"),
    (timedelta(hours=23), "23h"), (timedelta(days=364), "364d"), (timedelta(days=800), "2y"),
], ids=lambda v: str(v))
def test_short_human_duration(delta: timedelta, want: str) -> None:
    assert short_human_duration(delta) == want


# --- pods ----------------------------------------------------------------------------------------


def pod(status: dict[str, Any], *, init: int = 0, containers: int = 1, deleting: bool = False,
        sidecar: bool = False) -> dict[str, Any]:
    meta = obj_meta("p")
    if deleting:
        meta["deletionTimestamp"] = ago(seconds=1)
    init_specs = [{"name": f"i{n}", "image": "busybox"} for n in range(init)]
    if sidecar and init_specs:
        init_specs[0]["restartPolicy"] = "Always"
    return {"metadata": meta,
            "spec": {"containers": [{"name": f"c{n}", "image": "nginx"} for n in range(containers)],
                     "initContainers": init_specs},
            "status": status}


RUNNING = {"running": {"startedAt": ago(minutes=4)}}


@pytest.mark.parametrize(("p", "ready", "status", "restarts"), [
    (pod({"phase": "Pending"}), "0/1", "Pending", "0"),
    (pod({"phase": "Running", "containerStatuses": [{"name": "c0", "ready": True, "state": RUNNING}]}),
     "1/1", "Running", "0"),
    (pod({"phase": "Pending", "containerStatuses": [
        {"name": "c0", "ready": False, "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
     "0/1", "ContainerCreating", "0"),
    (pod({"phase": "Running", "containerStatuses": [
        {"name": "c0", "ready": False, "restartCount": 5, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
         "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(minutes=2)}}}]}),
     "0/1", "CrashLoopBackOff", "5 (2m ago)"),
    (pod({"phase": "Succeeded", "containerStatuses": [
        {"name": "c0", "ready": False, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
     "0/1", "Completed", "0"),
    (pod({"phase": "Failed", "containerStatuses": [
        {"name": "c0", "state": {"terminated": {"exitCode": 137}}}]}), "0/1", "ExitCode:137", "0"),
    (pod({"phase": "Failed", "containerStatuses": [
        {"name": "c0", "state": {"terminated": {"exitCode": 0, "signal": 9}}}]}), "0/1", "Signal:9", "0"),
    (pod({"phase": "Pending", "initContainerStatuses": [
        {"name": "i0", "state": {"running": {}}}]}, init=1), "0/1", "Init:0/1", "0"),
    (pod({"phase": "Pending", "initContainerStatuses": [
        {"name": "i0", "state": {"terminated": {"exitCode": 0}}},
        {"name": "i1", "state": {"waiting": {"reason": "PodInitializing"}}}]}, init=2), "0/1", "Init:1/2", "0"),
    (pod({"phase": "Pending", "initContainerStatuses": [
        {"name": "i0", "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}, init=1),
     "0/1", "Init:CrashLoopBackOff", "3"),
    (pod({"phase": "Pending", "initContainerStatuses": [
        {"name": "i0", "state": {"terminated": {"exitCode": 2}}}]}, init=1), "0/1", "Init:ExitCode:2", "0"),
    (pod({"phase": "Pending", "initContainerStatuses": [
        {"name": "i0", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}, init=1),
     "0/1", "Init:Error", "0"),
    (pod({"phase": "Running", "conditions": [{"type": "Initialized", "status": "True"}],
          "initContainerStatuses": [{"name": "i0", "started": True, "ready": True, "state": RUNNING}],
          "containerStatuses": [{"name": "c0", "ready": True, "state": RUNNING}]}, init=1, sidecar=True),
     "2/2", "Running", "0"),
    (pod({"phase": "Running", "containerStatuses": [{"name": "c0", "ready": True, "state": RUNNING}]},
         deleting=True), "1/1", "Terminating", "0"),
    (pod({"phase": "Succeeded"}, deleting=True), "0/1", "Succeeded", "0"),
    (pod({"phase": "Running", "reason": "NodeLost"}, deleting=True), "0/1", "Unknown", "0"),
    (pod({"phase": "Failed", "reason": "Evicted"}), "0/1", "Evicted", "0"),
    (pod({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                                              "reason": "SchedulingGated"}]}), "0/1", "SchedulingGated", "0"),
    (pod({"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}], "containerStatuses": [
        {"name": "c0", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
        {"name": "c1", "ready": True, "state": RUNNING}]}, containers=2), "1/2", "NotReady", "0"),
    (pod({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}], "containerStatuses": [
        {"name": "c0", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}},
        {"name": "c1", "ready": True, "state": RUNNING}]}, containers=2), "1/2", "Running", "0"),
], ids=["pending", "running", "creating", "crashloop-restarts-ago", "completed", "exitcode", "signal",
        "init-0-of-1", "init-1-of-2", "init-crashloop", "init-exitcode", "init-reason", "sidecar-counts",
        "terminating", "terminal-not-terminating", "nodelost-unknown", "evicted", "scheduling-gated",
        "completed-plus-running-notready", "completed-plus-running-ready"])
def test_pod_ready_status_restarts(p: dict[str, Any], ready: str, status: str, restarts: str) -> None:
    row = cells("pods", p)
    assert row[1:4] == [ready, status, restarts]
    assert row[4] == "5m"


def test_pod_wide_cells() -> None:
    p = pod({"phase": "Running", "podIPs": [{"ip": "10.0.0.5"}], "nominatedNodeName": "n2",
             "conditions": [{"type": "gate/a", "status": "True"}]})
    p["spec"].update(nodeName="n1", readinessGates=[{"conditionType": "gate/a"}, {"conditionType": "gate/b"}])
    assert cells("pods", p)[5:] == ["10.0.0.5", "n1", "n2", "1/2"]
    assert cells("pods", pod({}))[5:] == ["<none>", "<none>", "<none>", "<none>"]


def test_pod_columns() -> None:
    cols = tables.column_definitions(info("", "v1", "pods"))
    assert [(c["name"], c["type"], c["priority"]) for c in cols] == [
        ("Name", "string", 0), ("Ready", "string", 0), ("Status", "string", 0), ("Restarts", "string", 0),
        ("Age", "string", 0), ("IP", "string", 1), ("Node", "string", 1), ("Nominated Node", "string", 1),
        ("Readiness Gates", "string", 1)]
    assert cols[0]["format"] == "name" and cols[0]["description"].startswith("Name must be unique")
    assert list(cols[0]) == ["name", "type", "format", "description", "priority"]


# --- services ------------------------------------------------------------------------------------


def svc(spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": obj_meta("s"), "spec": spec, "status": status or {}}


@pytest.mark.parametrize(("s", "want"), [
    (svc({"type": "ClusterIP", "clusterIPs": ["10.96.0.1"], "ports": [{"port": 80, "protocol": "TCP"}]}),
     ["ClusterIP", "10.96.0.1", "<none>", "80/TCP"]),
    (svc({"type": "NodePort", "clusterIPs": ["10.96.0.2"],
          "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}),
     ["NodePort", "10.96.0.2", "<none>", "80:30080/TCP,53/UDP"]),
    (svc({"type": "ClusterIP", "clusterIPs": ["None"]}), ["ClusterIP", "None", "<none>", "<none>"]),
    (svc({"type": "ClusterIP", "clusterIPs": ["10.0.0.1"], "externalIPs": ["1.2.3.4", "5.6.7.8"],
          "ports": [{"port": 443, "protocol": "TCP"}]}), ["ClusterIP", "10.0.0.1", "1.2.3.4,5.6.7.8", "443/TCP"]),
    (svc({"type": "LoadBalancer", "clusterIPs": ["10.0.0.3"], "ports": [{"port": 80, "nodePort": 31000,
                                                                         "protocol": "TCP"}]}),
     ["LoadBalancer", "10.0.0.3", "<pending>", "80:31000/TCP"]),
    (svc({"type": "LoadBalancer", "clusterIPs": ["10.0.0.3"]},
         {"loadBalancer": {"ingress": [{"ip": "172.18.0.5"}, {"hostname": "lb.example.com"}]}}),
     ["LoadBalancer", "10.0.0.3", "172.18.0.5,lb.example.com", "<none>"]),
    (svc({"type": "ExternalName", "externalName": "db.example.com"}),
     ["ExternalName", "<none>", "db.example.com", "<none>"]),
], ids=["clusterip", "nodeport-multi", "headless", "external-ips", "lb-pending", "lb-ingress", "externalname"])
def test_service_cells(s: dict[str, Any], want: list[str]) -> None:
    row = cells("services", s)
    assert row[1:5] == want
    assert row[5] == "5m"


def test_service_selector_wide() -> None:
    s = svc({"type": "ClusterIP", "clusterIPs": ["10.0.0.1"], "selector": {"tier": "web", "app": "a"}})
    assert cells("services", s)[6] == "app=a,tier=web"
    assert cells("services", svc({"type": "ClusterIP"}))[6] == "<none>"


# --- apps ------------------------------------------------------------------------------------------

TEMPLATE = {"spec": {"containers": [{"name": "web", "image": "nginx:1"}, {"name": "log", "image": "busybox"}]}}


@pytest.mark.parametrize(("spec", "status", "want"), [
    ({"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE},
     {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
     ["2/3", 3, 2, "5m", "web,log", "nginx:1,busybox", "app=web"]),
    ({"replicas": 0, "selector": {"matchLabels": {"app": "web"},
                                  "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}]},
      "template": TEMPLATE}, {},
     ["0/0", 0, 0, "5m", "web,log", "nginx:1,busybox", "app=web,tier in (a,b)"]),
    ({"selector": {}, "template": TEMPLATE}, {}, ["0/1", 0, 0, "5m", "web,log", "nginx:1,busybox", ""]),
], ids=["scaled", "zero-with-expressions", "defaulted-replicas-empty-selector"])
def test_deployment_cells(spec: dict[str, Any], status: dict[str, Any], want: list[Any]) -> None:
    assert cells("deployments", {"metadata": obj_meta("d"), "spec": spec, "status": status}, "apps") == ["d", *want]


def test_deployment_columns() -> None:
    cols = tables.column_definitions(info("apps", "v1", "deployments"))
    assert [c["name"] for c in cols if c["priority"] == 0] == ["Name", "Ready", "Up-to-date", "Available", "Age"]
    assert [c["name"] for c in cols if c["priority"] == 1] == ["Containers", "Images", "Selector"]


@pytest.mark.parametrize(("resource", "obj", "want"), [
    ("replicasets", {"spec": {"replicas": 2, "selector": {"matchLabels": {"app": "a"}}, "template": TEMPLATE},
                     "status": {"replicas": 2, "readyReplicas": 1}},
     [2, 2, 1, "5m", "web,log", "nginx:1,busybox", "app=a"]),
    ("statefulsets", {"spec": {"replicas": 3, "template": TEMPLATE}, "status": {"readyReplicas": 3}},
     ["3/3", "5m", "web,log", "nginx:1,busybox"]),
    ("daemonsets", {"spec": {"selector": {"matchLabels": {"app": "a"}},
                             "template": {"spec": {**TEMPLATE["spec"], "nodeSelector": {"os": "linux"}}}},
                    "status": {"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "numberReady": 1,
                               "updatedNumberScheduled": 2, "numberAvailable": 1}},
     [2, 2, 1, 2, 1, "os=linux", "5m", "web,log", "nginx:1,busybox", "app=a"]),
    ("controllerrevisions", {"revision": 2, "metadata": obj_meta("x", ownerReferences=[
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "controller": True}])},
     ["statefulset.apps/web", 2, "5m"]),
], ids=["replicaset", "statefulset", "daemonset", "controllerrevision"])
def test_apps_cells(resource: str, obj: dict[str, Any], want: list[Any]) -> None:
    obj = {"metadata": obj_meta("x"), **obj}
    assert cells(resource, obj, "apps") == ["x", *want]


# --- batch -----------------------------------------------------------------------------------------


def job(spec: dict[str, Any], status: dict[str, Any], deleting: bool = False) -> dict[str, Any]:
    meta = obj_meta("j")
    if deleting:
        meta["deletionTimestamp"] = ago(seconds=1)
    return {"metadata": meta, "spec": {"template": TEMPLATE, **spec}, "status": status}


@pytest.mark.parametrize(("j", "want"), [
    (job({"completions": 1}, {"startTime": ago(minutes=5), "succeeded": 1, "completionTime": ago(minutes=4),
                              "conditions": [{"type": "Complete", "status": "True"}]}), ["Complete", "1/1", "60s"]),
    (job({"completions": 3}, {"startTime": ago(minutes=3, seconds=2), "succeeded": 1}), ["Running", "1/3", "3m2s"]),
    (job({"parallelism": 4}, {}), ["Running", "0/1 of 4", ""]),
    (job({"parallelism": 1}, {"conditions": [{"type": "Failed", "status": "True"}]}), ["Failed", "0/1", ""]),
    (job({"completions": 1, "suspend": True}, {"conditions": [{"type": "Suspended", "status": "True"}]}),
     ["Suspended", "0/1", ""]),
    (job({"completions": 1}, {}, deleting=True), ["Terminating", "0/1", ""]),
    (job({"completions": 1}, {"conditions": [{"type": "FailureTarget", "status": "True"}]}),
     ["FailureTarget", "0/1", ""]),
], ids=["complete", "running", "parallel", "failed", "suspended", "terminating", "failure-target"])
def test_job_cells(j: dict[str, Any], want: list[str]) -> None:
    assert cells("jobs", j, "batch")[1:4] == want


def test_cronjob_cells() -> None:
    cj = {"metadata": obj_meta("c"), "spec": {"schedule": "*/1 * * * *", "suspend": False, "jobTemplate": {
        "spec": {"template": TEMPLATE}}}, "status": {"active": [{"name": "c-1"}], "lastScheduleTime": ago(seconds=30)}}
    assert cells("cronjobs", cj, "batch") == ["c", "*/1 * * * *", "<none>", "False", 1, "30s", "5m",
                                              "web,log", "nginx:1,busybox", "<none>"]


# --- core odds and ends -------------------------------------------------------------------------------


@pytest.mark.parametrize(("resource", "obj", "want"), [
    ("namespaces", {"status": {"phase": "Active"}}, ["Active", "5m"]),
    ("configmaps", {"data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}}, [3, "5m"]),
    ("secrets", {"type": "Opaque", "data": {"a": "MQ=="}}, ["Opaque", 1, "5m"]),
    ("serviceaccounts", {}, [0, "5m"]),
    ("endpoints", {"subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}],
                                "ports": [{"port": 80}, {"port": 443}]}]},
     ["10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more...", "5m"]),
    ("endpoints", {}, ["<none>", "5m"]),
    ("resourcequotas", {"status": {"hard": {"pods": "10", "limits.cpu": "2", "requests.cpu": "1"},
                                   "used": {"pods": "3"}}},
     ["pods: 3/10, requests.cpu: 0/1", "limits.cpu: 0/2", "5m"]),
    ("persistentvolumeclaims", {"spec": {"volumeName": "pv1", "storageClassName": "std", "volumeMode": "Filesystem"},
                                "status": {"phase": "Bound", "capacity": {"storage": "1Gi"},
                                           "accessModes": ["ReadWriteOnce"]}},
     ["Bound", "pv1", "1Gi", "RWO", "std", "<unset>", "5m", "Filesystem"]),
    ("persistentvolumes", {"spec": {"capacity": {"storage": "5Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"],
                                    "persistentVolumeReclaimPolicy": "Retain",
                                    "claimRef": {"namespace": "ns", "name": "c"}, "volumeMode": "Filesystem"},
                           "status": {"phase": "Bound"}},
     ["5Gi", "RWO,RWX", "Retain", "Bound", "ns/c", "", "<unset>", "", "5m", "Filesystem"]),
], ids=["namespace", "configmap", "secret", "serviceaccount", "endpoints", "endpoints-empty", "quota", "pvc", "pv"])
def test_core_cells(resource: str, obj: dict[str, Any], want: list[Any]) -> None:
    assert cells(resource, {"metadata": obj_meta("x"), **obj}) == ["x", *want]


@pytest.mark.parametrize(("labels", "conditions", "unschedulable", "status", "roles"), [
    ({"node-role.kubernetes.io/control-plane": ""}, [{"type": "Ready", "status": "True"}], False,
     "Ready", "control-plane"),
    ({}, [{"type": "Ready", "status": "False"}], True, "NotReady,SchedulingDisabled", "<none>"),
    ({"kubernetes.io/role": "worker", "node-role.kubernetes.io/infra": ""}, [], False, "Unknown", "infra,worker"),
], ids=["ready-control-plane", "notready-cordoned", "unknown-roles"])
def test_node_cells(labels: dict[str, str], conditions: list[dict[str, str]], unschedulable: bool,
                    status: str, roles: str) -> None:
    node = {"metadata": obj_meta("n1", labels=labels), "spec": {"unschedulable": unschedulable},
            "status": {"conditions": conditions, "nodeInfo": {"kubeletVersion": "v1.33.0", "osImage": "Debian"},
                       "addresses": [{"type": "InternalIP", "address": "172.18.0.2"}]}}
    assert cells("nodes", node) == ["n1", status, roles, "5m", "v1.33.0", "172.18.0.2", "<none>", "Debian",
                                    "<unknown>", "<unknown>"]


def test_event_cells_core_and_events_v1_agree() -> None:
    core_event = {"apiVersion": "v1", "kind": "Event", "metadata": obj_meta("web.17a"),
                  "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{web}"},
                  "reason": "Pulled", "message": "Pulled image\n", "type": "Normal",
                  "source": {"component": "kubelet", "host": "n1"},
                  "firstTimestamp": ago(minutes=10), "lastTimestamp": ago(minutes=2), "count": 4}
    want = ["2m", "Normal", "Pulled", "pod/web", "spec.containers{web}", "kubelet, n1", "Pulled image", "10m", 4,
            "web.17a"]
    assert cells("events", core_event) == want
    from kubeling.api.conversion import convert
    assert cells("events", convert(core_event, to_api_version="events.k8s.io/v1"), "events.k8s.io") == want


def test_event_series_and_singleton() -> None:
    ev = {"metadata": obj_meta("e"), "involvedObject": {"kind": "Node"}, "eventTime": ago(minutes=7),
          "reportingComponent": "sched", "series": {"count": 9, "lastObservedTime": ago(seconds=30)}}
    assert cells("events", ev)[:2] == ["30s", ""] and cells("events", ev)[3] == "node"
    assert cells("events", ev)[5:9] == ["sched", "", "7m", 9]
    del ev["series"]
    assert cells("events", ev)[0] == "7m" and cells("events", ev)[8] == 1


@pytest.mark.parametrize(("resource", "group", "obj", "want"), [
    ("leases", "coordination.k8s.io", {"spec": {"holderIdentity": "me"}}, ["me", "5m"]),
    ("endpointslices", "discovery.k8s.io", {"addressType": "IPv4", "ports": [{"port": 80}, {"name": "x"}],
                                            "endpoints": [{"addresses": ["10.0.0.1"]}]},
     ["IPv4", "80,x", "10.0.0.1", "5m"]),
    ("endpointslices", "discovery.k8s.io", {"addressType": "IPv4"}, ["IPv4", "<unset>", "<unset>", "5m"]),
    ("ingresses", "networking.k8s.io", {"spec": {"ingressClassName": "nginx", "rules": [{"host": "a.io"}, {}],
                                                 "tls": [{}]},
                                        "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}},
     ["nginx", "a.io", "1.2.3.4", "80, 443", "5m"]),
    ("ingressclasses", "networking.k8s.io", {"spec": {"controller": "k8s.io/ingress-nginx"}},
     ["k8s.io/ingress-nginx", "<none>", "5m"]),
    ("storageclasses", "storage.k8s.io", {"provisioner": "rancher.io/local-path"},
     ["rancher.io/local-path", "Delete", "Immediate", False, "5m"]),
    ("priorityclasses", "scheduling.k8s.io", {"value": 1000, "globalDefault": False,
                                              "preemptionPolicy": "PreemptLowerPriority"},
     [1000, False, "5m", "PreemptLowerPriority"]),
], ids=["lease", "endpointslice", "endpointslice-empty", "ingress", "ingressclass", "storageclass", "priorityclass"])
def test_other_cells(resource: str, group: str, obj: dict[str, Any], want: list[Any]) -> None:
    assert cells(resource, {"metadata": obj_meta("x"), **obj}, group) == ["x", *want]


def test_default_storageclass_name() -> None:
    sc = {"metadata": obj_meta("std", annotations={"storageclass.kubernetes.io/is-default-class": "true"}),
          "provisioner": "p"}
    assert cells("storageclasses", sc, "storage.k8s.io")[0] == "std (default)"


@pytest.mark.parametrize(("version", "hpa", "targets"), [
    ("v2", {"spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 1, "maxReplicas": 5,
                     "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                         "type": "Utilization", "averageUtilization": 50}}}]},
            "status": {"currentReplicas": 2, "currentMetrics": [{"type": "Resource", "resource": {
                "name": "cpu", "current": {"averageUtilization": 12, "averageValue": "3m"}}}]}},
     "cpu: 12%/50%"),
    ("v2", {"spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5, "metrics": [
        {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}},
        {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "1k"}}},
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization"}}}]}, "status": {}},
     "memory: <unknown>/100Mi, <unknown>/1k + 1 more..."),
    ("v1", {"spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 1, "maxReplicas": 5,
                     "targetCPUUtilizationPercentage": 70},
            "status": {"currentReplicas": 2, "currentCPUUtilizationPercentage": 30}}, "cpu: 30%/70%"),
], ids=["v2-cpu", "v2-more", "v1-converted"])
def test_hpa_targets(version: str, hpa: dict[str, Any], targets: str) -> None:
    obj = {"apiVersion": f"autoscaling/{version}", "kind": "HorizontalPodAutoscaler", "metadata": obj_meta("h"), **hpa}
    row = cells("horizontalpodautoscalers", obj, "autoscaling", version)
    assert row[1:3] == ["Deployment/web", targets]


@pytest.mark.parametrize(("resource", "group"), [("limitranges", ""), ("customresourcedefinitions",
                                                                       "apiextensions.k8s.io")])
def test_default_table_created_at(resource: str, group: str) -> None:
    i = info(group, "v1", resource)
    cols = tables.column_definitions(i)
    assert [(c["name"], c["type"]) for c in cols] == [("Name", "string"), ("Created At", "date")]
    obj = {"metadata": {"name": "x", "creationTimestamp": "2024-01-02T03:04:05Z"}}
    assert tables.row_cells(i, obj, NOW) == ["x", "2024-01-02T03:04:05Z"]


def test_age_unknown_without_timestamp() -> None:
    assert cells("configmaps", {"metadata": {"name": "c"}}) == ["c", 0, "<unknown>"]


# --- build_table -------------------------------------------------------------------------------------


def test_build_table_shapes() -> None:
    i = info("", "v1", "configmaps")
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": obj_meta("c", namespace="ns", uid="u1"), "data": {}}
    t = tables.build_table(i, [cm], now=NOW, resource_version="42", continue_token="abc", remaining=3)
    assert list(t) == ["kind", "apiVersion", "metadata", "columnDefinitions", "rows"]
    assert t["metadata"] == {"resourceVersion": "42", "continue": "abc", "remainingItemCount": 3}
    assert t["rows"] == [{"cells": ["c", 0, "5m"], "object": {
        "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": cm["metadata"]}}]
    full = tables.build_table(i, [cm], now=NOW, resource_version="1", include_object="Object")
    assert full["rows"][0]["object"] is cm and full["metadata"] == {"resourceVersion": "1"}
    none = tables.build_table(i, [cm], now=NOW, resource_version="1", include_object="None", no_headers=True)
    assert none["rows"][0]["object"] is None and none["columnDefinitions"] is None
    with pytest.raises(StatusError) as err:
        tables.build_table(i, [], now=NOW, resource_version="1", include_object="Bogus")
    assert err.value.code == 400 and err.value.message == 'unrecognized includeObject value: "Bogus"'


def test_build_table_pod_row_conditions() -> None:
    t = tables.build_table(info("", "v1", "pods"), [pod({"phase": "Succeeded"})], now=NOW, resource_version="1")
    assert t["rows"][0]["conditions"] == [{"type": "Completed", "status": "True", "reason": "Succeeded",
                                           "message": "The pod has completed successfully."}]
    assert list(t["rows"][0]) == ["cells", "conditions", "object"]
