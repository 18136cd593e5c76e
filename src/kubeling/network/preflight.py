"""Can this machine run the root-mode pod network? One answer, with the reason when it cannot.

Why a preflight: the CNI mode fails late and confusingly when a piece is missing (a pod stuck in
ContainerCreating with a plugin error, or a node that never becomes Ready). The CLI asks once at
start and either picks the mode or refuses with the one missing piece named, as DESIGN.md asks
("refused with a clear … event, never silently ignored"). The check only looks: it creates no
namespace, interface or rule.
"""

from __future__ import annotations

import os
import shutil

from kubeling.network.cni import DEFAULT_BIN_DIRS

REQUIRED_PLUGINS = ("bridge", "host-local", "loopback", "portmap")
REQUIRED_TOOLS = (
    ("ip", "iproute2 (`ip`)"),
    ("iptables", "iptables (the bridge and portmap plugins program it)"),
    ("nft", "nftables (`nft`, the pod masquerade rule)"),
)


def plugin_dir(bin_dirs: list[str] | None = None) -> str | None:
    """The first of `bin_dirs` (default: CNI's usual places) that holds every required plugin."""
    for d in bin_dirs or DEFAULT_BIN_DIRS:
        if all(os.access(os.path.join(d, p), os.X_OK) for p in REQUIRED_PLUGINS):
            return d
    return None


def cni_available(bin_dirs: list[str] | None = None) -> str:
    """'' when the CNI pod network can run here (root, `ip`, the plugins, iptables, nft); else the reason."""
    if os.geteuid() != 0:
        return "the CNI pod network needs root (network namespaces, bridges, iptables)"
    for tool, what in REQUIRED_TOOLS:
        if shutil.which(tool) is None:
            return f"the CNI pod network needs {what}"
    dirs = list(bin_dirs or DEFAULT_BIN_DIRS)
    if plugin_dir(dirs) is None:
        return (f"the CNI pod network needs the plugins {', '.join(REQUIRED_PLUGINS)} in one of "
                f"{', '.join(dirs)} (Debian/Ubuntu: apt-get install containernetworking-plugins)")
    if not os.path.isdir("/proc/sys/net/ipv4"):
        return "the CNI pod network needs /proc/sys/net (IPv4 networking)"
    return ""
