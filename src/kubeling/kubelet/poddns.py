"""A pod's DNS configuration from its dnsPolicy and dnsConfig (the kubelet's pkg/kubelet/network/dns).

Kubernetes' rules, reproduced because users rely on them in `cat /etc/resolv.conf`:

* `ClusterFirst` (the default): the cluster DNS servers, the search path
  `<ns>.svc.<domain> svc.<domain> <domain>` followed by the node's own search
  domains, and `options ndots:5`. On a hostNetwork pod it means `Default`,
  and with no cluster DNS configured it falls back to `Default` too.
* `ClusterFirstWithHostNet`: the cluster settings, also for hostNetwork pods.
* `Default`: the node's resolv.conf (servers, search, options).
* `None`: nothing but the pod's `dnsConfig`.

`dnsConfig` is then merged in: nameservers and searches appended (without
duplicates), options overriding by name. The kubelet trims what the resolver
cannot use (3 nameservers, 32 search domains), as Kubernetes does.

Where the node runs systemd-resolved, /etc/resolv.conf names the stub
127.0.0.53, which is unreachable from a pod's own network namespace; like k3s
the kubelet then reads the real upstream list from
/run/systemd/resolve/resolv.conf.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

MAX_NAMESERVERS = 3
MAX_SEARCHES = 32
HOST_RESOLV_CONF = "/etc/resolv.conf"
SYSTEMD_RESOLV_CONF = "/run/systemd/resolve/resolv.conf"


@dataclass
class ResolvConf:
    """The three things a resolv.conf says."""

    nameservers: list[str] = field(default_factory=list)
    searches: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)

    def render(self) -> str:
        """The file's text, in the order containerd writes it."""
        lines = []
        if self.searches:
            lines.append("search " + " ".join(self.searches))
        lines += [f"nameserver {s}" for s in self.nameservers]
        if self.options:
            lines.append("options " + " ".join(self.options))
        return "\n".join(lines) + "\n"


def parse_resolv_conf(text: str) -> ResolvConf:
    """nameserver, search/domain and options lines of a resolv.conf (the last search/domain wins)."""
    conf = ResolvConf()
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].split(";", 1)[0].strip()
        fields = line.split()
        if not fields:
            continue
        key, values = fields[0], fields[1:]
        if key == "nameserver" and values:
            conf.nameservers.append(values[0])
        elif key in ("search", "domain"):
            conf.searches = list(values)
        elif key == "options":
            conf.options = _merge_options(conf.options, values)
    return conf


def host_resolv_conf_path(configured: str = "") -> str:
    """The resolv.conf that describes the node's DNS (kubelet --resolv-conf), skipping a systemd stub."""
    if configured:
        return configured
    try:
        with open(HOST_RESOLV_CONF, encoding="utf-8") as f:
            servers = parse_resolv_conf(f.read()).nameservers
    except OSError:
        return HOST_RESOLV_CONF
    if servers == ["127.0.0.53"] and os.path.exists(SYSTEMD_RESOLV_CONF):
        return SYSTEMD_RESOLV_CONF
    return HOST_RESOLV_CONF


def read_host_resolv_conf(path: str = "") -> ResolvConf:
    """The node's DNS settings; empty when the file cannot be read."""
    try:
        with open(host_resolv_conf_path(path), encoding="utf-8") as f:
            return parse_resolv_conf(f.read())
    except OSError:
        return ResolvConf()


def effective_policy(pod: Obj, *, cluster_dns: list[str]) -> str:
    """ClusterFirst, ClusterFirstWithHostNet, Default or None after Kubernetes' fallbacks."""
    spec = pod.get("spec") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    host_network = bool(spec.get("hostNetwork"))
    if policy == "ClusterFirstWithHostNet" and not host_network:
        policy = "ClusterFirst"
    if policy == "ClusterFirst" and host_network:
        policy = "Default"  # a hostNetwork pod resolves like its node unless it says WithHostNet
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet") and not cluster_dns:
        policy = "Default"  # no cluster DNS configured (kubelet --cluster-dns empty)
    return policy if policy in ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None") else "ClusterFirst"


def pod_dns(pod: Obj, *, cluster_dns: list[str], domain: str, host: ResolvConf) -> ResolvConf:
    """The pod's resolv.conf contents (see the module docstring for the rules)."""
    spec = pod.get("spec") or {}
    ns = (pod.get("metadata") or {}).get("namespace") or "default"
    policy = effective_policy(pod, cluster_dns=cluster_dns)
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet"):
        conf = ResolvConf(list(cluster_dns), [f"{ns}.svc.{domain}", f"svc.{domain}", domain, *host.searches],
                          ["ndots:5"])
    elif policy == "Default":
        conf = ResolvConf(list(host.nameservers), list(host.searches), list(host.options))
    else:
        conf = ResolvConf()
    extra = spec.get("dnsConfig") or {}
    conf.nameservers = _unique(conf.nameservers + list(extra.get("nameservers") or []))[:MAX_NAMESERVERS]
    conf.searches = _unique(conf.searches + list(extra.get("searches") or []))[:MAX_SEARCHES]
    conf.options = _merge_options(conf.options, [f"{o['name']}:{o['value']}" if o.get("value") is not None
                                                 else str(o.get("name", ""))
                                                 for o in extra.get("options") or [] if o.get("name")])
    return conf


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(i for i in items if i))


def _merge_options(base: list[str], extra: list[str]) -> list[str]:
    """Options by name: a later `name[:value]` replaces an earlier one in place."""
    merged: dict[str, str] = {}
    for opt in [*base, *extra]:
        merged[opt.split(":", 1)[0]] = opt
    return list(merged.values())
