"""`kubeling server` / `kubeling up`: run the control plane until SIGINT/SIGTERM.

Each component is a supervised `run()`; if one dies the process reports it and
exits non-zero. A start-up failure (port taken, unreadable data dir) is one
line on stderr and exit code 1.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from kubeling.apiserver.app import APIServer
from kubeling.apiserver.services import DEFAULT_NODE_PORT_RANGE, DEFAULT_SERVICE_CIDR
from kubeling.cli import kubeconfig
from kubeling.cli.node import NodeOptions, node_components
from kubeling.cli.supervisor import Component, ComponentDied, run_process, stop_on_signals, supervise
from kubeling.client import KubeClient
from kubeling.storage.sqlite import SQLiteStore

log = logging.getLogger("kubeling")


class StartupError(Exception):
    """A reason the server cannot start, printed as one line."""


def _check_writable(data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    probe = data_dir / ".write-test"
    probe.write_text("")
    probe.unlink()


async def serve(data_dir: Path, bind: str, port: int, *, merge_kubeconfig: bool = True,
                options: ServerOptions | None = None) -> int:
    options = options or ServerOptions()
    try:
        _check_writable(data_dir)
    except OSError as exc:
        raise StartupError(f"data dir {data_dir} is not writable: {exc.strerror}") from exc
    store = SQLiteStore(str(data_dir / "state.db"))
    host = bind if bind not in ("0.0.0.0", "::") else "127.0.0.1"
    token = kubeconfig.ensure_token(data_dir)
    try:
        # The `kubernetes` Service points at the advertised address: with a wildcard bind and a real
        # node address (the root network mode), pods in their own namespaces reach the API server there.
        advertise = host
        if bind in ("0.0.0.0", "::") and options.node is not None and options.node.address != "127.0.0.1":
            advertise = options.node.address
        server = APIServer(store, advertise_address=f"{advertise}:{port}", tokens={token},
                           service_cidr=options.service_cidr, node_port_range=options.node_port_range)
    except ValueError as exc:  # a bad --service-cidr / --service-node-port-range
        raise StartupError(str(exc)) from exc
    await server.start()
    # Open watches would hold a shutdown for aiohttp's whole grace period; they are ended first
    # (server.end_watches) and whatever is left gets a short grace.
    runner = web.AppRunner(server.app(), access_log=None, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, bind, port, backlog=1024, reuse_address=True)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        await server.stop()
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(f"port {port} on {bind} is already in use") from exc
        raise StartupError(f"cannot listen on {bind}:{port}: {exc.strerror}") from exc
    url = f"http://{host}:{port}"
    kc = kubeconfig.write_kubeconfig(data_dir, url, token)
    stop = stop_on_signals()
    client = KubeClient(url, token=token, user_agent="kubeling-control-plane")
    code = 0
    try:
        components = control_plane(client, options)
        kubelet = None
        if options.node is not None:
            node, kubelet = node_components(client, data_dir, options.node, first_node=True)
            components.extend(node)
        supervisor = asyncio.create_task(supervise(components, stop))
        if kubelet is not None:
            # Ready means `kubectl get nodes` already shows the node.
            ready = asyncio.create_task(kubelet.ready.wait())
            await asyncio.wait([ready, supervisor], timeout=60, return_when=asyncio.FIRST_COMPLETED)
            ready.cancel()
        if not supervisor.done():
            _announce(data_dir, url, token, kc, merge_kubeconfig, with_node=kubelet is not None)
            if options.node is not None:
                print(f"  {options.node.describe_network()}", flush=True)
        await supervisor
    except ComponentDied:
        code = 1
    finally:
        await client.close()
        await server.end_watches()
        await runner.shutdown()
        await runner.cleanup()
        await server.stop()
    return code


def _announce(data_dir: Path, url: str, token: str, kc: Path, merge_kubeconfig: bool, *, with_node: bool) -> None:
    merged = ""
    if merge_kubeconfig:
        try:
            merged = f"; context 'kubeling' merged into {kubeconfig.merge_into_user_config(url, token)}"
        except OSError as exc:
            merged = f"; could not merge into user kubeconfig: {exc}"
    print(f"kubeling is ready at {url} — kubeconfig {kc}, join token {data_dir / 'token'}{merged}",
          flush=True)
    what = "nodes" if with_node else "namespaces"
    print(f"  try: kubectl --kubeconfig {kc} get {what}", flush=True)
    if with_node:
        print(f"  join another node: kubeling agent --server {url} --token $(cat {data_dir / 'token'})",
              flush=True)


def control_plane(client: KubeClient, options: ServerOptions) -> list[Component]:
    """The components `kubeling server` runs beside the API server, each an API client."""
    from kubeling.controllers.manager import ControllerManager
    from kubeling.scheduler import load_profiles
    from kubeling.scheduler.component import Scheduler

    try:
        profiles = load_profiles(options.scheduler_config)
    except ValueError as exc:  # a bad config is one readable line, not a traceback
        raise StartupError(str(exc)) from exc
    scheduler = Scheduler(client, profiles=profiles)
    manager = ControllerManager(client, options=options.controller_options)
    return [Component("scheduler", scheduler.run), Component("controller-manager", manager.run)]


@dataclass
class ServerOptions:
    """Flags of `kubeling server` that reach the control-plane components."""

    scheduler_config: str | None = None
    controller_options: dict[str, Any] = field(default_factory=dict)
    node: NodeOptions | None = None  # `kubeling up` runs a local node too
    service_cidr: str = DEFAULT_SERVICE_CIDR  # loopback range: the no-root mode's userspace proxy binds it
    node_port_range: str = DEFAULT_NODE_PORT_RANGE


def run(data_dir: Path, bind: str, port: int, *, merge_kubeconfig: bool = True,
        options: ServerOptions | None = None) -> int:
    return run_process(serve(data_dir, bind, port, merge_kubeconfig=merge_kubeconfig, options=options),
                       fatal=StartupError)
