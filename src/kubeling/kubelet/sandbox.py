"""A pod's sandbox: its network, volumes, kubelet-managed files and the runtime's sandbox, in order.

The pod worker's first step (kuberuntime_manager's createPodSandbox). The
order is Kubernetes': the network first (the pod IP feeds downward-API
volumes and the managed /etc/hosts), then volumes, then the runtime sandbox
that joins the network namespace. Each piece is kept once it exists, so a
retry after a failure continues where it stopped instead of wiring the pod
twice.

A failure is a Warning event with Kubernetes' reason — `FailedCreatePodSandBox`
carrying the CNI plugin's own message, `FailedMount` for volumes — and the
worker retries. A failed sandbox waits the pod worker's back-off period, as
Kubernetes' pod workers do after a failed sync (backOffPeriod, 10 s with up
to 50 % jitter, so a broken CNI setup neither spins the plugins nor retries
every pod in lockstep); volumes are retried after a short delay.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
from typing import TYPE_CHECKING, Any

from kubeling.kubelet.podfiles import write_pod_files
from kubeling.kubelet.runconfig import pod_hostname, sandbox_config
from kubeling.kubelet.status import timestamp
from kubeling.runtime.interface import Mount

if TYPE_CHECKING:
    from kubeling.kubelet.containers import WorkerDeps

Obj = dict[str, Any]
log = logging.getLogger(__name__)

MOUNT_RETRY = 2.0  # seconds before volumes are tried again
BACKOFF_JITTER = 0.5  # Kubernetes' workerBackOffPeriodJitterFactor


class PodSandbox:
    """One pod's sandbox and what it is made of (see the module docstring)."""

    def __init__(self, deps: WorkerDeps, uid: str) -> None:
        self.deps = deps
        self.uid = uid
        self.id = ""  # the runtime's sandbox id
        self.pod_ip = ""
        self.netns_path = ""
        self.volume_dirs: dict[str, str] = {}
        self.pod_mounts: list[Mount] = []  # /etc/hosts and /etc/resolv.conf, when the kubelet manages them
        self.start_time = ""
        self._network = False  # set up and not yet torn down

    async def create(self, pod: Obj) -> float | None:
        """Create what is missing; None when the sandbox is ready, else seconds until the next attempt."""
        deps = self.deps
        if not self._network:
            try:
                self.pod_ip, self.netns_path = await deps.network.setup(pod)
            except Exception as err:
                return await self._failed(pod, f"failed to set up the network of the sandbox: {err}")
            self._network = True
        try:
            self.volume_dirs = await deps.volumes.mount_pod_volumes(pod, pod_ip=self.pod_ip)
        except Exception as err:
            await deps.event(pod, "Warning", "FailedMount", f"MountVolume.SetUp failed: {err}")
            return MOUNT_RETRY
        if not self.start_time:
            self.start_time = timestamp()
        try:
            if deps.network.manages_pod_files:
                self.pod_mounts = write_pod_files(
                    pod, pod_dir=os.path.join(deps.root_dir, "pods", self.uid), hostname=pod_hostname(pod),
                    pod_ips=[self.pod_ip], cluster_dns=deps.dns.servers, domain=deps.dns.domain,
                    host_resolv=deps.dns.host())
            config = sandbox_config(pod, root_dir=deps.root_dir, pod_ip=self.pod_ip, dns=deps.dns,
                                    netns_path=self.netns_path)
            self.id = await deps.runtime.run_pod_sandbox(config)
        except Exception as err:
            return await self._failed(pod, str(err))
        return None

    async def _failed(self, pod: Obj, message: str) -> float:
        await self.deps.event(pod, "Warning", "FailedCreatePodSandBox", f"Failed to create pod sandbox: {message}")
        delay = self.deps.backoff.base * (1 + random.random() * BACKOFF_JITTER)
        meta = pod.get("metadata") or {}
        log.warning("creating the sandbox of pod %s/%s failed (retrying in %.1fs): %s", meta.get("namespace"),
                    meta.get("name"), delay, message)
        return delay

    async def remove(self, pod: Obj, *, final: bool) -> None:
        """Stop and remove the runtime's sandbox, then release its network (`final`: the pod is deleted)."""
        runtime = self.deps.runtime
        if self.id:
            with contextlib.suppress(Exception):
                await runtime.stop_pod_sandbox(self.id)
            with contextlib.suppress(Exception):
                await runtime.remove_pod_sandbox(self.id)
            self.id = ""
        await self.release_network(pod, final=final)

    async def release_network(self, pod: Obj, *, final: bool) -> None:
        """Tear down the pod's network (the pod finished, is deleted, or the kubelet stops). Idempotent."""
        try:
            await self.deps.network.teardown(pod, final=final)
        except Exception as err:
            log.warning("releasing the network of pod %s failed: %s", self.uid, err)
        self._network = False
