"""The files the kubelet manages for a pod with its own network: /etc/hosts and /etc/resolv.conf.

A pod in its own network namespace must not see the node's /etc/hosts (its
hostname maps to the pod IP, not the node's) nor, usually, the node's
resolv.conf (cluster DNS, the namespace's search path, ndots:5). As Kubernetes
does, the kubelet writes both into the pod's directory (`<root>/pods/<uid>/
etc-hosts`, `etc-resolv.conf`) and hands every container a bind mount of each;
the runtime places them inside the container's private mount namespace, so
the node's own files never change. Pods on the node's network (the no-root
mode, hostNetwork pods) keep the node's files: they share its network, and
cluster DNS may not even listen on port 53 there. A hostNetwork pod that
asks for cluster DNS (ClusterFirstWithHostNet, or None with dnsConfig) gets
only the resolv.conf.
"""

from __future__ import annotations

import os
from typing import Any

from kubeling.kubelet.poddns import ResolvConf, pod_dns
from kubeling.runtime.interface import Mount

Obj = dict[str, Any]

HOSTS_FILE = "etc-hosts"
RESOLV_FILE = "etc-resolv.conf"
MANAGED_HOSTS_HEADER = "# Kubernetes-managed hosts file.\n"
LOCALHOST_ENTRIES = ("127.0.0.1\tlocalhost\n"
                     "::1\tlocalhost ip6-localhost ip6-loopback\n"
                     "fe00::0\tip6-localnet\n"
                     "fe00::0\tip6-mcastprefix\n"
                     "fe00::1\tip6-allnodes\n"
                     "fe00::2\tip6-allrouters\n")


def render_hosts(pod: Obj, *, hostname: str, pod_ips: list[str], domain: str) -> str:
    """Kubernetes' managed hosts file: localhost entries, the pod's own names, then spec.hostAliases."""
    spec = pod.get("spec") or {}
    ns = (pod.get("metadata") or {}).get("namespace") or "default"
    text = MANAGED_HOSTS_HEADER + LOCALHOST_ENTRIES
    fqdn = f"{hostname}.{spec['subdomain']}.{ns}.svc.{domain}" if spec.get("subdomain") else ""
    for ip in pod_ips:
        text += f"{ip}\t{fqdn}\t{hostname}\n" if fqdn else f"{ip}\t{hostname}\n"
    aliases = spec.get("hostAliases") or []
    if aliases:
        text += "\n# Entries added by HostAliases.\n"
        for alias in aliases:
            text += f"{alias.get('ip', '')}\t" + "\t".join(alias.get("hostnames") or []) + "\n"
    return text


def wants_resolv_conf(pod: Obj) -> bool:
    """Whether a pod gets the kubelet's resolv.conf: always with its own network, on the node's
    network only when it asks for more than the node's file."""
    spec = pod.get("spec") or {}
    if not spec.get("hostNetwork"):
        return True
    return spec.get("dnsPolicy") in ("ClusterFirstWithHostNet", "None") or bool(spec.get("dnsConfig"))


def write_pod_files(pod: Obj, *, pod_dir: str, hostname: str, pod_ips: list[str], cluster_dns: list[str],
                    domain: str, host_resolv: ResolvConf) -> list[Mount]:
    """Write the pod's managed files under `pod_dir`; the mounts every container of the pod gets."""
    spec = pod.get("spec") or {}
    os.makedirs(pod_dir, exist_ok=True)
    mounts: list[Mount] = []
    if not spec.get("hostNetwork"):
        path = os.path.join(pod_dir, HOSTS_FILE)
        _write(path, render_hosts(pod, hostname=hostname, pod_ips=pod_ips, domain=domain))
        mounts.append(Mount(host_path=path, container_path="/etc/hosts"))
    if wants_resolv_conf(pod):
        path = os.path.join(pod_dir, RESOLV_FILE)
        conf = pod_dns(pod, cluster_dns=cluster_dns, domain=domain, host=host_resolv)
        _write(path, conf.render())
        mounts.append(Mount(host_path=path, container_path="/etc/resolv.conf"))
    return mounts


def _write(path: str, text: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
