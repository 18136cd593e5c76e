"""`kubeling agent --server URL --token T`: join this machine to a cluster as a node.

The token (the server's `<data-dir>/token`) is checked before anything starts:
the API server answers a wrong token with 401, and the agent says so in one
line instead of registering a node.
"""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path

from kubeling.api.errors import StatusError
from kubeling.cli.node import DNSOptions, NodeOptions, node_components
from kubeling.cli.supervisor import exit_code, run_process, stop_on_signals, supervise
from kubeling.client import APIUnavailable, KubeClient
from kubeling.client.resources import SERVICES


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


async def cluster_dns_address(client: KubeClient, *, timeout: float = 60.0) -> str:
    """The kube-dns ClusterIP the server's DNS component publishes (waits for it to appear)."""
    from kubeling.dns.component import DNS_SERVICE_NAME, DNS_SERVICE_NAMESPACE
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            svc = await client.get(SERVICES, DNS_SERVICE_NAME, namespace=DNS_SERVICE_NAMESPACE)
            ip = (svc.get("spec") or {}).get("clusterIP") or ""
            if ip and ip != "None":
                return str(ip)
        except StatusError as exc:
            if exc.code != 404:
                raise JoinRefused(f"cannot read service {DNS_SERVICE_NAMESPACE}/{DNS_SERVICE_NAME}: {exc}") from exc
        if asyncio.get_running_loop().time() > deadline:
            raise JoinRefused(f"the cluster has no {DNS_SERVICE_NAMESPACE}/{DNS_SERVICE_NAME} service after "
                              f"{timeout:.0f}s; is the server's DNS disabled?")
        await asyncio.sleep(0.5)


async def configure_dns(client: KubeClient, opts: NodeOptions) -> None:
    """Point the kubelet (and, in the root mode, this node's DNS server) at the cluster's DNS address."""
    if "cluster_dns" in opts.kubelet and opts.pod_network != "cni":
        return
    if opts.pod_network != "cni":  # no-root mode: DNS runs on the server's machine only; best effort
        try:
            opts.kubelet.setdefault("cluster_dns", [await cluster_dns_address(client, timeout=5.0)])
        except JoinRefused:
            pass
        return
    ip = await cluster_dns_address(client)
    opts.kubelet.setdefault("cluster_dns", [ip])
    # The reverse zone of Services: the /16 around the DNS address (the default service range's size).
    network = str(ipaddress.ip_network(f"{ip}/16", strict=False))
    opts.dns = DNSOptions(service_cidr=network, listen_ip=ip, local_address=opts.pod_network == "cni",
                          fallback_port=None if opts.pod_network == "cni" else 10053, manage_service=False)


async def _agent(server: str, token: str, data_dir: Path, opts: NodeOptions) -> int:
    client = KubeClient(server, token=token, user_agent="kubeling-agent")
    try:
        await check_join(client, server)
        await asyncio.to_thread(data_dir.mkdir, parents=True, exist_ok=True)
        stop = stop_on_signals()
        await configure_dns(client, opts)
        components, kubelet = node_components(client, data_dir, opts, first_node=False)
        supervisor = asyncio.create_task(supervise(components, stop))
        ready = asyncio.create_task(kubelet.ready.wait())
        await asyncio.wait([ready, supervisor], timeout=60, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if not supervisor.done():
            print(f"kubeling agent: node {opts.resolved_name()} joined {server}", flush=True)
        return await exit_code(supervisor)
    finally:
        await client.close()


def run(server: str, token: str, data_dir: Path, opts: NodeOptions) -> int:
    return run_process(_agent(server.rstrip("/"), token, data_dir, opts), fatal=JoinRefused)
