"""`kubeling proxy`: a node's Service proxy as a process of its own (kube-proxy's role).

`kubeling up` and `kubeling agent` run the proxy inside their process; this
command exists for nodes started with `--disable proxy`, so the proxy can be
restarted or upgraded on its own. In the nftables mode the rules stay in the
kernel while the process is down — traffic keeps flowing — and a new process
re-syncs them in full at start. `--cleanup` removes them for good.
"""

from __future__ import annotations

import asyncio

from kubeling.cli.agent import JoinRefused, check_join
from kubeling.cli.network import NetworkMode
from kubeling.cli.node import NodeOptions, proxy_component
from kubeling.cli.supervisor import exit_code, run_process, stop_on_signals, supervise
from kubeling.client import KubeClient


async def _proxy(server: str, token: str, opts: NodeOptions, service_lb: bool) -> int:
    client = KubeClient(server, token=token, user_agent="kubeling-proxy")
    try:
        await check_join(client, server)
        stop = stop_on_signals()
        component = proxy_component(client, opts, service_lb=service_lb)
        supervisor = asyncio.create_task(supervise([component], stop))
        print(f"kubeling proxy: serving Services on node {opts.resolved_name()} ({opts.proxy_mode} mode)",
              flush=True)
        return await exit_code(supervisor)
    finally:
        await client.close()


def run(server: str, token: str, *, node_name: str, address: str, mode: NetworkMode, cluster_cidr: str,
        service_lb: bool = True) -> int:
    opts = NodeOptions(node_name=node_name, address=address, pod_network=mode.pod_network,
                       proxy_mode=mode.proxy_mode, cluster_cidr=cluster_cidr)
    return run_process(_proxy(server.rstrip("/"), token, opts, service_lb), fatal=JoinRefused)


def cleanup() -> int:
    """Delete the nftables proxy's table (uninstall); 0 also when there was nothing to delete."""
    from kubeling.proxy import nftables_cleanup as nft_cleanup
    asyncio.run(nft_cleanup())
    print("kubeling proxy: nftables rules removed", flush=True)
    return 0
