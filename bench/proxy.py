"""Service proxy benchmark (userspace or nftables mode): throughput and p99 through a ClusterIP vs. straight
to the pod, and the time to program 1,000 and 10,000 Services.

    .venv/bin/python bench/proxy.py [--mode userspace|nftables] [--duration 10] [--connections 32] [--rounds 2]
                                    [--services 1000,10000]

(a) **data path** — a small fast HTTP/1.1 keep-alive server (asyncio Protocol, own process) on a
    pod address 127.42.200.1:18080; a Service with ClusterIP 127.43.199.1:8080 and an EndpointSlice
    pointing at it, served by a `ServiceProxy` in this process. `wrk` (`apt-get install -y wrk`; the
    bench falls back to an aiohttp client in a subprocess without it) loads the pod directly and then
    the ClusterIP, alternating, `--rounds` times each; the ratio is proxied over direct requests/s.
(b) **programming** — Services (no selector, one port, each its own ClusterIP 127.43.x.y) and one
    EndpointSlice each are created through the API of a `kubeling server` subprocess. Measured:
    *cold start*, a new proxy from nothing to listening on every ClusterIP (two LISTs + every bind:
    the restart re-sync), and *warm program*, the proxy's sync of an informer cache of that size
    directly (every listener closed, then all re-planned and re-bound).

Everything listens and connects on 127.0.0.0/8 only; every process and listener is stopped at the end.

`--mode nftables` (root, `ip`, `nft`) builds its own network in namespaces named
`kl-test-<random>-…` and never touches the machine's own: a node namespace with bridge
kubeling0 (10.42.0.1/24, hairpin ports, as the CNI bridge plugin makes it) and two pod
namespaces on it, a client pod (10.42.0.2) running `wrk` and the server pod (10.42.0.3:18080,
the same HTTP server). An `NftablesProxy` programs the node namespace from in-memory
informers (no API server: the proxy's own work is measured).
(a) **data path** — `wrk` from the client pod straight to the pod IP, then to the ClusterIP
    10.43.199.1:8080, alternating; both paths cross the same bridge and netfilter hooks,
    the ClusterIP one adds the DNAT.
(b) **programming** — N Services (one port, one endpoint, each its own ClusterIP 10.43.x.y):
    *cold full sync* (empty table to every Service in the kernel: plan, render, one
    transaction), *restart full sync* (a new proxy over the rules the previous one left),
    and at N one *incremental* change (a Service added; an endpoint moved), each from the
    informer event to the kernel holding it. `--endpoints K` gives every Service K endpoints
    (the server pod and K-1 addresses no pod has) to show the programming cost of the random choice. The namespaces, with every rule in them, are
    deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

POD_IP, POD_PORT = "127.42.200.1", 18080
CLUSTER_IP, SERVICE_PORT = "127.43.199.1", 8080
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


# -- the backend pod: a minimal keep-alive HTTP server ------------------------------------------------

class _Http(asyncio.Protocol):
    def __init__(self) -> None:
        self.buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: Any = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        n = buf.count(b"\r\n\r\n")
        if n:
            self.transport.write(RESPONSE * n)
            buf = buf[buf.rfind(b"\r\n\r\n") + 4:]
        self.buf = buf


async def _backend(ip: str, port: int) -> None:
    server = await asyncio.get_running_loop().create_server(_Http, ip, port, backlog=4096)
    print("ready", flush=True)
    async with server:
        await asyncio.Event().wait()


# -- fallback load generator (without wrk): aiohttp keep-alive workers --------------------------------

async def _client(url: str, duration: float, connections: int) -> None:
    import aiohttp

    latencies: list[float] = []
    deadline = time.perf_counter() + duration
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as session:
        async def worker() -> None:
            while (start := time.perf_counter()) < deadline:
                async with session.get(url) as resp:
                    await resp.read()
                latencies.append(time.perf_counter() - start)
        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    print(json.dumps({"rps": len(latencies) / elapsed, "p99_ms": latencies[int(len(latencies) * 0.99)] * 1e3}))


_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system) of this process, or of `pid` from /proc."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def load(url: str, duration: float, connections: int, netns: str | None = None) -> tuple[float, float]:
    """(requests/s, p99 latency in ms) of keep-alive GETs on `url` (from inside `netns` when given)."""
    if shutil.which("wrk"):
        cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency", url]
    else:
        cmd = [sys.executable, __file__, "--client", url, "--duration", str(duration),
               "--connections", str(connections)]
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = (await proc.communicate())[0].decode()
    if proc.returncode != 0 or "Requests/sec" not in out and "rps" not in out:
        raise RuntimeError(f"{' '.join(cmd[:6])} failed: {out[-2000:]}")
    if not shutil.which("wrk"):
        result = json.loads(out.strip().splitlines()[-1])
        return result["rps"], result["p99_ms"]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"\s99%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return rps, float(value) * _UNIT[unit]


# -- API objects -------------------------------------------------------------------------------------

def service(name: str, ip: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip],
                     "ports": [{"name": "http", "port": SERVICE_PORT, "protocol": "TCP"}]}}


def endpoint_slice(name: str) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": f"{name}-1", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": name}},
            "ports": [{"name": "http", "port": POD_PORT, "protocol": "TCP"}],
            "endpoints": [{"addresses": [POD_IP], "nodeName": "bench", "conditions": {"ready": True}}]}


def nth_ip(i: int) -> str:
    return f"127.43.{1 + i // 250}.{1 + i % 250}"


async def create_services(client: Any, start: int, stop: int) -> float:
    from kubeling.client.resources import ENDPOINTSLICES, SERVICES

    sem = asyncio.Semaphore(32)

    async def one(i: int) -> None:
        async with sem:
            name = f"s-{i:05d}"
            await client.create(SERVICES, service(name, nth_ip(i)))
            await client.create(ENDPOINTSLICES, endpoint_slice(name))

    began = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(start, stop)))
    return time.perf_counter() - began


async def start_proxy(client: Any) -> tuple[Any, asyncio.Task[None]]:
    """A running proxy that has programmed every Service once."""
    from kubeling.proxy import ServiceProxy

    proxy = ServiceProxy(client, node_name="bench", node_address="127.0.0.1", service_lb=False)
    task = asyncio.create_task(proxy.run())
    if not await proxy.wait_synced(600):
        raise RuntimeError("proxy did not sync")
    return proxy, task


async def stop_proxy(proxy: Any, task: asyncio.Task[None]) -> None:
    await proxy.stop()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


# -- the bench ---------------------------------------------------------------------------------------

async def main(args: argparse.Namespace) -> None:
    from tests.e2e.conftest import Server

    from kubeling.client import KubeClient
    from kubeling.client.resources import ENDPOINTSLICES, SERVICES

    tmp = Path(tempfile.mkdtemp(prefix="bench-proxy-"))
    server = Server(tmp / "server")
    backend = subprocess.Popen([sys.executable, __file__, "--backend", POD_IP, str(POD_PORT)],  # noqa: ASYNC220
                               stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert backend.stdout is not None and backend.stdout.readline().strip() == "ready"
        server.start()
        token = (tmp / "server" / "token").read_text().strip()
        async with KubeClient(server.url, token=token) as client:
            print(f"load generator: {'wrk -t1' if shutil.which('wrk') else 'aiohttp (wrk not installed)'}, "
                  f"{args.connections} connections, {args.duration:.0f} s per run, {os.cpu_count()} CPUs")
            await client.create(SERVICES, service("web", CLUSTER_IP))
            await client.create(ENDPOINTSLICES, endpoint_slice("web"))
            proxy, task = await start_proxy(client)
            try:
                direct, proxied = [], []
                backend_cpu = proxy_cpu = 0.0
                for _ in range(args.rounds):
                    before = cpu_seconds(backend.pid)
                    direct.append(await load(f"http://{POD_IP}:{POD_PORT}/", args.duration, args.connections))
                    backend_cpu += (cpu_seconds(backend.pid) - before) / (direct[-1][0] * args.duration)
                    before = cpu_seconds()
                    proxied.append(await load(f"http://{CLUSTER_IP}:{SERVICE_PORT}/", args.duration,
                                              args.connections))
                    proxy_cpu += (cpu_seconds() - before) / (proxied[-1][0] * args.duration)
            finally:
                await stop_proxy(proxy, task)
            d_rps = statistics.median(r for r, _ in direct)
            p_rps = statistics.median(r for r, _ in proxied)
            d_p99 = statistics.median(p for _, p in direct)
            p_p99 = statistics.median(p for _, p in proxied)
            print(f"direct to pod IP  : {d_rps:9,.0f} req/s  p99 {d_p99:6.2f} ms   (runs: "
                  f"{', '.join(f'{r:,.0f}' for r, _ in direct)})")
            print(f"through ClusterIP : {p_rps:9,.0f} req/s  p99 {p_p99:6.2f} ms   (runs: "
                  f"{', '.join(f'{r:,.0f}' for r, _ in proxied)})")
            print(f"ratio (proxied/direct req/s): {p_rps / d_rps:.2f}   (target >= 0.5; k8s userspace 0.36)")
            print(f"CPU per request: backend (pod) {backend_cpu / args.rounds * 1e6:.1f} us, "
                  f"proxy {proxy_cpu / args.rounds * 1e6:.1f} us")
            await client.delete(SERVICES, "web", namespace="default")
            await client.delete(ENDPOINTSLICES, "web-1", namespace="default")

            created = 0
            for count in args.services:
                took = await create_services(client, created, count)
                print(f"\n{count:,} Services: created {count - created:,} Services + slices via the API "
                      f"in {took:.1f} s")
                created = count
                began = time.perf_counter()
                await client.list_all(SERVICES)
                await client.list_all(ENDPOINTSLICES)
                listed = time.perf_counter() - began
                began = time.perf_counter()
                proxy, task = await start_proxy(client)
                cold = time.perf_counter() - began
                try:
                    listening = len(proxy.proxy.listeners)
                    assert listening >= count, (listening, count)
                    await proxy.proxy.close()  # every listener closed: program the whole cache again
                    keys = {f"{s['metadata']['namespace']}/{s['metadata']['name']}" for s in proxy.services.list()}
                    began = time.perf_counter()
                    await proxy.proxy.sync(keys)
                    warm = time.perf_counter() - began
                    assert len(proxy.proxy.listeners) >= count
                    sample = nth_ip(count - 1)
                    reader, writer = await asyncio.open_connection(sample, SERVICE_PORT)
                    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                    assert (await reader.readline()).startswith(b"HTTP/1.1 200")
                    writer.close()
                finally:
                    await stop_proxy(proxy, task)
                print(f"  cold start (LIST Services + slices, plan, bind {listening:,} listeners): {cold:.2f} s "
                      f"(the two LISTs alone: {listed:.2f} s)")
                print(f"  warm program (sync of the informer cache, {count:,} binds): {warm:.2f} s "
                      f"({warm / count * 1e6:.0f} us per Service)")
    finally:
        server.stop()
        os.killpg(backend.pid, signal.SIGTERM)
        backend.wait()
        shutil.rmtree(tmp, ignore_errors=True)


# -- nftables mode: a node and two pods in network namespaces of their own -------------------------

NFT_CLIENT_POD, NFT_SERVER_POD, NFT_GATEWAY = "10.42.0.2", "10.42.0.3", "10.42.0.1"
NFT_CLUSTER_IP = "10.43.199.1"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def nft_network(prefix: str) -> tuple[str, str, str]:
    """(node, client pod, server pod) namespaces: a bridge in the node, one veth per pod, as the CNI bridge plugin."""
    node, client, server = f"{prefix}node", f"{prefix}client", f"{prefix}server"
    for ns in (node, client, server):
        _ip("netns", "add", ns)
        _ip("-n", ns, "link", "set", "lo", "up")
    _ip("-n", node, "link", "add", "kubeling0", "type", "bridge")
    _ip("-n", node, "addr", "add", f"{NFT_GATEWAY}/24", "dev", "kubeling0")
    _ip("-n", node, "link", "set", "kubeling0", "up")
    for n, (ns, address) in enumerate(((client, NFT_CLIENT_POD), (server, NFT_SERVER_POD))):
        _ip("-n", node, "link", "add", f"veth{n}", "type", "veth", "peer", "name", "eth0", "netns", ns)
        _ip("-n", node, "link", "set", f"veth{n}", "master", "kubeling0")
        _ip("-n", node, "link", "set", f"veth{n}", "type", "bridge_slave", "hairpin", "on")
        _ip("-n", node, "link", "set", f"veth{n}", "up")
        _ip("-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        _ip("-n", ns, "route", "add", "default", "via", NFT_GATEWAY)
    # The node reaches Service addresses the way a real node does: through a route (its default
    # route on a real host; here the bridge) that the output hook's DNAT then rewrites.
    _ip("-n", node, "route", "add", "default", "dev", "kubeling0")
    return node, client, server


def nft_objects(count: int, start: int = 0, endpoints: int = 1) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Services with one port and `endpoints` endpoints: the server pod, then addresses no pod has (never used)."""
    services, slices = [], []
    others = [f"10.42.1.{n}" for n in range(1, endpoints)]
    for i in range(start, count):
        name = f"s-{i:05d}"
        services.append(service(name, f"10.43.{1 + i // 250}.{1 + i % 250}"))
        slices.append(nft_slice(name, NFT_SERVER_POD, *others))
    return services, slices


def nft_slice(name: str, *pod_ips: str) -> dict[str, Any]:
    slice_ = endpoint_slice(name)
    template = slice_["endpoints"][0]
    slice_["endpoints"] = [{**template, "addresses": [pod_ip]} for pod_ip in pod_ips]
    return slice_


class TimedNft:
    """The proxy's nft runner, timing the kernel's share (nft + netlink) of each transaction."""

    def __init__(self, netns: str) -> None:
        from kubeling.proxy.nftables_exec import Nft

        self.nft = Nft(netns)
        self.applied = 0.0

    async def apply(self, transaction: str) -> None:
        began = time.perf_counter()
        await self.nft.apply(transaction)
        self.applied += time.perf_counter() - began

    async def existing(self) -> tuple[set[str], set[str], list[str]]:
        return await self.nft.existing()

    async def cleanup(self) -> None:
        await self.nft.cleanup()


async def nft_proxy(node: str, services: list[dict[str, Any]], slices: list[dict[str, Any]]) -> tuple[Any, Any]:
    from tests.unit.proxy.nftnet import FakeInformer

    from kubeling.proxy.nftables import NftablesProxy

    timed = TimedNft(node)
    proxy = NftablesProxy(FakeInformer(services), FakeInformer(slices), node_name="bench",  # type: ignore[arg-type]
                          node_address=NFT_GATEWAY, cluster_cidr="10.42.0.0/16", netns=node, nft=timed)
    return proxy, timed


async def nft_run(proxy: Any) -> tuple[asyncio.Task[None], float]:
    """Start the proxy's loop; (task, seconds until its first full sync is in the kernel)."""
    began = time.perf_counter()
    task = asyncio.create_task(proxy.run())
    await asyncio.wait_for(proxy.synced.wait(), 600)
    return task, time.perf_counter() - began


async def nft_stop(proxy: Any, task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await proxy.close()


def nft_check(client: str, ip: str, port: int = SERVICE_PORT) -> None:
    out = subprocess.run(["ip", "netns", "exec", client, sys.executable, "-c",
                          "import socket,sys; s=socket.create_connection((sys.argv[1], int(sys.argv[2])), 5); "
                          "s.sendall(b'GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'); print(s.recv(100)[:15])",
                          ip, str(port)], capture_output=True, text=True, timeout=30)
    if "200 OK" not in out.stdout:
        raise RuntimeError(f"{ip}:{port} did not answer through the rules: {out.stdout}{out.stderr}")


def report_pairs(where: str, direct: list[tuple[float, float]], proxied: list[tuple[float, float]]) -> None:
    """Medians of alternating runs, and the median ratio of back-to-back pairs (less sensitive to drift)."""
    d_rps, p_rps = statistics.median(r for r, _ in direct), statistics.median(r for r, _ in proxied)
    d_p99, p_p99 = statistics.median(p for _, p in direct), statistics.median(p for _, p in proxied)
    print(f"{where}:")
    print(f"  direct to pod IP  : {d_rps:9,.0f} req/s  p99 {d_p99:6.2f} ms   (runs: "
          f"{', '.join(f'{r:,.0f}' for r, _ in direct)})")
    print(f"  through ClusterIP : {p_rps:9,.0f} req/s  p99 {p_p99:6.2f} ms   (runs: "
          f"{', '.join(f'{r:,.0f}' for r, _ in proxied)})")
    paired = statistics.median(p[0] / d[0] for d, p in zip(direct, proxied, strict=True))
    print(f"  ratio (ClusterIP/direct req/s): {p_rps / d_rps:.2f} of the medians, {paired:.2f} median of the "
          f"back-to-back pairs   (target >= 0.95); p99 ratio {p_p99 / d_p99:.2f}")


async def main_nftables(args: argparse.Namespace) -> None:
    import secrets

    from kubeling.proxy import nftables_available

    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("nft"):
        raise SystemExit("the nftables bench needs root, iproute2 and nft (it builds its own network namespaces)")
    prefix = f"kl-test-{secrets.token_hex(3)}-bench-"
    backend = None
    try:
        node, client, server = nft_network(prefix)
        reason = nftables_available(node)
        if reason:
            raise SystemExit(f"nftables proxy unavailable: {reason}")
        backend = subprocess.Popen(["ip", "netns", "exec", server, sys.executable, __file__,  # noqa: ASYNC220
                                    "--backend", NFT_SERVER_POD, str(POD_PORT)],
                                   stdout=subprocess.PIPE, text=True, start_new_session=True)
        assert backend.stdout is not None and backend.stdout.readline().strip() == "ready"
        print(f"load generator: {'wrk -t1' if shutil.which('wrk') else 'aiohttp (wrk not installed)'} in the client "
              f"pod and in the node, {args.connections} connections, {args.duration:.0f} s per run, {os.cpu_count()} CPUs")
        proxy, _ = await nft_proxy(node, [service("web", NFT_CLUSTER_IP)], [nft_slice("web", NFT_SERVER_POD)])
        task, _ = await nft_run(proxy)
        try:
            # From the client pod (direct: bridged; ClusterIP: routed by the node, then DNAT) and from
            # the node itself (both routed: the difference is the DNAT alone).
            for where, netns in (("from a pod", client), ("from the node", node)):
                direct, proxied = [], []
                for _ in range(args.rounds):
                    direct.append(await load(f"http://{NFT_SERVER_POD}:{POD_PORT}/", args.duration,
                                             args.connections, netns))
                    proxied.append(await load(f"http://{NFT_CLUSTER_IP}:{SERVICE_PORT}/", args.duration,
                                              args.connections, netns))
                report_pairs(where, direct, proxied)
        finally:
            await nft_stop(proxy, task)
            await proxy.cleanup()

        for count in args.services:
            services, slices = nft_objects(count, endpoints=args.endpoints)
            proxy, timed = await nft_proxy(node, services, slices)
            task, cold = await nft_run(proxy)
            cold_nft, lines = timed.applied, proxy.last_transaction.count("\n")
            if args.endpoints == 1:
                nft_check(client, services[-1]["spec"]["clusterIP"])
            try:
                # One new Service, then one endpoint moving (the pod is the same server, on its other port);
                # each an isolated change (after the batching window), from the informer event to the kernel.
                await asyncio.sleep(2 * proxy.min_sync_period)
                before, began = timed.applied, time.perf_counter()
                extra, extra_slices = nft_objects(count + 1, count)
                proxy.slices.apply(extra_slices[0])
                proxy.services.apply(extra[0])
                await proxy.wait_programmed()
                added, added_nft = time.perf_counter() - began, timed.applied - before
                added_lines = proxy.last_transaction.count("\n")
                nft_check(client, extra[0]["spec"]["clusterIP"])
                moved_slice = nft_slice(services[0]["metadata"]["name"], NFT_SERVER_POD)
                moved_slice["ports"][0]["port"] = POD_PORT + 1
                await asyncio.sleep(2 * proxy.min_sync_period)
                before, began = timed.applied, time.perf_counter()
                proxy.slices.apply(moved_slice)
                await proxy.wait_programmed()
                moved, moved_nft = time.perf_counter() - began, timed.applied - before
            finally:
                await nft_stop(proxy, task)
            # A restart: a new proxy over the rules the previous one left (lists them, rewrites all).
            restarted, timed2 = await nft_proxy(node, services, slices)
            task, warm = await nft_run(restarted)
            await nft_stop(restarted, task)
            if args.endpoints == 1:
                nft_check(client, services[-1]["spec"]["clusterIP"])
            print(f"\n{count:,} Services ({args.endpoints} endpoint(s) each; {lines:,} nft commands in the cold "
                  f"transaction):")
            print(f"  cold full sync (empty table to all programmed): {cold:.2f} s, of which nft {cold_nft:.2f} s")
            print(f"  restart full sync (rules of the previous run present): {warm:.2f} s, of which nft "
                  f"{timed2.applied:.2f} s")
            print(f"  incremental, one Service added ({added_lines} commands): {added * 1e3:.0f} ms "
                  f"(nft {added_nft * 1e3:.0f} ms); one endpoint moved: {moved * 1e3:.0f} ms "
                  f"(nft {moved_nft * 1e3:.0f} ms), event to kernel")
            await restarted.cleanup()
    finally:
        if backend is not None:
            os.killpg(backend.pid, signal.SIGTERM)
            backend.wait()
        nft_teardown(prefix)


def nft_teardown(prefix: str) -> None:
    """Delete the bench's namespaces (and with them every bridge, veth and rule in them)."""
    for ns in ("node", "client", "server"):
        subprocess.run(["ip", "netns", "del", f"{prefix}{ns}"], capture_output=True, timeout=30)


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=("userspace", "nftables"), default="userspace")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--endpoints", type=int, default=1, help="nftables mode: endpoints per programmed Service")
    parser.add_argument("--services", default="1000,10000",
                        type=lambda s: sorted(int(x) for x in s.split(",") if x))
    parser.add_argument("--backend", nargs=2, metavar=("IP", "PORT"), help=argparse.SUPPRESS)
    parser.add_argument("--client", metavar="URL", help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    ARGS = parse()
    if ARGS.backend:
        asyncio.run(_backend(ARGS.backend[0], int(ARGS.backend[1])))
    elif ARGS.client:
        asyncio.run(_client(ARGS.client, ARGS.duration, ARGS.connections))
    elif ARGS.mode == "nftables":
        asyncio.run(main_nftables(ARGS))
    else:
        asyncio.run(main(ARGS))
