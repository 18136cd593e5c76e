"""The kubelet on the real process runtime: a real process runs, restarts when killed, and none outlives
the kubelet's shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from kubeling.runtime.process import ProcessRuntime
from tests.unit.kubelet.harness import Harness, cluster, condition, cstatus  # noqa: F401 (fixture)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_real_process_restarts_and_is_stopped_on_shutdown(cluster: Harness) -> None:  # noqa: F811
    await cluster.stop_kubelet()
    runtime = ProcessRuntime(str(cluster.root / "runtime"))
    await cluster.start_kubelet(runtime)  # type: ignore[arg-type]
    server = [sys.executable, "-m", "http.server", "8080", "--bind", "$(POD_IP)"]
    env = [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}]
    probe = {"httpGet": {"port": "http"}, "periodSeconds": 1}
    await cluster.create_pod("web", [{"name": "web", "image": "python", "command": server, "env": env,
                                      "ports": [{"name": "http", "containerPort": 8080}],
                                      "readinessProbe": probe}])
    await cluster.wait_pod("web", lambda p: condition(p, "Ready") == "True", within=10)
    (first,) = [c.pid for c in await runtime.list_containers() if c.state == "running"]
    os.kill(first, signal.SIGKILL)
    await cluster.wait_pod("web", lambda p: cstatus(p, "web")["restartCount"] == 1
                           and condition(p, "Ready") == "True", within=10)
    pod = await cluster.pod("web")
    assert pod is not None and cstatus(pod, "web")["lastState"]["terminated"]["exitCode"] == 137
    pids = [c.pid for c in await runtime.list_containers() if c.state == "running"]
    assert pids and all(alive(p) for p in pids)
    await cluster.stop_kubelet()
    await asyncio.sleep(0.1)
    assert not any(alive(p) for p in pids), "a pod process outlived the kubelet"
