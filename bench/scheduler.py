"""Scheduler benchmark: pods scheduled per second at 100, 1,000 and 5,000 nodes.

    .venv/bin/python bench/scheduler.py [--pods 10000] [--nodes 100,1000,5000] [--skip-e2e]

Two measurements per node count, both scoring every feasible node (percentageOfNodesToScore 100):

(a) **core** — `schedule_one` + `Snapshot.assume` over a Snapshot, the scheduling loop
    without any I/O; also with the explanation record the component writes per pod.
    Peer, same run: Kubernetes-style sampling (percentageOfNodesToScore 10, the
    equivalence cache off — kube-scheduler has none), so the ratio says what scoring
    every node costs against upstream's shortcut.
(b) **end to end** — a real `kubeling server` subprocess, `kubeling simulate` nodes
    registered through the API, and the pods created up front while the bench holds the
    scheduler's Lease (so none is scheduled early); then the Lease is released and the
    clock runs from the first binding to the last pod seen bound on a watch.

The workload is ten ReplicaSet-like shapes (50m–500m CPU, 64Mi–640Mi) interleaved, on
nodes of 32 CPU / 128Gi / 110 pods. Everything stays on 127.0.0.1 and is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))
from tests.e2e.conftest import Server  # noqa: E402

from kubeling.api.errors import StatusError  # noqa: E402
from kubeling.client import KubeClient  # noqa: E402
from kubeling.client.resources import LEASES, NAMESPACES, PODS  # noqa: E402
from kubeling.kubelet.simulated import NodeShape, node_object  # noqa: E402
from kubeling.scheduler import PodInfo, Snapshot, parse_config, schedule_one  # noqa: E402
from kubeling.scheduler.record import BOUND_MAX_NODES, MAX_NODES, explanation_record  # noqa: E402

SHAPE = NodeShape(cpu="32", memory="128Gi", pods=110)


def make_pod(i: int, namespace: str = "bench") -> dict[str, Any]:
    w = i % 10
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"w{w}-{i}", "namespace": namespace, "uid": f"uid-{i}", "labels": {"app": f"w{w}"}},
            "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {
                "requests": {"cpu": f"{50 + 50 * w}m", "memory": f"{64 * (w + 1)}Mi"}}}]}}


def core_rate(nodes: int, pods: int, *, percentage: int, memo: bool, record: bool = False) -> tuple[float, int]:
    """(pods/s, unschedulable count) for schedule_one + assume over a fresh snapshot."""
    profile = parse_config({"percentageOfNodesToScore": percentage})["default-scheduler"]
    snap = Snapshot.build([node_object(f"sim-{i}", SHAPE) for i in range(nodes)], [])
    infos = [PodInfo(make_pod(i)) for i in range(pods)]
    failed = 0
    t0 = time.perf_counter()
    for pi in infos:
        result = schedule_one(pi, snap, profile, memo=memo)
        if record:
            explanation_record(result, max_nodes=BOUND_MAX_NODES if result.selected_node else MAX_NODES, snapshot=snap)
        if result.selected_node:
            snap.assume(pi, result.selected_node)
        else:
            failed += 1
    return pods / (time.perf_counter() - t0), failed


async def _take_lease(client: KubeClient, holder: str, duration: int) -> None:
    """Write `holder` into the kube-scheduler Lease (compare-and-swap, retried on conflict)."""
    while True:
        try:
            lease = await client.get(LEASES, "kube-scheduler", namespace="kube-system")
        except StatusError as err:
            if err.code != 404:
                raise
            await asyncio.sleep(0.2)  # the scheduler has not created it yet
            continue
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        spec = {**lease.get("spec", {}), "holderIdentity": holder, "leaseDurationSeconds": duration,
                "acquireTime": stamp, "renewTime": stamp}
        try:
            await client.update(LEASES, {**lease, "spec": spec})
            return
        except StatusError as err:
            if err.code != 409:
                raise


async def _e2e(server: Server, nodes: int, pods: int, timeout: float) -> dict[str, float]:
    async with KubeClient.from_kubeconfig(server.kubeconfig, user_agent="bench") as client:
        # Hold the scheduler off while the pods are created: take its Lease for an hour.
        await _take_lease(client, "bench", 3600)
        await asyncio.sleep(3.0)  # > the scheduler's retry period: it notices and stops leading
        await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}})
        sem = asyncio.Semaphore(32)
        t0 = time.perf_counter()

        async def create(i: int) -> None:
            async with sem:
                body = make_pod(i)
                del body["metadata"]["uid"]
                await client.create(PODS, body, namespace="bench")
        await asyncio.gather(*(create(i) for i in range(pods)))
        create_rate = pods / (time.perf_counter() - t0)
        rv = (await client.list(PODS, namespace="bench", limit=1))["metadata"]["resourceVersion"]
        bound: set[str] = set()
        first = last = 0.0

        async def watch() -> None:
            nonlocal first, last, rv
            while True:  # the watch cache drops a watcher that falls behind: resume from the last version
                async for _type, pod in client.watch(PODS, namespace="bench", resource_version=rv,
                                                     timeout_seconds=900):
                    rv = pod["metadata"].get("resourceVersion", rv)
                    if pod.get("spec", {}).get("nodeName") and pod["metadata"]["name"] not in bound:
                        bound.add(pod["metadata"]["name"])
                        last = time.perf_counter()
                        first = first or last
                        if len(bound) >= pods:
                            return
        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.5)
        released = time.perf_counter()
        await _take_lease(client, "", 1)  # release: the scheduler acquires within ~2 s and lists
        try:
            await asyncio.wait_for(watcher, timeout)
        except TimeoutError:
            print(f"    e2e at {nodes} nodes: only {len(bound)}/{pods} bound within {timeout:.0f}s", flush=True)
        span = max(last - first, 1e-9)
        return {"bound": len(bound), "rate": (len(bound) - 1) / span, "seconds": span,
                "startup": first - released if first else float("nan"), "create_rate": create_rate}


def e2e_rate(nodes: int, pods: int, timeout: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="kubeling-sched-bench-") as tmp:
        server = Server(Path(tmp) / "data")
        server.start(timeout=60)
        sim: subprocess.Popen[str] | None = None
        try:
            sim = subprocess.Popen(
                [sys.executable, "-m", "kubeling", "simulate", "--kubeconfig", str(server.kubeconfig), "--nodes",
                 str(nodes), "--cpu", SHAPE.cpu, "--memory", SHAPE.memory, "--pods", str(SHAPE.pods)],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
            t0 = time.perf_counter()
            assert sim.stdout is not None
            line = sim.stdout.readline()
            if "registered" not in line:
                raise RuntimeError(f"simulate failed: {line}")
            print(f"    {nodes} simulated nodes registered in {time.perf_counter() - t0:.1f}s", flush=True)
            return asyncio.run(_e2e(server, nodes, pods, timeout))
        finally:
            if sim is not None:
                sim.terminate()
                try:
                    sim.wait(20)
                except subprocess.TimeoutExpired:
                    sim.kill()
                    sim.wait()
                if sim.stdout:
                    sim.stdout.close()
            server.stop(timeout=20)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pods", type=int, default=10_000)
    ap.add_argument("--nodes", default="100,1000,5000")
    # 10,000 pods at 5,000 nodes take 3-4 minutes end to end on 2 cores (the API server also
    # absorbs 500 node-Lease renewals/s): half as many keeps the whole bench near 10 minutes.
    ap.add_argument("--e2e-pods-at-5000", type=int, default=5_000,
                    help="pods for the end-to-end run at 5,000 nodes (default 5,000 to bound the run time)")
    ap.add_argument("--unmemoized-pods", type=int, default=1_000,
                    help="pods for the 100%%-without-equivalence-cache reference run")
    ap.add_argument("--e2e-timeout", type=float, default=240.0)
    ap.add_argument("--skip-e2e", action="store_true")
    args = ap.parse_args()
    counts = [int(n) for n in args.nodes.split(",")]
    core: dict[int, dict[str, float]] = {}
    print(f"(a) scheduling core: schedule_one + assume, {args.pods:,} pods, nodes {SHAPE.cpu} CPU/{SHAPE.memory}",
          flush=True)
    for n in counts:
        full, failed = core_rate(n, args.pods, percentage=100, memo=True)
        recorded, _ = core_rate(n, args.pods, percentage=100, memo=True, record=True)
        peer, _ = core_rate(n, args.pods, percentage=10, memo=False)
        bare, _ = core_rate(n, min(args.pods, args.unmemoized_pods), percentage=100, memo=False)
        core[n] = {"full": full, "recorded": recorded, "peer": peer, "bare": bare}
        print(f"  {n:>5} nodes: {full:8,.0f} pods/s scoring 100% | {recorded:8,.0f} with explanation record | "
              f"peer 10% sampling, no eq. cache {peer:8,.0f} pods/s (ratio {full / peer:.2f}) | "
              f"100% without eq. cache {bare:7,.0f} pods/s ({failed} unschedulable)", flush=True)
    lo, hi = counts[0], counts[-1]
    print(f"  cost growth {hi} vs {lo} nodes: time per pod ×{core[lo]['full'] / core[hi]['full']:.1f} at 100% "
          f"(×{core[lo]['peer'] / core[hi]['peer']:.1f} for the 10% peer; nodes ×{hi / lo:.0f})", flush=True)
    if args.skip_e2e:
        return 0
    print("(b) end to end: kubeling server + kubeling simulate, pods created up front, first → last binding",
          flush=True)
    e2e: dict[int, dict[str, float]] = {}
    for n in counts:
        pods = args.e2e_pods_at_5000 if n >= 5000 else args.pods
        note = f" (reduced to {pods:,} pods to bound the run time)" if pods != args.pods else ""
        r = e2e[n] = e2e_rate(n, pods, args.e2e_timeout)
        print(f"  {n:>5} nodes: {r['rate']:8,.0f} pods/s end to end, {int(r['bound']):,} pods in {r['seconds']:.1f}s"
              f"{note}; first binding {r['startup']:.1f}s after the Lease was released; pods created at "
              f"{r['create_rate']:,.0f}/s; core alone {core[n]['recorded']:,.0f} pods/s", flush=True)
    print(f"  cost growth {hi} vs {lo} nodes end to end: time per pod ×{e2e[lo]['rate'] / e2e[hi]['rate']:.1f}",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
