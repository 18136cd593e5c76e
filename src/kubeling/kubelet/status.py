"""Pod status as the kubelet reports it: phase, conditions and container statuses.

Kept pure (no I/O) so each rule can be tested on its own and so the pod worker
can compute a status, compare it with the last one written and skip the API
call when nothing changed (Kubernetes' status manager does the same). The rules
follow pkg/kubelet/kubelet_pods.go (`getPhase`, `convertToAPIContainerStatuses`)
and pkg/kubelet/status/generate.go (the Initialized / ContainersReady / Ready
condition generators), including their reasons and messages, because `kubectl
get pods` derives its STATUS column (`Init:1/2`, `Init:CrashLoopBackOff`,
`PodInitializing`, `Completed`) from exactly these fields.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

# Waiting reasons (pkg/kubelet/container and kuberuntime).
CONTAINER_CREATING = "ContainerCreating"
POD_INITIALIZING = "PodInitializing"
CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"
CREATE_CONTAINER_ERROR = "CreateContainerError"
CREATE_CONTAINER_CONFIG_ERROR = "CreateContainerConfigError"


def timestamp(epoch: float | None = None) -> str:
    """metav1.Time: RFC 3339 at second precision, UTC."""
    when = dt.datetime.now(dt.UTC) if epoch is None else dt.datetime.fromtimestamp(epoch, dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def is_sidecar(container: Obj) -> bool:
    """A restartable init container (restartPolicy Always): started in order, then kept running."""
    return container.get("restartPolicy") == "Always"


@dataclass
class ContainerRecord:
    """What the pod worker knows about one container of a pod (the current instance and the last one)."""

    spec: Obj
    init: bool = False
    id: str = ""  # runtime id of the current instance ("" before the first create)
    previous_id: str = ""  # the last dead instance, kept for `kubectl logs --previous`
    restart_count: int = 0
    state: Obj = field(default_factory=dict)  # {"waiting": …} | {"running": …} | {"terminated": …}
    last_state: Obj = field(default_factory=dict)
    ready: bool = False
    started: bool = False
    finished_at: float = 0.0  # epoch seconds of the last exit, the back-off's reference time
    exit_code: int | None = None  # of the current instance once it exited
    create_failed: bool = False  # a config error no retry can fix (no command): stays waiting

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def sidecar(self) -> bool:
        return self.init and is_sidecar(self.spec)

    @property
    def running(self) -> bool:
        return "running" in self.state

    @property
    def terminated(self) -> bool:
        return "terminated" in self.state

    @property
    def succeeded(self) -> bool:
        return self.terminated and self.state["terminated"].get("exitCode") == 0


def container_status(record: ContainerRecord, *, runtime_name: str, default_reason: str = CONTAINER_CREATING) -> Obj:
    """One entry of containerStatuses / initContainerStatuses."""
    status: Obj = {
        "name": record.name,
        "state": record.state or {"waiting": {"reason": default_reason}},
        "lastState": record.last_state,
        "ready": record.ready,
        "restartCount": record.restart_count,
        "image": record.spec.get("image", ""),
        # The process runtime has no image store, so there is no digest to report.
        "imageID": "",
        "started": record.started,
    }
    if record.id:
        status["containerID"] = f"{runtime_name}://{record.id}"
    return status


def pod_phase(spec: Obj, init: list[ContainerRecord], regular: list[ContainerRecord], *,
              terminal: bool = False) -> str:
    """Kubernetes' getPhase over the container records (kubelet_pods.go)."""
    policy = spec.get("restartPolicy", "Always")
    pending_init = failed_init = pending_sidecars = 0
    for rec in init:
        if rec.sidecar:
            continue
        if rec.running:
            pending_init += 1
        elif rec.terminated:
            failed_init += rec.state["terminated"].get("exitCode") != 0
        elif "terminated" in rec.last_state:
            failed_init += rec.last_state["terminated"].get("exitCode") != 0
        else:
            pending_init += 1
    unknown = running = waiting = stopped = succeeded = 0
    for rec in init:
        if not rec.sidecar:
            continue
        if rec.running:
            pending_sidecars += not rec.started
            running += 1
        elif not rec.terminated and "terminated" not in rec.last_state:
            pending_sidecars += 1
            waiting += 1
    for rec in regular:
        if rec.running:
            running += 1
        elif rec.terminated:
            stopped += 1
            succeeded += rec.succeeded
        elif "terminated" in rec.last_state:
            stopped += 1
        elif rec.state:
            waiting += 1
        else:
            unknown += 1
    if failed_init and policy == "Never":
        return "Failed"
    if terminal:
        # The pod was stopped for good (deleted, or every container finished): report the outcome.
        return "Succeeded" if stopped and stopped == succeeded and not running else "Failed"
    if pending_init or (pending_sidecars and not terminal) or waiting:
        return "Pending"
    if running and not unknown:
        return "Running"
    if not running and stopped and not unknown:
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


def _condition(type_: str, ok: bool, reason: str = "", message: str = "") -> Obj:
    cond: Obj = {"type": type_, "status": "True" if ok else "False", "lastProbeTime": None}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def pod_conditions(spec: Obj, phase: str, init: list[ContainerRecord], regular: list[ContainerRecord], *,
                   sandbox_ready: bool) -> list[Obj]:
    """PodReadyToStartContainers, Initialized, Ready, ContainersReady (status/generate.go)."""
    completed = phase == "Succeeded"
    incomplete = [r.name for r in init
                  if (not r.sidecar and not r.succeeded) or (r.sidecar and not r.started)]
    if completed or not incomplete:
        initialized = _condition("Initialized", True, "PodCompleted" if completed and init else "")
    else:
        initialized = _condition("Initialized", False, "ContainersNotInitialized",
                                 f"containers with incomplete status: [{' '.join(incomplete)}]")
    unready = [r.name for r in [*(r for r in init if r.sidecar), *regular] if not r.ready]
    if completed:
        ready = _condition("ContainersReady", False, "PodCompleted")
    elif unready:
        ready = _condition("ContainersReady", False, "ContainersNotReady",
                           f"containers with unready status: [{' '.join(unready)}]")
    else:
        ready = _condition("ContainersReady", True)
    gates = [g.get("conditionType") for g in spec.get("readinessGates") or []]
    pod_ready = {**ready, "type": "Ready"}
    if ready["status"] == "True" and gates:
        # Readiness gates are set by other controllers; until they are, the pod is not Ready.
        pod_ready = _condition("Ready", False, "ReadinessGatesNotReady",
                               f"corresponding condition of pod readiness gate {gates[0]!r} does not exist.")
    # When the kubelet sees a pod it is scheduled, whoever bound it (generateAPIPodStatus does the same).
    scheduled = _condition("PodScheduled", True)
    return [_condition("PodReadyToStartContainers", sandbox_ready), initialized, pod_ready, ready, scheduled]


def merge_conditions(old: list[Obj], new: list[Obj], now: str) -> list[Obj]:
    """The new conditions, keeping each one's lastTransitionTime while its status is unchanged.

    Conditions set by others (PodScheduled, DisruptionTarget, readiness gates) are kept as they are.
    """
    previous = {c.get("type"): c for c in old}
    result: list[Obj] = []
    for cond in new:
        before = previous.pop(cond["type"], None)
        same = before is not None and before.get("status") == cond["status"]
        result.append({**cond, "lastTransitionTime": before.get("lastTransitionTime") if same and before
                       else now})
    result.extend(previous.values())
    order = {"PodReadyToStartContainers": 0, "Initialized": 1, "Ready": 2, "ContainersReady": 3,
             "PodScheduled": 4}
    return sorted(result, key=lambda c: order.get(c.get("type", ""), 5))


def build_status(pod: Obj, *, init: list[ContainerRecord], regular: list[ContainerRecord], runtime_name: str,
                 pod_ip: str, host_ip: str, start_time: str, sandbox_ready: bool, terminal: bool = False,
                 phase_override: str | None = None) -> Obj:
    """The full pod status: fields the kubelet owns recomputed, everything else kept from the API."""
    spec = pod.get("spec") or {}
    old = pod.get("status") or {}
    phase = phase_override or pod_phase(spec, init, regular, terminal=terminal)
    if old.get("phase") in ("Succeeded", "Failed"):
        phase = old["phase"]  # a pod never leaves a terminal phase
    status = {k: v for k, v in old.items() if k not in ("containerStatuses", "initContainerStatuses")}
    status["phase"] = phase
    status["conditions"] = merge_conditions(list(old.get("conditions") or []),
                                            pod_conditions(spec, phase, init, regular,
                                                           sandbox_ready=sandbox_ready),
                                            timestamp())
    if host_ip:
        status["hostIP"] = host_ip
        status["hostIPs"] = [{"ip": host_ip}]
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    if start_time:
        status["startTime"] = start_time
    # Not-yet-created containers wait for "PodInitializing" in a pod with init containers (kubelet_pods.go).
    default = POD_INITIALIZING if init else CONTAINER_CREATING
    if init:
        status["initContainerStatuses"] = [container_status(r, runtime_name=runtime_name, default_reason=default)
                                           for r in init]
    status["containerStatuses"] = [container_status(r, runtime_name=runtime_name, default_reason=default)
                                   for r in regular]
    return status


def waiting_state(reason: str, message: str = "") -> Obj:
    """A `{"waiting": …}` container state."""
    return {"waiting": {"reason": reason, **({"message": message} if message else {})}}


def terminated_state(*, exit_code: int, reason: str, started_at: float, finished_at: float,
                     container_id: str, message: str = "", signal: int = 0) -> Obj:
    """A `{"terminated": …}` container state; reason Completed/Error unless the runtime knows better."""
    term: Obj = {"exitCode": exit_code,
                 "reason": reason or ("Completed" if exit_code == 0 else "Error"),
                 "startedAt": timestamp(started_at) if started_at else None,
                 "finishedAt": timestamp(finished_at),
                 "containerID": container_id}
    if message:
        term["message"] = message
    if signal:
        term["signal"] = signal
    return {"terminated": term}


def restore_records(records: list[ContainerRecord], api_status: Obj) -> None:
    """Carry restart counts over from the API after a kubelet restart (the old containers are gone).

    A container that had run gets a new instance, so its count goes up by one and its lastState says
    how the old one ended (or "Unknown", exit 255, when the old kubelet never saw it end).
    """
    previous = {s.get("name"): s for key in ("initContainerStatuses", "containerStatuses")
                for s in api_status.get(key) or []}
    now = time.time()
    for rec in records:
        old = previous.get(rec.name)
        if not old:
            continue
        state = old.get("state") or {}
        rec.restart_count = int(old.get("restartCount") or 0)
        if "running" in state or "terminated" in state:
            rec.restart_count += 1
            rec.last_state = {"terminated": state["terminated"]} if "terminated" in state else \
                terminated_state(exit_code=255, reason="Unknown", started_at=0, finished_at=now,
                                 container_id=old.get("containerID", ""))
        elif old.get("lastState"):
            rec.last_state = old["lastState"]
