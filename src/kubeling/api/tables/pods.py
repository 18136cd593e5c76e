"""The pod table: printers.go `printPod`, the most scrutinised output of `kubectl get`.

The STATUS cell is not a stored field but a summary kubectl users read as the pod's
state ("Init:0/1", "CrashLoopBackOff", "Completed", "Terminating"...). It is computed
in the same order as Kubernetes: phase, then pod reason, then the first unfinished init
container, then the container statuses from last to first (so the first container's
reason wins), then deletion. RESTARTS gains "(5m ago)" from the latest termination.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kubeling.api.tables.descriptions import doc
from kubeling.api.tables.format import (
    NONE,
    Printer,
    age,
    age_column,
    column,
    get,
    name,
    name_column,
    parse_time,
    since,
)

COLUMNS = (
    name_column(),
    column("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
    column("Status", "string", "The aggregate status of the containers in this pod."),
    column("Restarts", "string", "The number of times the containers in this pod have been restarted and when "
                                 "the last container in this pod has restarted."),
    age_column(),
    column("IP", "string", doc("PodStatus.podIP"), priority=1),
    column("Node", "string", doc("PodSpec.nodeName"), priority=1),
    column("Nominated Node", "string", doc("PodStatus.nominatedNodeName"), priority=1),
    column("Readiness Gates", "string", doc("PodSpec.readinessGates"), priority=1),
)

NODE_UNREACHABLE_REASON = "NodeLost"


def _later(current: datetime | None, candidate: Any) -> datetime | None:
    t = parse_time(candidate)
    if t is not None and (current is None or current < t):
        return t
    return current


def _last_finished(status: dict[str, Any]) -> Any:
    return get(status, "lastState", "terminated", "finishedAt")


def _condition_status(conditions: list[dict[str, Any]], cond_type: str) -> str | None:
    for cond in conditions:
        if cond.get("type") == cond_type:
            return cond.get("status")
    return None


def pod_status(pod: dict[str, Any]) -> tuple[str, int, int, int, datetime | None]:
    """(STATUS reason, ready containers, total containers, restarts, last restart time)."""
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    conditions = status.get("conditions") or []
    init_specs = {c.get("name"): c for c in spec.get("initContainers") or []}

    def restartable(container_name: str | None) -> bool:
        # A sidecar: an init container with restartPolicy Always keeps running beside the app.
        return (init_specs.get(container_name) or {}).get("restartPolicy") == "Always"

    restarts = 0
    sidecar_restarts = 0
    total = len(spec.get("containers") or []) + sum(1 for n in init_specs if restartable(n))
    ready = 0
    last_restart: datetime | None = None
    last_sidecar_restart: datetime | None = None

    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    for cond in conditions:
        if cond.get("type") == "PodScheduled" and cond.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    initializing = False
    init_statuses = status.get("initContainerStatuses") or []
    for i, cs in enumerate(init_statuses):
        restarts += int(cs.get("restartCount") or 0)
        last_restart = _later(last_restart, _last_finished(cs))
        if restartable(cs.get("name")):
            sidecar_restarts += int(cs.get("restartCount") or 0)
            last_sidecar_restart = _later(last_sidecar_restart, _last_finished(cs))
        state = cs.get("state") or {}
        terminated = state.get("terminated")
        waiting = state.get("waiting")
        if terminated is not None and int(terminated.get("exitCode") or 0) == 0:
            continue
        if restartable(cs.get("name")) and cs.get("started"):
            if cs.get("ready"):
                ready += 1
            continue
        if terminated is not None:
            if not terminated.get("reason"):
                if terminated.get("signal"):
                    reason = f"Init:Signal:{terminated['signal']}"
                else:
                    reason = f"Init:ExitCode:{terminated.get('exitCode') or 0}"
            else:
                reason = "Init:" + terminated["reason"]
        elif waiting is not None and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{len(spec.get('initContainers') or [])}"
        initializing = True
        break

    if not initializing or _condition_status(conditions, "Initialized") == "True":
        restarts = sidecar_restarts
        last_restart = last_sidecar_restart
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += int(cs.get("restartCount") or 0)
            last_restart = _later(last_restart, _last_finished(cs))
            state = cs.get("state") or {}
            waiting, terminated = state.get("waiting"), state.get("terminated")
            if waiting is not None and waiting.get("reason"):
                reason = waiting["reason"]
            elif terminated is not None and terminated.get("reason"):
                reason = terminated["reason"]
            elif terminated is not None:
                if terminated.get("signal"):
                    reason = f"Signal:{terminated['signal']}"
                else:
                    reason = f"ExitCode:{terminated.get('exitCode') or 0}"
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        # A "Completed" container beside one still running means the pod itself still runs.
        if reason == "Completed" and has_running:
            reason = "Running" if _condition_status(conditions, "Ready") == "True" else "NotReady"

    deleting = (pod.get("metadata") or {}).get("deletionTimestamp") is not None
    if deleting and status.get("reason") == NODE_UNREACHABLE_REASON:
        reason = "Unknown"
    elif deleting and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"
    return reason, ready, total, restarts, last_restart


def _readiness_gates(pod: dict[str, Any]) -> str:
    gates = get(pod, "spec", "readinessGates", default=[]) or []
    if not gates:
        return NONE
    conditions = get(pod, "status", "conditions", default=[]) or []
    true_count = sum(1 for g in gates if _condition_status(conditions, g.get("conditionType")) == "True")
    return f"{true_count}/{len(gates)}"


def pod_row(pod: dict[str, Any], now: datetime) -> list[Any]:
    reason, ready, total, restarts, last_restart = pod_status(pod)
    restarts_cell = str(restarts)
    if restarts != 0 and last_restart is not None:
        restarts_cell = f"{restarts} ({since(last_restart.isoformat(), now)} ago)"
    ips = get(pod, "status", "podIPs", default=[]) or []
    # Kubernetes reads podIPs[0]; podIP is the same value and covers objects written without podIPs.
    pod_ip = ((ips[0] or {}).get("ip") if ips else "") or get(pod, "status", "podIP")
    return [
        name(pod), f"{ready}/{total}", reason, restarts_cell, age(pod, now),
        pod_ip or NONE,
        get(pod, "spec", "nodeName") or NONE,
        get(pod, "status", "nominatedNodeName") or NONE,
        _readiness_gates(pod),
    ]


PRINTERS = {"pods": Printer(COLUMNS, pod_row)}
