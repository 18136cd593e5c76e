"""Conversions between API versions that share one storage.

Kubernetes serves core/v1 and events.k8s.io/v1 Events from the same etcd keys, and
autoscaling/v1 and autoscaling/v2 HorizontalPodAutoscalers likewise; whichever version a
client asks for, it sees the same object. We keep one stored shape (see
`ResourceInfo.storage_version`) and convert on the way in and out, field for field as
`pkg/apis/events/v1/conversion.go` and `pkg/apis/autoscaling/v1/conversion.go` do:

* Events rename fields (`involvedObject`<->`regarding`, `message`<->`note`, the
  `deprecated*` counters...). Go always serialises a few struct fields even when empty
  (`eventTime: null`, `source: {}`), and so do we, in Go's field order.
* autoscaling/v1 can only express a CPU-utilisation target; everything else the v2 object
  carries survives the round trip in the `autoscaling.alpha.kubernetes.io/*` annotations,
  in the old v2beta1-style metric format, exactly as kube-apiserver stores it.
"""

from __future__ import annotations

import copy
import json
from typing import Any

EVENTS_V1 = "events.k8s.io/v1"
HPA_V1 = "autoscaling/v1"
HPA_V2 = "autoscaling/v2"

METRICS_ANNOTATION = "autoscaling.alpha.kubernetes.io/metrics"
CURRENT_METRICS_ANNOTATION = "autoscaling.alpha.kubernetes.io/current-metrics"
CONDITIONS_ANNOTATION = "autoscaling.alpha.kubernetes.io/conditions"
BEHAVIOR_ANNOTATION = "autoscaling.alpha.kubernetes.io/behavior"
DEFAULT_CPU_UTILIZATION = 80

_MISSING = object()


def convert(obj: dict[str, Any], *, to_api_version: str) -> dict[str, Any]:
    """Return a new object in `to_api_version`; kinds without a conversion only get `apiVersion` set."""
    src = obj.get("apiVersion") or ""
    kind = obj.get("kind")
    if src != to_api_version:
        if kind == "Event" and src == "v1" and to_api_version == EVENTS_V1:
            return core_event_to_v1(obj)
        if kind == "Event" and src == EVENTS_V1 and to_api_version == "v1":
            return v1_event_to_core(obj)
        if kind == "HorizontalPodAutoscaler" and src == HPA_V2 and to_api_version == HPA_V1:
            return hpa_v2_to_v1(obj)
        if kind == "HorizontalPodAutoscaler" and src == HPA_V1 and to_api_version == HPA_V2:
            return hpa_v1_to_v2(obj)
    out = copy.deepcopy(obj)
    out["apiVersion"] = to_api_version
    return out


def _build(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An ordered dict from (key, value) pairs, leaving out `_MISSING` values (Go's omitempty)."""
    return {k: copy.deepcopy(v) for k, v in pairs if v is not _MISSING}


def _opt(d: dict[str, Any], key: str) -> Any:
    """The value under `key`, or `_MISSING` when absent/empty (so `_build` omits it)."""
    v = d.get(key)
    return _MISSING if v in (None, "", 0, [], {}) else v


# --- events -----------------------------------------------------------------------------------------


def core_event_to_v1(ev: dict[str, Any]) -> dict[str, Any]:
    """core/v1 Event -> events.k8s.io/v1 Event."""
    return _build([
        ("kind", "Event"), ("apiVersion", EVENTS_V1), ("metadata", ev.get("metadata") or {}),
        ("eventTime", ev.get("eventTime")), ("series", _opt(ev, "series")),
        ("reportingController", _opt(ev, "reportingComponent")),
        ("reportingInstance", _opt(ev, "reportingInstance")), ("action", _opt(ev, "action")),
        ("reason", _opt(ev, "reason")), ("regarding", ev.get("involvedObject") or {}),
        ("related", _opt(ev, "related")), ("note", _opt(ev, "message")), ("type", _opt(ev, "type")),
        ("deprecatedSource", ev.get("source") or {}),
        ("deprecatedFirstTimestamp", ev.get("firstTimestamp")),
        ("deprecatedLastTimestamp", ev.get("lastTimestamp")),
        ("deprecatedCount", _opt(ev, "count")),
    ])


def v1_event_to_core(ev: dict[str, Any]) -> dict[str, Any]:
    """events.k8s.io/v1 Event -> core/v1 Event."""
    return _build([
        ("kind", "Event"), ("apiVersion", "v1"), ("metadata", ev.get("metadata") or {}),
        ("involvedObject", ev.get("regarding") or {}), ("reason", _opt(ev, "reason")),
        ("message", _opt(ev, "note")), ("source", ev.get("deprecatedSource") or {}),
        ("firstTimestamp", ev.get("deprecatedFirstTimestamp")),
        ("lastTimestamp", ev.get("deprecatedLastTimestamp")),
        ("count", _opt(ev, "deprecatedCount")), ("type", _opt(ev, "type")),
        ("eventTime", ev.get("eventTime")), ("series", _opt(ev, "series")),
        ("action", _opt(ev, "action")), ("related", _opt(ev, "related")),
        ("reportingComponent", ev.get("reportingController") or ""),
        ("reportingInstance", ev.get("reportingInstance") or ""),
    ])


# --- HPA metric formats -----------------------------------------------------------------------------
# v2: {"type": T, "<t>": {"metric": {"name","selector"}, "target"|"current": {...}, ...}}
# v1 annotation (v2beta1 style): flattened "metricName", "targetAverageValue", "currentValue", ...


def _metric_spec_to_v1(m: dict[str, Any]) -> dict[str, Any]:
    t = m.get("type")
    if t == "Resource" or t == "ContainerResource":
        key = "resource" if t == "Resource" else "containerResource"
        src = m.get(key) or {}
        target = src.get("target") or {}
        body = _build([("name", src.get("name", "")),
                       ("targetAverageUtilization", _opt(target, "averageUtilization")),
                       ("targetAverageValue", _opt(target, "averageValue"))]
                      + ([("container", src.get("container", ""))] if t == "ContainerResource" else []))
        return {"type": t, key: body}
    if t == "Pods":
        src = m.get("pods") or {}
        metric, target = src.get("metric") or {}, src.get("target") or {}
        return {"type": t, "pods": _build([("metricName", metric.get("name", "")),
                                           ("targetAverageValue", target.get("averageValue", "0")),
                                           ("selector", _opt(metric, "selector"))])}
    if t == "Object":
        src = m.get("object") or {}
        metric, target = src.get("metric") or {}, src.get("target") or {}
        return {"type": t, "object": _build([
            ("target", src.get("describedObject") or {}), ("metricName", metric.get("name", "")),
            ("targetValue", target.get("value", "0")), ("selector", _opt(metric, "selector")),
            ("averageValue", _opt(target, "averageValue"))])}
    if t == "External":
        src = m.get("external") or {}
        metric, target = src.get("metric") or {}, src.get("target") or {}
        return {"type": t, "external": _build([
            ("metricName", metric.get("name", "")), ("metricSelector", _opt(metric, "selector")),
            ("targetValue", _opt(target, "value")), ("targetAverageValue", _opt(target, "averageValue"))])}
    return copy.deepcopy(m)


def _metric_spec_to_v2(m: dict[str, Any]) -> dict[str, Any]:
    t = m.get("type")
    if t == "Resource" or t == "ContainerResource":
        key = "resource" if t == "Resource" else "containerResource"
        src = m.get(key) or {}
        util = src.get("targetAverageUtilization")
        target = _build([("type", "AverageValue" if util is None else "Utilization"),
                         ("averageValue", _opt(src, "targetAverageValue")),
                         ("averageUtilization", _MISSING if util is None else util)])
        pairs = [("name", src.get("name", ""))]
        if t == "ContainerResource":
            pairs.append(("container", src.get("container", "")))
        return {"type": t, key: _build([*pairs, ("target", target)])}
    if t == "Pods":
        src = m.get("pods") or {}
        return {"type": t, "pods": {
            "metric": _build([("name", src.get("metricName", "")), ("selector", _opt(src, "selector"))]),
            "target": {"type": "AverageValue", "averageValue": src.get("targetAverageValue", "0")}}}
    if t == "Object":
        src = m.get("object") or {}
        avg = src.get("averageValue")
        return {"type": t, "object": {
            "describedObject": copy.deepcopy(src.get("target") or {}),
            "target": _build([("type", "Value" if avg is None else "AverageValue"),
                              ("value", src.get("targetValue", "0")),
                              ("averageValue", _MISSING if avg is None else avg)]),
            "metric": _build([("name", src.get("metricName", "")), ("selector", _opt(src, "selector"))])}}
    if t == "External":
        src = m.get("external") or {}
        value = src.get("targetValue")
        return {"type": t, "external": {
            "metric": _build([("name", src.get("metricName", "")), ("selector", _opt(src, "metricSelector"))]),
            "target": _build([("type", "AverageValue" if value is None else "Value"),
                              ("value", _MISSING if value is None else value),
                              ("averageValue", _opt(src, "targetAverageValue"))])}}
    return copy.deepcopy(m)


def _metric_status_to_v1(m: dict[str, Any]) -> dict[str, Any]:
    t = m.get("type")
    if t == "Resource" or t == "ContainerResource":
        key = "resource" if t == "Resource" else "containerResource"
        src = m.get(key) or {}
        cur = src.get("current") or {}
        body = _build([("name", src.get("name", "")),
                       ("currentAverageUtilization", _opt(cur, "averageUtilization")),
                       ("currentAverageValue", cur.get("averageValue", "0"))]
                      + ([("container", src.get("container", ""))] if t == "ContainerResource" else []))
        return {"type": t, key: body}
    if t == "Pods":
        src = m.get("pods") or {}
        metric, cur = src.get("metric") or {}, src.get("current") or {}
        return {"type": t, "pods": _build([("metricName", metric.get("name", "")),
                                           ("currentAverageValue", cur.get("averageValue", "0")),
                                           ("selector", _opt(metric, "selector"))])}
    if t == "Object":
        src = m.get("object") or {}
        metric, cur = src.get("metric") or {}, src.get("current") or {}
        return {"type": t, "object": _build([
            ("target", src.get("describedObject") or {}), ("metricName", metric.get("name", "")),
            ("currentValue", cur.get("value", "0")), ("selector", _opt(metric, "selector")),
            ("averageValue", _opt(cur, "averageValue"))])}
    if t == "External":
        src = m.get("external") or {}
        metric, cur = src.get("metric") or {}, src.get("current") or {}
        return {"type": t, "external": _build([
            ("metricName", metric.get("name", "")), ("metricSelector", _opt(metric, "selector")),
            ("currentValue", cur.get("value", "0")), ("currentAverageValue", _opt(cur, "averageValue"))])}
    return copy.deepcopy(m)


def _metric_status_to_v2(m: dict[str, Any]) -> dict[str, Any]:
    t = m.get("type")
    if t == "Resource" or t == "ContainerResource":
        key = "resource" if t == "Resource" else "containerResource"
        src = m.get(key) or {}
        current = _build([("averageValue", _opt(src, "currentAverageValue")),
                          ("averageUtilization", _opt(src, "currentAverageUtilization"))])
        pairs = [("name", src.get("name", ""))]
        if t == "ContainerResource":
            pairs.append(("container", src.get("container", "")))
        return {"type": t, key: _build([*pairs, ("current", current)])}
    if t == "Pods":
        src = m.get("pods") or {}
        return {"type": t, "pods": {
            "metric": _build([("name", src.get("metricName", "")), ("selector", _opt(src, "selector"))]),
            "current": {"averageValue": src.get("currentAverageValue", "0")}}}
    if t == "Object":
        src = m.get("object") or {}
        return {"type": t, "object": {
            "metric": _build([("name", src.get("metricName", "")), ("selector", _opt(src, "selector"))]),
            "current": _build([("value", src.get("currentValue", "0")), ("averageValue", _opt(src, "averageValue"))]),
            "describedObject": copy.deepcopy(src.get("target") or {})}}
    if t == "External":
        src = m.get("external") or {}
        return {"type": t, "external": {
            "metric": _build([("name", src.get("metricName", "")), ("selector", _opt(src, "metricSelector"))]),
            "current": _build([("value", src.get("currentValue", "0")),
                               ("averageValue", _opt(src, "currentAverageValue"))])}}
    return copy.deepcopy(m)


def _is_cpu_utilization(m: dict[str, Any]) -> bool:
    res = m.get("resource") or {}
    return (m.get("type") == "Resource" and res.get("name") == "cpu"
            and (res.get("target") or {}).get("averageUtilization") is not None)


def _dumps(value: Any) -> str:
    """Compact JSON like Go's json.Marshal (no spaces, no HTML escaping needed here)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# --- HPA objects ------------------------------------------------------------------------------------


def hpa_v2_to_v1(hpa: dict[str, Any]) -> dict[str, Any]:
    """autoscaling/v2 -> autoscaling/v1, parking what v1 can't say in annotations."""
    spec = hpa.get("spec") or {}
    status = hpa.get("status") or {}
    meta = copy.deepcopy(hpa.get("metadata") or {})
    metrics = spec.get("metrics") or []
    target_cpu = _MISSING
    for m in metrics:
        if m.get("type") == "Resource" and (m.get("resource") or {}).get("name") == "cpu":
            util = ((m.get("resource") or {}).get("target") or {}).get("averageUtilization")
            if util is not None:
                target_cpu = util
            break
    current_cpu = _MISSING
    for m in status.get("currentMetrics") or []:
        res = m.get("resource") or {}
        if m.get("type") == "Resource" and res.get("name") == "cpu":
            util = (res.get("current") or {}).get("averageUtilization")
            if util is not None:
                current_cpu = util

    annotations = dict(meta.get("annotations") or {})
    others = [_metric_spec_to_v1(m) for m in metrics if not _is_cpu_utilization(m)]
    if others:
        annotations[METRICS_ANNOTATION] = _dumps(others)
    if status.get("currentMetrics"):
        annotations[CURRENT_METRICS_ANNOTATION] = _dumps([_metric_status_to_v1(m) for m in status["currentMetrics"]])
    if status.get("conditions"):
        annotations[CONDITIONS_ANNOTATION] = _dumps(status["conditions"])
    if spec.get("behavior"):
        annotations[BEHAVIOR_ANNOTATION] = _dumps(spec["behavior"])
    if annotations:
        meta["annotations"] = annotations

    return _build([
        ("kind", "HorizontalPodAutoscaler"), ("apiVersion", HPA_V1), ("metadata", meta),
        ("spec", _build([("scaleTargetRef", spec.get("scaleTargetRef") or {}),
                         ("minReplicas", spec.get("minReplicas", _MISSING)),
                         ("maxReplicas", spec.get("maxReplicas", 0)),
                         ("targetCPUUtilizationPercentage", target_cpu)])),
        ("status", _build([("observedGeneration", status.get("observedGeneration", _MISSING)),
                           ("lastScaleTime", status.get("lastScaleTime", _MISSING)),
                           ("currentReplicas", status.get("currentReplicas", 0)),
                           ("desiredReplicas", status.get("desiredReplicas", 0)),
                           ("currentCPUUtilizationPercentage", current_cpu)])),
    ])


def hpa_v1_to_v2(hpa: dict[str, Any]) -> dict[str, Any]:
    """autoscaling/v1 -> autoscaling/v2, restoring metrics/conditions/behavior from annotations."""
    spec = hpa.get("spec") or {}
    status = hpa.get("status") or {}
    meta = copy.deepcopy(hpa.get("metadata") or {})
    annotations = dict(meta.get("annotations") or {})

    metrics: list[dict[str, Any]] = []
    if METRICS_ANNOTATION in annotations:
        metrics = [_metric_spec_to_v2(m) for m in json.loads(annotations.pop(METRICS_ANNOTATION) or "[]")]
    if spec.get("targetCPUUtilizationPercentage") is not None:
        metrics.append({"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization", "averageUtilization": spec["targetCPUUtilizationPercentage"]}}})
    if not metrics:
        # v1 had an implicit 80% CPU target in the controller; v2 states it (conversion.go does the same).
        metrics = [{"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization", "averageUtilization": DEFAULT_CPU_UTILIZATION}}}]
    behavior = _MISSING
    if BEHAVIOR_ANNOTATION in annotations:
        behavior = json.loads(annotations.pop(BEHAVIOR_ANNOTATION) or "null") or _MISSING

    current: Any = _MISSING
    if CURRENT_METRICS_ANNOTATION in annotations:
        current = [_metric_status_to_v2(m) for m in json.loads(annotations.pop(CURRENT_METRICS_ANNOTATION) or "[]")]
    elif status.get("currentCPUUtilizationPercentage") is not None:
        current = [{"type": "Resource", "resource": {"name": "cpu", "current": {
            "averageUtilization": status["currentCPUUtilizationPercentage"]}}}]
    conditions = _MISSING
    if CONDITIONS_ANNOTATION in annotations:
        conditions = json.loads(annotations.pop(CONDITIONS_ANNOTATION) or "[]") or _MISSING
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)

    return _build([
        ("kind", "HorizontalPodAutoscaler"), ("apiVersion", HPA_V2), ("metadata", meta),
        ("spec", _build([("scaleTargetRef", spec.get("scaleTargetRef") or {}),
                         ("minReplicas", spec.get("minReplicas", _MISSING)),
                         ("maxReplicas", spec.get("maxReplicas", 0)),
                         ("metrics", metrics), ("behavior", behavior)])),
        ("status", _build([("observedGeneration", status.get("observedGeneration", _MISSING)),
                           ("lastScaleTime", status.get("lastScaleTime", _MISSING)),
                           ("currentReplicas", status.get("currentReplicas", _MISSING)),
                           ("desiredReplicas", status.get("desiredReplicas", 0)),
                           ("currentMetrics", current), ("conditions", conditions)])),
    ])
