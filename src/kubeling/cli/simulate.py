"""`kubeling simulate`: N simulated nodes joined to a cluster until Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys

from kubeling.cli.supervisor import stop_on_signals
from kubeling.client import KubeClient
from kubeling.kubelet.simulated import NodeShape, SimulatedNodes


async def _simulate(kubeconfig: str, count: int, shape: NodeShape, prefix: str, complete_after: float) -> int:
    client = KubeClient.from_kubeconfig(kubeconfig, user_agent="kubeling-simulator")
    nodes = SimulatedNodes(client, count=count, prefix=prefix, shape=shape, complete_after=complete_after)
    stop = stop_on_signals()
    task = asyncio.create_task(nodes.run())
    waiter = asyncio.create_task(nodes.ready.wait())
    try:
        done, _ = await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()
            return 1
        print(f"kubeling: {count} simulated nodes {prefix}-0 … {prefix}-{count - 1} registered", flush=True)
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([task, stopper], return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()
            return 1
        return 0
    finally:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        await client.close()


def run(kubeconfig: str, count: int, *, cpu: str, memory: str, pods: int, prefix: str,
        complete_after: float = 1.0) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        shape = NodeShape(cpu=cpu, memory=memory, pods=pods)
        return asyncio.run(_simulate(kubeconfig, count, shape, prefix, complete_after))
    except (OSError, ConnectionError) as exc:
        print(f"kubeling: cannot reach the API server: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # one readable line, not a traceback
        print(f"kubeling: simulate failed: {exc}", file=sys.stderr)
        return 1
