"""Probes through the kubelet: readiness gates Ready, liveness failures restart the container."""

from __future__ import annotations

import asyncio

from tests.unit.kubelet.harness import Harness, cluster, condition, container, cstatus  # noqa: F401 (fixture)


async def test_readiness_failure_makes_the_pod_unready(cluster: Harness) -> None:  # noqa: F811
    healthy = {"ok": True}
    cluster.runtime.exec_handler = lambda c, cmd: (0, b"") if healthy["ok"] else (1, b"not ready yet")
    probe = {"exec": {"command": ["check"]}, "periodSeconds": 1, "failureThreshold": 2}
    await cluster.create_pod("ready", [container("web", readinessProbe=probe)])
    pod = await cluster.wait_pod("ready", lambda p: condition(p, "Ready") == "True")
    assert cstatus(pod, "web")["ready"] is True
    healthy["ok"] = False
    pod = await cluster.wait_pod("ready", lambda p: condition(p, "Ready") == "False")
    assert condition(pod, "ContainersReady") == "False" and pod["status"]["phase"] == "Running"
    ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["reason"], ready["message"]) == ("ContainersNotReady", "containers with unready status: [web]")
    assert cstatus(pod, "web")["restartCount"] == 0
    unhealthy = await cluster.wait_event("ready", "Unhealthy")
    assert unhealthy["message"] == "Readiness probe failed: not ready yet"
    healthy["ok"] = True
    await cluster.wait_pod("ready", lambda p: condition(p, "Ready") == "True")


async def test_liveness_failure_restarts_the_container(cluster: Harness) -> None:  # noqa: F811
    alive = {"ok": True}
    cluster.runtime.exec_handler = lambda c, cmd: (0, b"") if alive["ok"] else (1, b"dead")
    probe = {"exec": {"command": ["alive"]}, "periodSeconds": 1, "failureThreshold": 1,
             "terminationGracePeriodSeconds": 3}
    await cluster.create_pod("live", [container("web", livenessProbe=probe)], terminationGracePeriodSeconds=20)
    await cluster.wait_pod("live", lambda p: condition(p, "Ready") == "True")
    alive["ok"] = False
    killing = await cluster.wait_event("live", "Killing")
    assert killing["message"] == "Container web failed liveness probe, will be restarted"
    assert (await cluster.wait_event("live", "Unhealthy"))["message"] == "Liveness probe failed: dead"
    alive["ok"] = True
    pod = await cluster.wait_pod("live", lambda p: cstatus(p, "web")["restartCount"] >= 1
                                 and condition(p, "Ready") == "True")
    assert cstatus(pod, "web")["lastState"]["terminated"]["exitCode"] == 143
    # The probe's own terminationGracePeriodSeconds wins over the pod's.
    assert ("web", 3.0) in [(n, t) for n, _, t in cluster.runtime.stops]


async def test_startup_probe_holds_liveness_and_readiness(cluster: Harness) -> None:  # noqa: F811
    calls: list[str] = []

    def handler(c: object, cmd: list[str]) -> tuple[int, bytes]:
        calls.append(cmd[0])
        return (0 if cmd[0] != "startup" or calls.count("startup") >= 3 else 1), b""
    cluster.runtime.exec_handler = handler
    await cluster.create_pod("slow", [container(
        "web", startupProbe={"exec": {"command": ["startup"]}, "periodSeconds": 1, "failureThreshold": 10},
        livenessProbe={"exec": {"command": ["live"]}, "periodSeconds": 1})])
    pod = await cluster.wait_pod("slow", lambda p: cstatus(p, "web").get("started") is True)
    assert cstatus(pod, "web")["ready"] is True
    await asyncio.sleep(0.2)
    assert calls.index("live") > 2 and calls[:3] == ["startup"] * 3


async def test_failed_post_start_hook_kills_and_restarts(cluster: Harness) -> None:  # noqa: F811
    attempts: list[int] = []

    def handler(c: object, cmd: list[str]) -> tuple[int, bytes]:
        attempts.append(1)
        return (1, b"hook broke") if len(attempts) == 1 else (0, b"")
    cluster.runtime.exec_handler = handler
    hook = {"postStart": {"exec": {"command": ["setup"]}}}
    await cluster.create_pod("hooked", [container("web", lifecycle=hook)])
    failed = await cluster.wait_event("hooked", "FailedPostStartHook")
    assert failed["type"] == "Warning" and "hook broke" in failed["message"]
    assert failed["message"].startswith("Exec lifecycle hook ([setup]) for Container \"web\" in Pod \"hooked_default(")
    pod = await cluster.wait_pod("hooked", lambda p: cstatus(p, "web")["restartCount"] == 1
                                 and condition(p, "Ready") == "True")
    assert len(cluster.runtime.running("web")) == 1 and pod["status"]["phase"] == "Running"


async def test_node_server_lookup(cluster: Harness) -> None:  # noqa: F811
    await cluster.create_pod("logs", [container("web")])
    await cluster.wait_pod("logs", lambda p: condition(p, "Ready") == "True")
    kubelet = cluster.kubelet
    assert kubelet is not None
    cid, sandbox, path, running, waiting = kubelet.find_container("default", "logs", "web") or ("",) * 5
    assert cid and sandbox and running and waiting == "" and path.endswith("/web/0.log")
    assert kubelet.previous_log_path("default", "logs", "web") is None
    cluster.runtime.exit("web", 1)
    await cluster.wait_pod("logs", lambda p: cstatus(p, "web")["restartCount"] == 1)
    assert (kubelet.previous_log_path("default", "logs", "web") or "").endswith("/web/0.log")
    assert kubelet.find_container("default", "nope", "web") is None
    (target,) = kubelet.list_pod_stats_targets()
    assert target.name == "logs" and [c.name for c in target.containers] == ["web"]
