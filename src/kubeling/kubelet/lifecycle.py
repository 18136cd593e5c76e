"""Container lifecycle hooks and termination (kuberuntime_container.go).

postStart runs right after a container starts; if it fails the container is
killed (event FailedPostStartHook) and restarted per the pod's restartPolicy.
preStop runs before the SIGTERM and counts against the grace period. The grace
period a container gets follows Kubernetes exactly, because users tune it:

- a pod being deleted: its `deletionGracePeriodSeconds`;
- otherwise `spec.terminationGracePeriodSeconds` (default 30 s);
- a container killed for a failed liveness/startup probe: the probe's own
  `terminationGracePeriodSeconds` when set;
- after preStop, at least 2 s remain so the process still gets its SIGTERM;
- an explicit override (force deletion, kubelet shutdown) wins over all.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from kubeling.kubelet.probes import run_action
from kubeling.runtime.interface import Runtime

Obj = dict[str, Any]
log = logging.getLogger(__name__)

MINIMUM_GRACE_PERIOD = 2.0  # minimumGracePeriodInSeconds
DEFAULT_GRACE_PERIOD = 30


def pod_ref(pod: Obj) -> str:
    """`name_namespace(uid)`, the way kubelet messages name a pod (format.Pod)."""
    meta = pod.get("metadata") or {}
    return f"{meta.get('name', '')}_{meta.get('namespace', '')}({meta.get('uid', '')})"


def grace_period(pod: Obj, container: Obj, *, probe_kind: str = "") -> float:
    """Seconds a container gets between SIGTERM and SIGKILL, before preStop is accounted for."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    if meta.get("deletionGracePeriodSeconds") is not None and meta.get("deletionTimestamp"):
        return float(meta["deletionGracePeriodSeconds"])
    grace = spec.get("terminationGracePeriodSeconds")
    grace = DEFAULT_GRACE_PERIOD if grace is None else grace
    if probe_kind:
        probe = container.get(f"{probe_kind.lower()}Probe") or {}
        if probe.get("terminationGracePeriodSeconds") is not None:
            grace = probe["terminationGracePeriodSeconds"]
    return float(grace)


async def run_hook(kind: str, handler: Obj, *, runtime: Runtime, container_id: str, container: Obj, pod: Obj,
                   pod_ip: str, timeout: float) -> str | None:
    """Run a postStart/preStop handler; returns None on success, else the message Kubernetes would show."""
    name = container.get("name", "")
    if "sleep" in handler:
        await asyncio.sleep(float((handler["sleep"] or {}).get("seconds") or 0))
        return None
    ok, output = await run_action(handler, runtime=runtime, container_id=container_id, container=container,
                                  pod_ip=pod_ip, timeout=timeout)
    if ok:
        return None
    if "exec" in handler:
        command = (handler["exec"] or {}).get("command") or []
        return (f"Exec lifecycle hook ([{' '.join(command)}]) for Container \"{name}\" in Pod \"{pod_ref(pod)}\" failed - "
                f"error: {output}")
    if "httpGet" in handler:
        return f"HTTP lifecycle hook ({(handler['httpGet'] or {}).get('path', '/')}) for Container \"{name}\" " \
               f"in Pod \"{pod_ref(pod)}\" failed - error: {output}"
    return output


async def kill_container(runtime: Runtime, *, pod: Obj, container: Obj, container_id: str, pod_ip: str,
                         grace: float, override: float | None = None, run_pre_stop: bool = True) -> None:
    """preStop (within the grace period), then SIGTERM and SIGKILL after what is left of it."""
    pre_stop = ((container.get("lifecycle") or {}).get("preStop")) if run_pre_stop else None
    if pre_stop and grace > 0 and override is None:
        started = time.monotonic()
        try:
            error = await asyncio.wait_for(
                run_hook("PreStop", pre_stop, runtime=runtime, container_id=container_id, container=container,
                         pod=pod, pod_ip=pod_ip, timeout=grace), grace)
            if error:
                log.info("preStop hook of %s failed: %s", pod_ref(pod), error)
        except TimeoutError:
            log.info("preStop hook of container %s in %s did not finish in %ss", container.get("name"),
                     pod_ref(pod), grace)
        grace -= time.monotonic() - started
    grace = max(grace, MINIMUM_GRACE_PERIOD)
    if override is not None:
        grace = override
    await runtime.stop_container(container_id, grace)
