"""From a pod spec to the runtime's configs: PodSandboxConfig and ContainerConfig.

The runtime only sees fully resolved values (CRI's design): the kubelet picks
the hostname, the log paths, the DNS settings and the pod IP, resolves the
environment (env.py), expands `$(VAR)` in command and args, and turns volumes
into host mounts (volumes.py). Errors here are *configuration* errors, not
crashes: Kubernetes shows them as a waiting container (CreateContainerConfigError
/ CreateContainerError) with an event, and retries. A container with no
`command` is the one error a retry cannot fix in the process runtime: it has no
image entrypoint to fall back on, so the message says what to do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from kubeling.api.quantity import cpu_millis, memory_bytes
from kubeling.kubelet.env import EnvError, expand_command, resolve_env, service_env
from kubeling.kubelet.poddns import ResolvConf, pod_dns, read_host_resolv_conf
from kubeling.kubelet.status import CREATE_CONTAINER_CONFIG_ERROR, CREATE_CONTAINER_ERROR
from kubeling.kubelet.volumes import VolumeManager
from kubeling.runtime.interface import ContainerConfig, Mount, PodSandboxConfig, PortMapping, Resources

Obj = dict[str, Any]


@dataclass
class DNSSettings:
    """Cluster DNS handed to every pod with dnsPolicy ClusterFirst (kubelet --cluster-dns/--cluster-domain)."""

    servers: list[str] = field(default_factory=lambda: ["10.43.0.10"])
    domain: str = "cluster.local"
    resolv_conf: str = ""  # the node's resolv.conf (kubelet --resolv-conf); "" = /etc/resolv.conf

    def host(self) -> ResolvConf:
        """The node's own DNS settings (dnsPolicy Default), read now."""
        return read_host_resolv_conf(self.resolv_conf)


class ContainerConfigError(Exception):
    """The container cannot be created; `reason` is the waiting reason the status shows."""

    def __init__(self, message: str, *, reason: str = CREATE_CONTAINER_CONFIG_ERROR, retry: bool = True) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry = retry


def log_directory(root_dir: str, pod: Obj) -> str:
    """`<root>/pods/<ns>_<name>_<uid>`: Kubernetes' /var/log/pods layout."""
    meta = pod["metadata"]
    return os.path.join(root_dir, "pods", f"{meta.get('namespace', '')}_{meta['name']}_{meta['uid']}")


def pod_hostname(pod: Obj) -> str:
    """spec.hostname, else the pod name, cut to a DNS label (63 characters) like the kubelet does."""
    spec = pod.get("spec") or {}
    name = spec.get("hostname") or pod["metadata"]["name"]
    return str(name)[:63].rstrip("-.")


def sandbox_config(pod: Obj, *, root_dir: str, pod_ip: str, dns: DNSSettings,
                   netns_path: str = "") -> PodSandboxConfig:
    """The sandbox of `pod`: hostname, logs, network (namespace and IP), DNS and host ports."""
    meta = pod["metadata"]
    spec = pod.get("spec") or {}
    ns = meta.get("namespace") or "default"
    resolv = pod_dns(pod, cluster_dns=dns.servers, domain=dns.domain, host=dns.host())
    ports = [PortMapping(container_port=int(p["containerPort"]), host_port=int(p["hostPort"]),
                         protocol=p.get("protocol", "TCP"), host_ip=p.get("hostIP", ""))
             for c in spec.get("containers") or [] for p in c.get("ports") or [] if p.get("hostPort")]
    return PodSandboxConfig(
        name=meta["name"], namespace=ns, uid=meta["uid"], hostname=pod_hostname(pod),
        log_directory=log_directory(root_dir, pod), pod_ip=pod_ip, host_network=bool(spec.get("hostNetwork")),
        netns_path=netns_path, dns_servers=resolv.nameservers, dns_searches=resolv.searches,
        dns_options=resolv.options, port_mappings=ports,
        labels=dict(meta.get("labels") or {}), annotations=dict(meta.get("annotations") or {}))


def container_resources(container: Obj) -> Resources:
    """Requests and limits in the runtime's units."""
    res = container.get("resources") or {}
    requests, limits = res.get("requests") or {}, res.get("limits") or {}
    return Resources(
        cpu_request_millis=cpu_millis(requests["cpu"]) if "cpu" in requests else 0,
        cpu_limit_millis=cpu_millis(limits["cpu"]) if "cpu" in limits else 0,
        memory_request_bytes=memory_bytes(requests["memory"]) if "memory" in requests else 0,
        memory_limit_bytes=memory_bytes(limits["memory"]) if "memory" in limits else 0)


def check_runnable(container: Obj) -> None:
    """The process runtime runs host binaries, as if every image had an empty ENTRYPOINT: `args`
    alone then is the argv (what `kubectl run x --image=y -- sleep 60` sends), as with an OCI
    image without an entrypoint. With neither `command` nor `args` there is nothing to start."""
    if not container.get("command") and not container.get("args"):
        raise ContainerConfigError(
            f"container {container.get('name')} has no command: the process runtime runs host binaries only; "
            f"set command", reason=CREATE_CONTAINER_ERROR, retry=False)


def with_pod_mounts(mounts: list[Mount], pod_mounts: list[Mount]) -> list[Mount]:
    """`mounts` plus the pod's managed files, except at paths the container mounts something itself."""
    taken = {os.path.normpath(m.container_path) for m in mounts}
    return mounts + [m for m in pod_mounts if os.path.normpath(m.container_path) not in taken]


async def container_config(client: Any, pod: Obj, container: Obj, *, root_dir: str, pod_ip: str, host_ip: str,
                           node_name: str, volumes: VolumeManager, volume_dirs: dict[str, str],
                           attempt: int, services: list[Obj] | None = None,
                           pod_mounts: list[Mount] | None = None) -> ContainerConfig:
    """Everything the runtime needs to create `container`; ContainerConfigError when that is impossible.

    `pod_mounts` are the kubelet-managed files of the pod (/etc/hosts, /etc/resolv.conf): every container
    gets them, except where it mounts something at that path itself (as Kubernetes does)."""
    check_runnable(container)
    try:
        links = (pod.get("spec") or {}).get("enableServiceLinks", True) is not False
        svc_env = service_env(services or [], pod["metadata"].get("namespace") or "default",
                              enable_service_links=links)
        env = await resolve_env(client, pod, container, pod_ip=pod_ip, node_name=node_name, host_ip=host_ip,
                                service_env=svc_env, node_allocatable=volumes.node_allocatable)
    except EnvError as err:
        raise ContainerConfigError(str(err)) from err
    env_map = dict(env)
    try:
        mounts = volumes.container_mounts(pod, container, volume_dirs, env_map)
    except Exception as err:  # a bad subPath is the user's error: show it, don't crash the worker
        raise ContainerConfigError(str(err)) from err
    mounts = with_pod_mounts(mounts, pod_mounts or [])
    name = container["name"]
    return ContainerConfig(
        name=name, image=container.get("image", ""), command=expand_command(container, env_map),
        working_dir=container.get("workingDir", ""), env=env, mounts=mounts,
        resources=container_resources(container),
        log_path=os.path.join(log_directory(root_dir, pod), name, f"{attempt}.log"),
        tty=bool(container.get("tty")), stdin=bool(container.get("stdin")),
        stdin_once=bool(container.get("stdinOnce")),
        labels={"io.kubernetes.pod.uid": pod["metadata"]["uid"], "io.kubernetes.container.name": name,
                "io.kubernetes.pod.name": pod["metadata"]["name"],
                "io.kubernetes.pod.namespace": pod["metadata"].get("namespace", "")},
        attempt=attempt)
