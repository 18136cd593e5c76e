"""The pure rules: getPhase, conditions, back-off timing, grace periods, node conditions."""

from __future__ import annotations

import pytest

from kubeling.kubelet.backoff import Backoff
from kubeling.kubelet.containers import go_duration
from kubeling.kubelet.lifecycle import grace_period
from kubeling.kubelet.node import Pressure, node_conditions
from kubeling.kubelet.probes import resolve_port
from kubeling.kubelet.runconfig import ContainerConfigError, check_runnable, pod_hostname
from kubeling.kubelet.status import ContainerRecord, pod_conditions, pod_phase

RUN = {"running": {"startedAt": "t"}}


def term(code: int) -> dict:
    return {"terminated": {"exitCode": code}}


def rec(state: dict, *, init: bool = False, last: dict | None = None, sidecar: bool = False,
        started: bool = True, ready: bool = True) -> ContainerRecord:
    spec = {"name": "c", **({"restartPolicy": "Always"} if sidecar else {})}
    return ContainerRecord(spec, init=init, state=state, last_state=last or {}, started=started, ready=ready)


@pytest.mark.parametrize(("policy", "init", "regular", "phase"), [
    ("Always", [], [rec(RUN)], "Running"),
    ("Always", [], [rec({"waiting": {"reason": "ContainerCreating"}})], "Pending"),
    ("Always", [], [rec(term(1))], "Running"),
    ("Always", [], [rec({"waiting": {"reason": "CrashLoopBackOff"}}, last=term(1))], "Running"),
    ("Never", [], [rec(term(0)), rec(term(0))], "Succeeded"),
    ("Never", [], [rec(term(0)), rec(term(1))], "Failed"),
    ("Never", [], [rec(term(0)), rec(RUN)], "Running"),
    ("OnFailure", [], [rec(term(1))], "Running"),
    ("OnFailure", [], [rec(term(0))], "Succeeded"),
    ("Always", [rec(RUN, init=True)], [rec({})], "Pending"),
    ("Never", [rec(term(1), init=True)], [rec({})], "Failed"),
    ("Always", [rec(term(0), init=True)], [rec(RUN)], "Running"),
    ("Always", [rec(RUN, init=True, sidecar=True, started=False)], [rec({})], "Pending"),
    ("Never", [rec(RUN, init=True, sidecar=True)], [rec(term(0))], "Running"),  # until the sidecar is stopped
], ids=lambda v: v if isinstance(v, str) else None)
def test_get_phase(policy: str, init: list[ContainerRecord], regular: list[ContainerRecord], phase: str) -> None:
    assert pod_phase({"restartPolicy": policy}, init, regular) == phase


def test_conditions_name_what_is_missing() -> None:
    init = [ContainerRecord({"name": "setup"}, init=True, state=RUN)]
    regular = [ContainerRecord({"name": "web"}, state={})]
    conds = {c["type"]: c for c in pod_conditions({}, "Pending", init, regular, sandbox_ready=True)}
    assert conds["Initialized"]["message"] == "containers with incomplete status: [setup]"
    assert conds["Ready"]["message"] == "containers with unready status: [web]"
    assert conds["PodReadyToStartContainers"]["status"] == conds["PodScheduled"]["status"] == "True"


def test_backoff_doubles_caps_and_resets() -> None:
    now = [1000.0]
    b = Backoff(base=10, maximum=300, clock=lambda: now[0])
    assert b.remaining("p/c", now[0]) == 0  # the first crash restarts at once
    delays = [b.next("p/c", now[0])]
    for _ in range(7):
        assert b.remaining("p/c", now[0]) == delays[-1]
        now[0] += delays[-1]
        delays.append(b.next("p/c", now[0]))
    assert delays == [10, 20, 40, 80, 160, 300, 300, 300]
    now[0] += 601  # ran fine for longer than twice the cap: start over
    assert b.remaining("p/c", now[0]) == 0 and b.next("p/c", now[0]) == 10
    b.forget("p/")
    assert b.delay("p/c") == 0


@pytest.mark.parametrize(("seconds", "text"), [(10, "10s"), (80, "1m20s"), (300, "5m0s")])
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_grace_period_sources() -> None:
    container = {"name": "c", "livenessProbe": {"terminationGracePeriodSeconds": 4}}
    assert grace_period({"spec": {}}, container) == 30
    assert grace_period({"spec": {"terminationGracePeriodSeconds": 9}}, container) == 9
    assert grace_period({"spec": {"terminationGracePeriodSeconds": 9}}, container, probe_kind="Liveness") == 4
    deleting = {"metadata": {"deletionTimestamp": "t", "deletionGracePeriodSeconds": 2}, "spec": {}}
    assert grace_period(deleting, container) == 2


def test_named_ports_and_hostnames() -> None:
    c = {"name": "web", "ports": [{"name": "http", "containerPort": 8080}]}
    assert resolve_port("http", c) == 8080 and resolve_port(81, c) == 81
    with pytest.raises(ValueError):
        resolve_port("grpc", c)
    assert pod_hostname({"metadata": {"name": "p" * 70}, "spec": {}}) == "p" * 63
    assert pod_hostname({"metadata": {"name": "x"}, "spec": {"hostname": "db-0"}}) == "db-0"
    with pytest.raises(ContainerConfigError) as info:
        check_runnable({"name": "web", "image": "nginx"})
    assert info.value.reason == "CreateContainerError" and not info.value.retry


def test_node_conditions_keep_transition_times() -> None:
    first = node_conditions(Pressure(), True, [], "2026-01-01T00:00:00Z")
    second = node_conditions(Pressure(memory=True), True, first, "2026-01-01T00:01:00Z")
    by_type = {c["type"]: c for c in second}
    assert by_type["Ready"]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert by_type["MemoryPressure"]["lastTransitionTime"] == "2026-01-01T00:01:00Z"
    assert by_type["MemoryPressure"]["reason"] == "KubeletHasInsufficientMemory"
    assert all(c["lastHeartbeatTime"] == "2026-01-01T00:01:00Z" for c in second)
