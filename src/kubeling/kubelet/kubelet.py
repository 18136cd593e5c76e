"""The kubelet: the node agent that turns pods bound to this node into running processes.

It is an API client like every other component (hub and spoke): it registers
its Node, heartbeats through a Lease, watches the pods whose spec.nodeName is
this node, and hands each pod (by uid) to its own PodWorker. The informer's
handlers only route objects to workers; all work happens on the workers'
tasks, so a slow container start never delays the watch.

Two guarantees shape the start and stop paths. On start, whatever a previous
run left in the runtime is stopped and removed before pods are synced, and the
workers re-create the containers of pods still bound here (restart counts
continue from the API): a second `kubeling up` resumes its workloads without
doubling them. On `shutdown()` every pod's containers are stopped gracefully
and the sandboxes removed — network namespaces included — while the Pods stay
in the API, to be resumed: no process or network of any pod outlives the
kubelet.

Pod networking is one seam (podnet.py), chosen by `pod_network`: "host" gives
pods the node's network and a loopback address each (no root needed), "cni"
gives each pod its own network namespace wired by the CNI plugins on the
node's podCIDR (root). In CNI mode the node reports NotReady, and no pod is
started, until the node IPAM controller has assigned the podCIDR and the
node's pod network is set up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from dataclasses import dataclass, field
from typing import Any

from kubeling.api.errors import StatusError
from kubeling.client import resources
from kubeling.client.errors import APIUnavailable
from kubeling.client.events import EventRecorder
from kubeling.client.informer import Informer
from kubeling.kubelet.backoff import Backoff
from kubeling.kubelet.containers import WorkerDeps
from kubeling.kubelet.node import NodeStatusManager
from kubeling.kubelet.podip import PodIPAllocator
from kubeling.kubelet.podnet import POD_NETWORK_MODES, PodNetworkProvider, new_pod_network
from kubeling.kubelet.podworker import PodWorker
from kubeling.kubelet.runconfig import DNSSettings, log_directory
from kubeling.kubelet.stats import ContainerTarget, PodStatsTarget
from kubeling.kubelet.volumes import VolumeManager
from kubeling.runtime.interface import Runtime

Obj = dict[str, Any]
log = logging.getLogger(__name__)


@dataclass
class KubeletOptions:
    """Kubelet settings (KubeletConfiguration's names); tests shrink the intervals."""

    backoff_base: float = 10.0  # CrashLoopBackOff: first delay; also the retry period of a failed sandbox
    backoff_max: float = 300.0  # … doubling up to this
    backoff_reset: float | None = None  # idle time that resets the back-off (default 2 × backoff_max)
    node_status_update_frequency: float = 10.0
    node_status_report_frequency: float = 300.0
    node_lease_duration_seconds: int = 40
    node_lease_renew_interval: float = 10.0  # a quarter of the lease duration, as Kubernetes does
    max_pods: int = 110
    node_labels: dict[str, str] = field(default_factory=dict)
    pod_ip_range: str = "127.42.0.0/16"  # no-root mode: one loopback address per pod
    pod_network: str = "host"  # "host": the node's network, loopback pod IPs; "cni": a netns per pod (root)
    cluster_cidr: str = "10.42.0.0/16"  # cni: pod traffic leaving it is masqueraded
    cni_bin_dirs: list[str] | None = None  # cni: plugin directories (default /opt/cni/bin, /usr/lib/cni, …)
    pod_netns_prefix: str = "kl-pod-"  # cni: pod namespaces are /run/netns/<prefix><pod uid>
    cluster_dns: list[str] = field(default_factory=lambda: ["10.43.0.10"])
    cluster_domain: str = "cluster.local"
    resolv_conf: str = ""  # the node's resolv.conf, for dnsPolicy Default ("" = /etc/resolv.conf)
    shutdown_grace_period: float = 30.0  # the most any container gets when the kubelet stops
    probe_time_scale: float = 1.0  # multiplies every probe period/delay/timeout (tests use < 1)
    serve: bool = True  # start the node HTTP server (logs, exec, stats)

    def __post_init__(self) -> None:
        if self.pod_network not in POD_NETWORK_MODES:
            raise ValueError(f"pod_network must be one of {', '.join(POD_NETWORK_MODES)}, not {self.pod_network!r}")
        if isinstance(self.cni_bin_dirs, str):  # from `--kubelet-option cni_bin_dirs=/a:/b`
            self.cni_bin_dirs = [d for d in self.cni_bin_dirs.replace(",", ":").split(":") if d]
        if isinstance(self.cluster_dns, str):
            self.cluster_dns = [s for s in self.cluster_dns.split(",") if s]


class Kubelet:
    """Runs the pods bound to `node_name` on `runtime` and reports them to the API server."""

    def __init__(self, client: Any, *, node_name: str, runtime: Runtime, root_dir: str,
                 address: str = "127.0.0.1", node_server_port: int = 10250,
                 options: KubeletOptions | None = None, volumes: VolumeManager | None = None,
                 ip_allocator: PodIPAllocator | None = None, pod_network: PodNetworkProvider | None = None) -> None:
        self.client = client
        self.node_name = node_name
        self.runtime = runtime
        self.root_dir = root_dir
        self.address = address
        self.node_server_port = node_server_port
        self.options = options or KubeletOptions()
        opts = self.options
        os.makedirs(root_dir, exist_ok=True)
        self.node = NodeStatusManager(client, node_name=node_name, address=address, port=node_server_port,
                                      root_dir=root_dir, runtime_version=f"{runtime.name}://{runtime.version}",
                                      max_pods=opts.max_pods, labels=opts.node_labels,
                                      lease_duration=opts.node_lease_duration_seconds,
                                      report_frequency=opts.node_status_report_frequency)
        recorder = EventRecorder(client, component="kubelet", host=node_name)
        self.network = pod_network or new_pod_network(opts, client=client, node_name=node_name, root_dir=root_dir,
                                                      host_ip=address, recorder=recorder, ip_allocator=ip_allocator)
        self.node.network_ready = lambda: self.network.ready
        self.deps = WorkerDeps(
            client=client, runtime=runtime, recorder=recorder,
            backoff=Backoff(base=opts.backoff_base, maximum=opts.backoff_max, reset_after=opts.backoff_reset),
            volumes=volumes or VolumeManager(client, root_dir, node_allocatable=self.node.capacity(),
                                             node_name=node_name, host_ip=address),
            network=self.network, node_name=node_name, host_ip=address, root_dir=root_dir,
            dns=DNSSettings(servers=list(opts.cluster_dns), domain=opts.cluster_domain, resolv_conf=opts.resolv_conf),
            probe_time_scale=opts.probe_time_scale)
        # Service env vars (FOO_SERVICE_HOST…) come from a Service cache, as the kubelet's service lister.
        self.services = Informer(client, resources.SERVICES)
        self.deps.services = self.services.list
        self.workers: dict[str, PodWorker] = {}  # pod uid → worker
        self.informer = Informer(client, resources.PODS, field_selector=f"spec.nodeName={node_name}")
        self.ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._server: Any = None
        self._stopping = asyncio.Event()  # shutdown() began
        self._stopped = asyncio.Event()  # shutdown() finished

    # -- lifecycle ----------------------------------------------------------------------------------

    async def run(self) -> None:
        """Register the node, start syncing pods and heartbeats; returns after `shutdown()`."""
        await self.runtime.start()
        await self.clean_previous_run()
        if self.options.serve:
            await self._start_server()
        await self._register()
        if self._stopping.is_set():
            await self._stopped.wait()
            return  # shut down before the API server ever answered
        self._tasks = [asyncio.create_task(self._every(self.options.node_lease_renew_interval,
                                                       self.node.renew_lease, "lease"), name="kubelet-lease"),
                       asyncio.create_task(self._every(self.options.node_status_update_frequency,
                                                       self.node.sync_status, "node status"),
                                           name="kubelet-node-status")]
        if not await self.network.start(self._stopping):
            await self._stopped.wait()
            return  # shut down while waiting for the node's podCIDR
        if self.network.mode != "host":
            with contextlib.suppress(StatusError, APIUnavailable):
                await self.node.sync_status(force=True)  # NetworkReady: the node turns Ready now
        self.informer.add_handler(on_add=self._on_pod, on_update=lambda _old, new: self._on_pod(new),
                                  on_delete=self._on_pod_deleted)
        await self.services.start()
        await self.services.wait_synced(5)
        await self.informer.start()
        await self.informer.wait_synced()
        await self._clean_orphans(self.informer.list())
        self.ready.set()
        log.info("kubelet for node %s is running", self.node_name)
        await self._stopped.wait()

    async def shutdown(self) -> None:
        """Stop every pod's containers gracefully and remove their sandboxes (network namespaces too),
        then the heartbeats, server and runtime."""
        self._stopping.set()
        await self.informer.stop()
        await self.services.stop()
        grace = self.options.shutdown_grace_period
        await asyncio.gather(*(w.shutdown(grace) for w in list(self.workers.values())), return_exceptions=True)
        self.workers.clear()
        with contextlib.suppress(Exception):
            await self.network.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.stop()
            self._server = None
        with contextlib.suppress(Exception):
            await self.runtime.close()
        self._stopped.set()

    async def clean_previous_run(self) -> None:
        """Stop and remove every sandbox a previous kubelet left behind; the workers recreate what is bound here."""
        for sandbox_id, config in await self.runtime.list_pod_sandboxes():
            log.info("removing pod sandbox %s of %s/%s left by a previous run", sandbox_id, config.namespace,
                     config.name)
            for container in await self.runtime.list_containers(sandbox_id):
                with contextlib.suppress(Exception):
                    await self.runtime.stop_container(container.id, 2.0)
                with contextlib.suppress(Exception):
                    await self.runtime.remove_container(container.id)
            with contextlib.suppress(Exception):
                await self.runtime.stop_pod_sandbox(sandbox_id)
            with contextlib.suppress(Exception):
                await self.runtime.remove_pod_sandbox(sandbox_id)

    async def _register(self) -> None:
        """Register the Node, retrying until the API server answers (an agent may start first)."""
        delay = 0.2
        while not self._stopping.is_set():
            try:
                await self.node.register()
                await self.node.renew_lease()
                return
            except (StatusError, APIUnavailable) as err:
                log.warning("registering node %s failed (retrying in %.1fs): %s", self.node_name, delay, err)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 7.0)

    async def _clean_orphans(self, pods: list[Obj]) -> None:
        """Free the networks, volumes and logs of pods deleted while the kubelet was down.

        A pod that has finished keeps its logs and volumes until it is deleted, but not its network
        (Kubernetes releases a finished pod's IP); a worker started meanwhile keeps what it set up.
        """
        bound = {p["metadata"]["uid"] for p in pods}
        active = {p["metadata"]["uid"] for p in pods
                  if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")}
        active |= {uid for uid, w in self.workers.items() if not w.terminal}
        released = await self.network.retain_only(active)
        if released:
            log.info("released the network of %d pod(s) that no longer run here", len(released))
        self._remove_orphan_dirs(bound)

    def _remove_orphan_dirs(self, bound: set[str]) -> None:
        pods_dir = os.path.join(self.root_dir, "pods")
        for entry in os.listdir(pods_dir) if os.path.isdir(pods_dir) else []:
            uid = entry.rsplit("_", 1)[-1]  # volume dirs are "<uid>", log dirs "<ns>_<name>_<uid>"
            if uid not in bound:
                shutil.rmtree(os.path.join(pods_dir, entry), ignore_errors=True)

    async def _start_server(self) -> None:
        try:
            from kubeling.kubelet.server import NodeServer  # the node HTTP server is optional at import time
        except ImportError:
            log.warning("kubelet node server unavailable: logs/exec/port-forward will not be served")
            return
        self._server = NodeServer(self, self.runtime, host=self.address, port=self.node_server_port,
                                  node_name=self.node_name, root_dir=self.root_dir)
        await self._server.start()
        self.node.port = self._server.port  # port 0 binds an ephemeral port: advertise the real one

    async def _every(self, interval: float, action: Any, what: str) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await action()
            except asyncio.CancelledError:
                raise
            except Exception as err:
                log.warning("%s update for node %s failed: %s", what, self.node_name, err)

    # -- pods ---------------------------------------------------------------------------------------

    def _on_pod(self, pod: Obj) -> None:
        uid = pod["metadata"]["uid"]
        worker = self.workers.get(uid)
        if worker is None:
            if self._stopping.is_set():
                return
            worker = self.workers[uid] = PodWorker(self.deps, pod)
            worker.start()
            asyncio.get_running_loop().create_task(self._reap(uid, worker))
        else:
            worker.update(pod)

    def _on_pod_deleted(self, pod: Obj) -> None:
        worker = self.workers.get(pod["metadata"]["uid"])
        if worker is not None:
            worker.remove()

    async def _reap(self, uid: str, worker: PodWorker) -> None:
        await worker.done.wait()
        if self.workers.get(uid) is worker:
            del self.workers[uid]

    # -- what the node server asks (server.PodLookup) ---------------------------------------------

    def find_worker(self, namespace: str, name: str) -> PodWorker | None:
        """The worker of pod `namespace/name` (the live one, not one that is terminating)."""
        matches = [w for w in self.workers.values() if w.namespace == namespace and w.name == name]
        return next((w for w in matches if not w.pod["metadata"].get("deletionTimestamp")),
                    matches[0] if matches else None)

    def find_container(self, namespace: str, pod: str, container: str) -> tuple[str, str, str, bool, str] | None:
        """(container id, sandbox id, log path, running, waiting reason) of the current attempt."""
        worker = self.find_worker(namespace, pod)
        rec = worker.record(container) if worker else None
        if worker is None or rec is None:
            return None
        path = self._log_path(worker, container, rec.restart_count) if rec.id else ""
        waiting = (rec.state.get("waiting") or {}).get("reason", "") if rec.state else "ContainerCreating"
        return rec.id, worker.sandbox_id, path, rec.running, waiting

    def previous_log_path(self, namespace: str, pod: str, container: str) -> str | None:
        """The log of the previous attempt (restartCount - 1), or None."""
        worker = self.find_worker(namespace, pod)
        rec = worker.record(container) if worker else None
        if worker is None or rec is None or rec.restart_count == 0:
            return None
        return self._log_path(worker, container, rec.restart_count - 1)

    def _log_path(self, worker: PodWorker, container: str, attempt: int) -> str:
        return os.path.join(log_directory(self.root_dir, worker.pod), container, f"{attempt}.log")

    def find_sandbox(self, namespace: str, pod: str) -> str | None:
        """The pod's sandbox id (port-forward), or None."""
        worker = self.find_worker(namespace, pod)
        return worker.sandbox_id if worker and worker.sandbox_id else None

    def list_pod_stats_targets(self) -> list[PodStatsTarget]:
        """The pods and their running containers, for /stats/summary."""
        targets = []
        for w in self.workers.values():
            containers = [ContainerTarget(name=r.name, container_id=r.id) for r in w.records() if r.running]
            targets.append(PodStatsTarget(namespace=w.namespace, name=w.name, uid=w.uid, containers=containers))
        return targets
