"""Pod lifecycle through the kubelet: start, status shape, restarts, CrashLoopBackOff, policies, init containers."""

from __future__ import annotations

import asyncio

import pytest

from kubeling.client import resources as r
from tests.unit.kubelet.harness import (  # noqa: F401 (fixture)
    Harness,
    cluster,
    condition,
    container,
    cstatus,
    eventually,
)


def running(pod: dict) -> bool:
    return pod["status"].get("phase") == "Running" and condition(pod, "Ready") == "True"


async def test_pod_runs_and_reports_kubernetes_status(cluster: Harness) -> None:  # noqa: F811
    env = [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
    await cluster.create_pod("web", [container("web", "/bin/serve", "--bind=$(POD_IP)", env=env)])
    pod = await cluster.wait_pod("web", running)
    status = pod["status"]
    assert status["hostIP"] == "127.0.0.1" and status["hostIPs"] == [{"ip": "127.0.0.1"}]
    assert status["podIP"].startswith("127.") and status["podIPs"] == [{"ip": status["podIP"]}]
    assert status["startTime"] and status["qosClass"] == "BestEffort"
    types = [c["type"] for c in status["conditions"]]
    assert types == ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
    assert all(c["status"] == "True" for c in status["conditions"])
    cs = cstatus(pod, "web")
    assert cs["ready"] and cs["started"] and cs["restartCount"] == 0 and cs["image"] == "busybox"
    assert cs["containerID"].startswith("fake://") and "running" in cs["state"] and cs["lastState"] == {}
    reasons = [e["reason"] for e in await cluster.events("web")]
    assert {"Pulled", "Created", "Started"} <= set(reasons)
    created = next(e for e in await cluster.events("web") if e["reason"] == "Created")
    assert created["message"] == "Created container: web" and created["source"]["component"] == "kubelet"
    (started,) = cluster.runtime.running("web")
    assert started.config.command == ["/bin/serve", f"--bind={status['podIP']}"]
    assert ("POD_IP", status["podIP"]) in started.config.env
    sandbox = cluster.runtime.sandboxes[started.sandbox_id]
    assert sandbox.hostname == "web" and sandbox.pod_ip == status["podIP"]
    assert sandbox.dns_searches[0] == "default.svc.cluster.local"


async def test_restart_with_growing_crashloop_backoff(cluster: Harness) -> None:  # noqa: F811
    await cluster.create_pod("crash", [container("app")])
    await cluster.wait_pod("crash", running)
    for _ in range(4):
        await eventually(lambda: cluster.runtime.running("app"))
        cluster.runtime.exit("app", 1)
        await eventually(lambda: not cluster.runtime.running("app") or True)
        await asyncio.sleep(0.05)
    await eventually(lambda: len(cluster.runtime.starts_of("app")) >= 5, within=6)
    starts = cluster.runtime.starts_of("app")
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    # First restart at once, then 0.2 s, 0.4 s, 0.8 s (the fast back-off of the harness).
    assert gaps[0] < 0.2 and gaps[1] >= 0.15 and gaps[2] >= 0.35 and gaps[3] >= 0.7
    pod = await cluster.wait_pod("crash", lambda p: cstatus(p, "app")["restartCount"] == 4)
    assert cstatus(pod, "app")["lastState"]["terminated"]["exitCode"] == 1
    cluster.runtime.exit("app", 2)
    pod = await cluster.wait_pod(
        "crash", lambda p: cstatus(p, "app")["state"].get("waiting", {}).get("reason") == "CrashLoopBackOff")
    cs = cstatus(pod, "app")
    assert "back-off" in cs["state"]["waiting"]["message"] and cs["lastState"]["terminated"]["reason"] == "Error"
    assert pod["status"]["phase"] == "Running" and condition(pod, "Ready") == "False"
    backoff = await cluster.wait_event("crash", "BackOff")
    assert backoff["message"].startswith("Back-off restarting failed container app in pod crash_default(")


@pytest.mark.parametrize(("policy", "codes", "phase", "restarts"), [
    ("Never", [0], "Succeeded", 0),
    ("Never", [3], "Failed", 0),
    ("OnFailure", [1, 0], "Succeeded", 1),
    ("Always", [0], "Running", 1),
], ids=["never-ok", "never-fail", "onfailure-retry", "always-restarts-success"])
async def test_restart_policy(cluster: Harness, policy: str, codes: list[int], phase: str,  # noqa: F811
                              restarts: int) -> None:
    await cluster.create_pod("job", [container("task")], restartPolicy=policy)
    for code in codes:
        await eventually(lambda: cluster.runtime.running("task"))
        cluster.runtime.exit("task", code)
        await asyncio.sleep(0.05)
    pod = await cluster.wait_pod("job", lambda p: p["status"].get("phase") == phase
                                 and cstatus(p, "task")["restartCount"] == restarts)
    if phase == "Succeeded":
        term = cstatus(pod, "task")["state"]["terminated"]
        assert term["exitCode"] == 0 and term["reason"] == "Completed"
        assert condition(pod, "Ready") == "False"
        ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
        assert ready["reason"] == "PodCompleted"


async def test_init_containers_run_in_order(cluster: Harness) -> None:  # noqa: F811
    await cluster.create_pod("init", [container("app")],
                             initContainers=[container("first"), container("second")])
    await eventually(lambda: cluster.runtime.running("first"))
    pod = await cluster.wait_pod("init", lambda p: "initContainerStatuses" in p["status"])
    assert pod["status"]["phase"] == "Pending" and condition(pod, "Initialized") == "False"
    assert cstatus(pod, "app")["state"]["waiting"]["reason"] == "PodInitializing"
    assert not cluster.runtime.running("second")
    cluster.runtime.exit("first", 1)  # a failed init container is retried (restartPolicy Always)
    pod = await cluster.wait_pod("init", lambda p: cstatus(p, "first", "initContainerStatuses")["restartCount"])
    await eventually(lambda: cluster.runtime.running("first"), within=3)
    cluster.runtime.exit("first", 0)
    await eventually(lambda: cluster.runtime.running("second"))
    assert not cluster.runtime.running("app")
    cluster.runtime.exit("second", 0)
    pod = await cluster.wait_pod("init", running)
    order = [n for _, n, _ in cluster.runtime.started]
    assert order == ["first", "first", "second", "app"]
    first = cstatus(pod, "first", "initContainerStatuses")
    assert first["state"]["terminated"]["reason"] == "Completed" and first["ready"]
    assert condition(pod, "Initialized") == "True"


async def test_failed_init_container_fails_a_never_pod(cluster: Harness) -> None:  # noqa: F811
    await cluster.create_pod("init-never", [container("app")], initContainers=[container("setup")],
                             restartPolicy="Never")
    await eventually(lambda: cluster.runtime.running("setup"))
    cluster.runtime.exit("setup", 2)
    pod = await cluster.wait_pod("init-never", lambda p: p["status"].get("phase") == "Failed")
    assert cstatus(pod, "setup", "initContainerStatuses")["state"]["terminated"]["reason"] == "Error"
    assert not cluster.runtime.running("app") and "app" not in [n for _, n, _ in cluster.runtime.started]


async def test_sidecar_keeps_running_and_gates_next_init(cluster: Harness) -> None:  # noqa: F811
    cluster.runtime.exec_handler = lambda c, cmd: (0 if cmd == ["started"] else 1, b"")
    sidecar = container("proxy", restartPolicy="Always",
                        startupProbe={"exec": {"command": ["started"]}, "periodSeconds": 1})
    await cluster.create_pod("side", [container("app")], initContainers=[sidecar, container("migrate")])
    await eventually(lambda: cluster.runtime.running("migrate"))
    cluster.runtime.exit("migrate", 0)
    pod = await cluster.wait_pod("side", running)
    assert cstatus(pod, "proxy", "initContainerStatuses")["started"] is True
    assert len(cluster.runtime.running("proxy")) == 1


async def test_container_without_command_is_a_clear_error(cluster: Harness) -> None:  # noqa: F811
    await cluster.create_pod("nocmd", [{"name": "web", "image": "nginx"}])
    failed = await cluster.wait_event("nocmd", "Failed")
    assert "container web has no command: the process runtime runs host binaries only; set command" \
        in failed["message"] and failed["type"] == "Warning"
    pod = await cluster.wait_pod("nocmd", lambda p: "waiting" in cstatus(p, "web")["state"]
                                 and cstatus(p, "web")["state"]["waiting"]["reason"] == "CreateContainerError")
    assert pod["status"]["phase"] == "Pending" and cstatus(pod, "web")["restartCount"] == 0
    assert "has no command" in cstatus(pod, "web")["state"]["waiting"]["message"]
    assert not cluster.runtime.containers


async def test_args_alone_are_the_argv(cluster: Harness) -> None:  # noqa: F811
    # `kubectl run x --image=busybox -- sleep 60` sends args without command: like an image
    # without an ENTRYPOINT, the args are what runs.
    await cluster.create_pod("argsonly", [{"name": "web", "image": "busybox", "args": ["sleep", "60"]}])
    pod = await cluster.wait_pod("argsonly", running)
    assert cstatus(pod, "web")["restartCount"] == 0
    assert cluster.runtime.running("web")


async def test_image_change_restarts_the_container(cluster: Harness) -> None:  # noqa: F811
    await cluster.create_pod("upd", [container("app")], restartPolicy="Never")
    await cluster.wait_pod("upd", running)
    await cluster.client.patch(r.PODS, "upd", {"spec": {"containers": [{"name": "app", "image": "busybox:2"}]}},
                               namespace="default", patch_type="strategic")
    killing = await cluster.wait_event("upd", "Killing")
    assert killing["message"] == "Container app definition changed, will be restarted"
    pod = await cluster.wait_pod("upd", lambda p: cstatus(p, "app")["restartCount"] == 1 and running(p))
    assert cstatus(pod, "app")["image"] == "busybox:2"
    assert [c.config.image for c in cluster.runtime.running("app")] == ["busybox:2"]
