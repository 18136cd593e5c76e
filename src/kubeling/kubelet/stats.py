"""The kubelet Summary API (`/stats/summary`) assembled from runtime container stats.

Why: `kubectl top` (through metrics-server) and autoscalers read this exact JSON
shape (kubelet `stats/v1alpha1`). Runtimes only report cumulative CPU time, so
the rate `usageNanoCores` needs two samples: the collector remembers the last
sample of every container (and of the node) and, for ones seen for the first
time, takes a second sample after a short pause so the very first answer is
already meaningful.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
from dataclasses import dataclass, field
from typing import Any

from kubeling.runtime.interface import ContainerStats, Runtime

Obj = dict[str, Any]
FIRST_SAMPLE_GAP = 0.1


@dataclass
class ContainerTarget:
    """A running container to report: its name in the pod and its runtime id."""

    name: str
    container_id: str
    start_time: float = 0.0


@dataclass
class PodStatsTarget:
    """A pod to report in the summary, with its running containers."""

    namespace: str
    name: str
    uid: str
    containers: list[ContainerTarget] = field(default_factory=list)
    start_time: float = 0.0


def _rfc3339(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts or time.time(), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _read_node_cpu_ns() -> int:
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    busy = sum(fields[:8]) - idle
    return busy * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def _read_meminfo() -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                key, _, rest = line.partition(":")
                parts = rest.split()
                if parts:
                    out[key] = int(parts[0]) * (1024 if len(parts) > 1 else 1)
    except OSError:
        pass
    return out


class StatsCollector:
    """Builds Summary API documents; keeps the previous CPU samples for rate computation."""

    def __init__(self, runtime: Runtime, *, node_name: str = "", root_dir: str = "/") -> None:
        self.runtime = runtime
        self.node_name = node_name or os.uname().nodename
        self.root_dir = root_dir
        self.boot_time = time.time() - time.monotonic()
        self._prev: dict[str, tuple[int, float]] = {}  # id → (cpu ns, monotonic time)

    def _rate(self, key: str, cpu_ns: int, now: float) -> int:
        prev = self._prev.get(key)
        self._prev[key] = (cpu_ns, now)
        if prev is None or now <= prev[1] or cpu_ns < prev[0]:
            return 0
        return int((cpu_ns - prev[0]) / (now - prev[1]))

    async def _sample(self, ids: list[str]) -> dict[str, ContainerStats | None]:
        results = await asyncio.gather(*(self.runtime.container_stats(cid) for cid in ids), return_exceptions=True)
        return {cid: (r if isinstance(r, ContainerStats) else None) for cid, r in zip(ids, results, strict=True)}

    async def summary(self, targets: list[PodStatsTarget]) -> Obj:
        """The Summary JSON for the node and `targets`."""
        ids = [c.container_id for p in targets for c in p.containers if c.container_id]
        fresh = [cid for cid in ids if cid not in self._prev]
        if fresh or "__node__" not in self._prev:
            first = await self._sample(fresh)
            t0 = time.monotonic()
            for cid, st in first.items():
                if st is not None:
                    self._prev[cid] = (st.cpu_usage_core_nanoseconds, t0)
            self._prev.setdefault("__node__", (_read_node_cpu_ns(), t0))
            await asyncio.sleep(FIRST_SAMPLE_GAP)
        samples = await self._sample(ids)
        now = time.monotonic()
        stamp = _rfc3339(time.time())
        pods = []
        for p in targets:
            containers = []
            pod_cpu = pod_rate = pod_ws = pod_rss = 0
            for c in p.containers:
                st = samples.get(c.container_id)
                if st is None:
                    continue
                rate = self._rate(c.container_id, st.cpu_usage_core_nanoseconds, now)
                pod_cpu += st.cpu_usage_core_nanoseconds
                pod_rate += rate
                pod_ws += st.memory_working_set_bytes
                pod_rss += st.memory_rss_bytes
                containers.append({
                    "name": c.name,
                    "startTime": _rfc3339(c.start_time),
                    "cpu": {"time": stamp, "usageNanoCores": rate,
                            "usageCoreNanoSeconds": st.cpu_usage_core_nanoseconds},
                    "memory": {"time": stamp, "workingSetBytes": st.memory_working_set_bytes,
                               "usageBytes": st.memory_working_set_bytes, "rssBytes": st.memory_rss_bytes,
                               "pageFaults": 0, "majorPageFaults": 0},
                })
            pods.append({
                "podRef": {"name": p.name, "namespace": p.namespace, "uid": p.uid},
                "startTime": _rfc3339(p.start_time),
                "containers": containers,
                "cpu": {"time": stamp, "usageNanoCores": pod_rate, "usageCoreNanoSeconds": pod_cpu},
                "memory": {"time": stamp, "workingSetBytes": pod_ws, "usageBytes": pod_ws, "rssBytes": pod_rss,
                           "pageFaults": 0, "majorPageFaults": 0},
                "volume": [],
            })
        for stale in set(self._prev) - set(ids) - {"__node__"}:
            del self._prev[stale]
        return {"node": self._node(stamp, now), "pods": pods}

    def _node(self, stamp: str, now: float) -> Obj:
        cpu_ns = _read_node_cpu_ns()
        mem = _read_meminfo()
        total, avail = mem.get("MemTotal", 0), mem.get("MemAvailable", 0)
        fs: Obj = {"time": stamp}
        try:
            st = os.statvfs(self.root_dir)
            fs.update({"availableBytes": st.f_bavail * st.f_frsize, "capacityBytes": st.f_blocks * st.f_frsize,
                       "usedBytes": (st.f_blocks - st.f_bfree) * st.f_frsize, "inodesFree": st.f_ffree,
                       "inodes": st.f_files, "inodesUsed": st.f_files - st.f_ffree})
        except OSError:
            pass
        return {
            "nodeName": self.node_name,
            "systemContainers": [],
            "startTime": _rfc3339(self.boot_time),
            "cpu": {"time": stamp, "usageNanoCores": self._rate("__node__", cpu_ns, now),
                    "usageCoreNanoSeconds": cpu_ns},
            "memory": {"time": stamp, "availableBytes": avail, "usageBytes": total - mem.get("MemFree", 0),
                       "workingSetBytes": total - avail, "rssBytes": max(0, total - avail - mem.get("Cached", 0)),
                       "pageFaults": 0, "majorPageFaults": 0},
            "fs": fs,
            "runtime": {"imageFs": fs},
        }
