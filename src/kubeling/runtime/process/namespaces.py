"""What isolation this host gives the process runtime, found once at start.

Why probe instead of assuming: as root, UTS + mount namespaces always work;
without root they need unprivileged user namespaces, which distributions and
container hosts enable or forbid independently, and cgroups may or may not be
writable. The kubelet turns whatever is missing into a pod event ("does not
work in this mode is refused with a clear pod event, never silently ignored").
The probe runs the real init helper in a throwaway child, so it tests the
exact code path containers use.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass, field

from .spawn import helper_argv


@dataclass
class Capabilities:
    """What works on this host: hostname (UTS ns), mounts at mountPath (mount ns), cgroup limits."""

    hostname: bool = False
    mounts: bool = False
    cgroups: bool = False
    cgroup_version: int = 0
    user_namespace: bool = False  # True when namespaces come from an unprivileged user namespace
    root: bool = False
    notes: list[str] = field(default_factory=list)  # why something is unavailable


async def probe_namespaces() -> tuple[bool, bool, str]:
    """(namespaces work, mounts work, error) from a probe child."""
    proc = await asyncio.create_subprocess_exec(
        *helper_argv({"mode": "probe"}),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    )
    out, err = await proc.communicate()
    try:
        result = json.loads(out)
    except ValueError:
        return False, False, (err or out).decode(errors="replace").strip()
    return bool(result["namespaces"]), bool(result["mounts"]), str(result["error"])
