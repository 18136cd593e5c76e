"""A second node joins with `kubeling agent`: it takes pods and runs them; a wrong token is refused;
stopping the agent gets its pods rescheduled to the first node after the configured timeouts.

One `kubeling up` (node_monitor_grace_period=5, pod_eviction_timeout=5) and one agent, kubectl 1.33.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .cluster import Agent, Up, descendants, describe, kill_pids, pids_with_marker, wait_gone
from .conftest import ROOT, Kubectl, make_kubectl
from .simcluster import get_json, pod_ready, wait_until

pytestmark = pytest.mark.e2e

Obj = dict[str, Any]
MAIN = "main-node"
AGENT = "agent-node"
MARKER = f"kle2e-{uuid.uuid4().hex[:12]}"
GRACE = 5
EVICTION = 5


class Env:
    def __init__(self, up: Up, agent: Agent, k: Kubectl, tmp: Path) -> None:
        self.up = up
        self.agent = agent
        self.k = k
        self.tmp = tmp


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("agent")
    second = random.randint(100, 240)
    up = Up(tmp / "main", node_name=MAIN, pod_ip_range=f"127.{second}.0.0/16",
            controller_options=[f"node_monitor_grace_period={GRACE}", f"pod_eviction_timeout={EVICTION}"])
    agent: Agent | None = None
    up.start()
    try:
        agent = Agent(tmp / "agent", server=up.url, token=up.token, node_name=AGENT,
                      pod_ip_range=f"127.{second + 1}.0.0/16")
        yield Env(up, agent, make_kubectl(up, 33, tmp), tmp)  # type: ignore[arg-type]
    finally:
        if agent is not None:
            agent.stop()
            kill_pids(agent.survivors())
        up.stop()
        kill_pids(up.survivors())
        kill_pids(pids_with_marker(MARKER))


def deployment(name: str, replicas: int, **spec: Any) -> Obj:
    code = "import time; time.sleep(3600)"
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"terminationGracePeriodSeconds": 1, **spec, "containers": [{
                                      "name": "main", "image": "host",
                                      "command": ["python3", "-c", code, f"{MARKER}-{name}"],
                                      "env": [{"name": "E2E_MARKER", "value": MARKER}]}]}}}}


def live_pods(k: Kubectl, app: str) -> list[Obj]:
    return [p for p in get_json(k, "pods", "-l", f"app={app}")["items"] if not p["metadata"].get("deletionTimestamp")]


def node_ready(k: Kubectl, name: str) -> str:
    node = get_json(k, "node", name)
    return next((c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready"), "")


def test_wrong_token_is_refused(env: Env) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "kubeling", "agent", "--server", env.up.url, "--token", "not-the-token",
         "--data-dir", str(env.tmp / "refused"), "--node-name", "refused-node", "--kubelet-port", "0", "--pod-network", "host"],
        cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert res.returncode == 1, res
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, f"one clear line expected, got: {res.stderr!r}"
    assert "token" in lines[0] and "refused" in lines[0], lines[0]
    assert "Traceback" not in res.stderr
    assert env.k.run("get", "node", "refused-node", check=False).returncode != 0


def test_agent_joins_and_runs_pods(env: Env) -> None:
    k = env.k
    env.agent.start()
    wait_until("agent node Ready", lambda: node_ready(k, AGENT) == "True", timeout=20)
    node = get_json(k, "node", AGENT)
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == AGENT
    assert node_ready(k, MAIN) == "True"

    # pinned: a nodeSelector for the agent's hostname
    k("apply", "-f", "-", input=json.dumps(deployment(
        "pinned", 2, nodeSelector={"kubernetes.io/hostname": AGENT})))
    # roaming: lands on the agent because the first node is cordoned while it is scheduled
    k("cordon", MAIN)
    try:
        k("apply", "-f", "-", input=json.dumps(deployment("roaming", 2)))
        k("rollout", "status", "deployment/roaming", "--timeout=30s")
    finally:
        k("uncordon", MAIN)
    k("rollout", "status", "deployment/pinned", "--timeout=30s")
    for app in ("pinned", "roaming"):
        pods = live_pods(k, app)
        assert len(pods) == 2
        assert {p["spec"]["nodeName"] for p in pods} == {AGENT}, [(p["metadata"]["name"], p["spec"]["nodeName"])
                                                                  for p in pods]
        assert all(p["status"]["phase"] == "Running" and pod_ready(p) for p in pods)
    # the processes run under the agent, not under `kubeling up`
    under_agent = descendants(env.agent.pid)
    mine = pids_with_marker(f"{MARKER}-pinned") + pids_with_marker(f"{MARKER}-roaming")
    assert len(mine) == 4 and set(mine) <= under_agent, describe(mine)
    assert not set(mine) & descendants(env.up.pid)
    # kubectl reaches the agent's pods too (logs/exec go through the agent's kubelet)
    name = live_pods(k, "roaming")[0]["metadata"]["name"]
    assert k("exec", name, "--", "sh", "-c", "echo $HOSTNAME") == f"{name}\n"


def test_stopping_agent_reschedules_its_pods(env: Env) -> None:
    k = env.k
    env.agent.remember_pod_processes()
    before = {p["metadata"]["name"] for p in live_pods(k, "roaming")}
    stopped = time.monotonic()
    code = env.agent.stop()
    assert code == 0, f"kubeling agent exited {code}:\n{env.agent.log_tail()}"
    assert env.agent.survivors() == [], f"agent pod processes left: {describe(env.agent.survivors())}"
    assert wait_gone(f"{MARKER}-pinned", 2) == []

    wait_until("agent node NotReady/Unknown", lambda: node_ready(k, AGENT) in ("False", "Unknown"),
               timeout=GRACE + 15)

    def moved() -> list[Obj] | None:
        pods = live_pods(k, "roaming")
        ok = [p for p in pods if p["spec"].get("nodeName") == MAIN and p["status"].get("phase") == "Running"
              and pod_ready(p)]
        return pods if len(ok) == 2 and len(pods) == 2 else None

    pods = wait_until("roaming pods rescheduled to the first node", moved, timeout=GRACE + EVICTION + 30)
    took = time.monotonic() - stopped
    assert not {p["metadata"]["name"] for p in pods} & before
    assert took >= GRACE, f"rescheduled after {took:.1f}s, before the grace period"
    running = pids_with_marker(f"{MARKER}-roaming")
    assert len(running) == 2 and set(running) <= descendants(env.up.pid), describe(running)
    # the pinned pods cannot move: they wait for their node
    assert all(p["spec"].get("nodeName") != MAIN for p in live_pods(k, "pinned"))


def test_zz_stop_up_leaves_no_pod_process(env: Env) -> None:
    env.up.remember_pod_processes()
    before = pids_with_marker(MARKER)
    code = env.up.stop()
    assert before, "the rescheduled pods should be running"
    assert code == 0, f"kubeling up exited {code}:\n{env.up.log_tail()}"
    left = wait_gone(MARKER, 1)
    assert left == [], f"pod processes left behind: {describe(left)}"
