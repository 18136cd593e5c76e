"""`kubeling agent --server URL --token T`: join this machine to a cluster as a node.

The token (the server's `<data-dir>/token`) is checked before anything starts:
the API server answers a wrong token with 401, and the agent says so in one
line instead of registering a node.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from kubeling.api.errors import StatusError
from kubeling.cli.node import NodeOptions, node_component, proxy_component
from kubeling.cli.supervisor import ComponentDied, run_process, supervise
from kubeling.client import APIUnavailable, KubeClient


class JoinRefused(Exception):
    """The cluster refused this agent (bad token, unreachable server)."""


async def check_join(client: KubeClient, server: str) -> None:
    try:
        await client.request("GET", "/api/v1/namespaces/kube-node-lease")
    except StatusError as exc:
        if exc.code == 401:
            raise JoinRefused(f"the join token was refused by {server} (401 Unauthorized); "
                              f"use the token in the server's <data-dir>/token") from exc
        raise JoinRefused(f"{server} answered {exc.code} {exc.reason}: {exc.message}") from exc
    except (APIUnavailable, OSError) as exc:
        raise JoinRefused(f"cannot reach the API server at {server}: {exc}") from exc


async def _agent(server: str, token: str, data_dir: Path, opts: NodeOptions) -> int:
    client = KubeClient(server, token=token, user_agent="kubeling-agent")
    try:
        await check_join(client, server)
        await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        component, kubelet = node_component(client, data_dir, opts, first_node=False)
        supervisor = asyncio.create_task(supervise([component, proxy_component(client, opts)], stop))
        ready = asyncio.create_task(kubelet.ready.wait())
        await asyncio.wait([ready, supervisor], timeout=60, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if not supervisor.done():
            print(f"kubeling agent: node {opts.resolved_name()} joined {server}", flush=True)
        try:
            await supervisor
        except ComponentDied:
            return 1
        return 0
    finally:
        await client.close()


def run(server: str, token: str, data_dir: Path, opts: NodeOptions) -> int:
    return run_process(_agent(server.rstrip("/"), token, data_dir, opts), fatal=JoinRefused)
