"""Conversions between versions sharing storage: Events (core <-> events.k8s.io) and HPA (v1 <-> v2)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kubeling.api.conversion import (
    CONDITIONS_ANNOTATION,
    CURRENT_METRICS_ANNOTATION,
    METRICS_ANNOTATION,
    convert,
)

META = {"name": "e1", "namespace": "default", "uid": "u", "resourceVersion": "5"}

CORE_EVENT: dict[str, Any] = {
    "kind": "Event", "apiVersion": "v1", "metadata": META,
    "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web", "uid": "p1"},
    "reason": "Scheduled", "message": "assigned", "source": {"component": "sched"},
    "firstTimestamp": "2024-01-01T00:00:00Z", "lastTimestamp": "2024-01-01T00:01:00Z", "count": 2,
    "type": "Normal", "eventTime": None, "action": "Binding", "related": {"kind": "Node", "name": "n1"},
    "reportingComponent": "default-scheduler", "reportingInstance": "sched-1",
}


def test_core_event_to_events_v1() -> None:
    ev = convert(CORE_EVENT, to_api_version="events.k8s.io/v1")
    assert ev == {
        "kind": "Event", "apiVersion": "events.k8s.io/v1", "metadata": META, "eventTime": None,
        "reportingController": "default-scheduler", "reportingInstance": "sched-1", "action": "Binding",
        "reason": "Scheduled", "regarding": CORE_EVENT["involvedObject"], "related": {"kind": "Node", "name": "n1"},
        "note": "assigned", "type": "Normal", "deprecatedSource": {"component": "sched"},
        "deprecatedFirstTimestamp": "2024-01-01T00:00:00Z", "deprecatedLastTimestamp": "2024-01-01T00:01:00Z",
        "deprecatedCount": 2,
    }
    assert list(ev)[:5] == ["kind", "apiVersion", "metadata", "eventTime", "reportingController"]
    assert ev["metadata"] is not META, "conversion must not share nested state with its input"


@pytest.mark.parametrize("event", [
    CORE_EVENT,
    {"kind": "Event", "apiVersion": "v1", "metadata": META, "involvedObject": {"kind": "Node", "name": "n"},
     "source": {}, "firstTimestamp": None, "lastTimestamp": None, "eventTime": "2024-01-01T00:00:00.000000Z",
     "series": {"count": 3, "lastObservedTime": "2024-01-01T00:05:00.000000Z"},
     "reportingComponent": "kubelet", "reportingInstance": ""},
], ids=["kubelet-style", "new-api-style"])
def test_event_round_trip(event: dict[str, Any]) -> None:
    there = convert(event, to_api_version="events.k8s.io/v1")
    back = convert(there, to_api_version="v1")
    assert back == event
    assert convert(back, to_api_version="events.k8s.io/v1") == there


def test_events_v1_minimal_to_core_fills_go_defaults() -> None:
    ev = {"kind": "Event", "apiVersion": "events.k8s.io/v1", "metadata": META,
          "eventTime": "2024-01-01T00:00:00.000000Z", "reportingController": "c", "reportingInstance": "i",
          "action": "Do", "reason": "R", "regarding": {"kind": "Pod", "name": "p"}, "note": "n", "type": "Warning"}
    core = convert(ev, to_api_version="v1")
    assert core["source"] == {} and core["firstTimestamp"] is None and core["lastTimestamp"] is None
    assert core["message"] == "n" and core["involvedObject"] == {"kind": "Pod", "name": "p"}
    assert core["reportingComponent"] == "c" and "count" not in core


HPA_V2: dict[str, Any] = {
    "kind": "HorizontalPodAutoscaler", "apiVersion": "autoscaling/v2",
    "metadata": {"name": "web", "namespace": "default", "annotations": {"keep": "me"}},
    "spec": {
        "scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
        "minReplicas": 1, "maxReplicas": 10,
        "metrics": [
            {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                        "averageUtilization": 60}}},
            {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue",
                                                                           "averageValue": "100Mi"}}},
            {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue",
                                                                             "averageValue": "10"}}},
            {"type": "External", "external": {"metric": {"name": "queue", "selector": {"matchLabels": {"q": "a"}}},
                                              "target": {"type": "Value", "value": "30"}}},
            {"type": "Object", "object": {"describedObject": {"kind": "Ingress", "name": "i",
                                                              "apiVersion": "networking.k8s.io/v1"},
                                          "metric": {"name": "rps"},
                                          "target": {"type": "Value", "value": "2k"}}},
        ],
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
    },
    "status": {
        "observedGeneration": 1, "currentReplicas": 2, "desiredReplicas": 3,
        "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 40,
                                                                                        "averageValue": "40m"}}}],
        "conditions": [{"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale"}],
    },
}


def test_hpa_v2_to_v1() -> None:
    v1 = convert(HPA_V2, to_api_version="autoscaling/v1")
    assert v1["apiVersion"] == "autoscaling/v1"
    assert v1["spec"] == {"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
                          "minReplicas": 1, "maxReplicas": 10, "targetCPUUtilizationPercentage": 60}
    assert v1["status"] == {"observedGeneration": 1, "currentReplicas": 2, "desiredReplicas": 3,
                            "currentCPUUtilizationPercentage": 40}
    ann = v1["metadata"]["annotations"]
    assert ann["keep"] == "me"
    others = json.loads(ann[METRICS_ANNOTATION])
    assert others[0] == {"type": "Resource", "resource": {"name": "memory", "targetAverageValue": "100Mi"}}
    assert others[1] == {"type": "Pods", "pods": {"metricName": "qps", "targetAverageValue": "10"}}
    assert others[2] == {"type": "External", "external": {"metricName": "queue",
                                                          "metricSelector": {"matchLabels": {"q": "a"}},
                                                          "targetValue": "30"}}
    assert json.loads(ann[CURRENT_METRICS_ANNOTATION]) == [
        {"type": "Resource", "resource": {"name": "cpu", "currentAverageUtilization": 40,
                                          "currentAverageValue": "40m"}}]
    assert json.loads(ann[CONDITIONS_ANNOTATION]) == HPA_V2["status"]["conditions"]
    assert "metrics" not in v1["spec"] and HPA_V2["metadata"]["annotations"] == {"keep": "me"}


def test_hpa_round_trip_v2_v1_v2() -> None:
    back = convert(convert(HPA_V2, to_api_version="autoscaling/v1"), to_api_version="autoscaling/v2")
    assert back["metadata"] == HPA_V2["metadata"]
    assert back["status"] == HPA_V2["status"]
    assert back["spec"]["behavior"] == HPA_V2["spec"]["behavior"]
    # v1 -> v2 appends the CPU target after the annotation metrics, as Kubernetes does.
    assert back["spec"]["metrics"] == [*HPA_V2["spec"]["metrics"][1:], HPA_V2["spec"]["metrics"][0]]


@pytest.mark.parametrize(("spec", "want_metrics"), [
    ({"scaleTargetRef": {"kind": "Deployment", "name": "w"}, "maxReplicas": 3, "targetCPUUtilizationPercentage": 50},
     [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]),
    ({"scaleTargetRef": {"kind": "Deployment", "name": "w"}, "maxReplicas": 3},
     [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]),
], ids=["explicit-cpu", "implicit-80-percent"])
def test_hpa_v1_to_v2(spec: dict[str, Any], want_metrics: list[dict[str, Any]]) -> None:
    v1 = {"kind": "HorizontalPodAutoscaler", "apiVersion": "autoscaling/v1", "metadata": {"name": "w"},
          "spec": spec, "status": {"currentReplicas": 1, "desiredReplicas": 1, "currentCPUUtilizationPercentage": 9}}
    v2 = convert(v1, to_api_version="autoscaling/v2")
    assert v2["spec"]["metrics"] == want_metrics
    assert v2["status"]["currentMetrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 9}}}]
    assert "annotations" not in v2["metadata"]
    round_trip = convert(v2, to_api_version="autoscaling/v1")
    assert round_trip["spec"]["targetCPUUtilizationPercentage"] == want_metrics[0]["resource"]["target"][
        "averageUtilization"]


def test_identity_for_other_kinds() -> None:
    cm = {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "c"}, "data": {"a": "1"}}
    out = convert(cm, to_api_version="v1")
    assert out == cm and out is not cm
    deploy = {"kind": "Deployment", "apiVersion": "apps/v1beta2", "metadata": {"name": "d"}}
    assert convert(deploy, to_api_version="apps/v1")["apiVersion"] == "apps/v1"
