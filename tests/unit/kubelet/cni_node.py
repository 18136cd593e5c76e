"""A one-node cluster in CNI mode, run *inside* a test-created node network namespace.

`python -m tests.unit.kubelet.cni_node <work dir> <netns prefix> <plugin dir> <node ip>` is started by
test_kubelet_cni_root.py with `ip netns exec <node ns>`: the kubelet must live in the node's network
namespace (its bridge, routes, iptables and nft rules are the node's), so it runs in a process of its
own. Here: an API server on the namespace's loopback, the node IPAM controller, and a real Kubelet on
the process runtime with `pod_network="cni"`. It drives pods through their life and prints one JSON
line of observations for the test to check; a failed step raises (non-zero exit, traceback on stderr).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import sys
from pathlib import Path
from typing import Any

from kubeling.client import resources as r
from kubeling.client.rest import KubeClient
from kubeling.controllers.base import InformerFactory
from kubeling.controllers.nodeipam import NodeIpamController
from kubeling.kubelet.kubelet import Kubelet
from kubeling.runtime.process import ProcessRuntime
from tests.unit.apiserver.live import live_apiserver
from tests.unit.kubelet.harness import fast_options

NODE = "node-a"
Obj = dict[str, Any]


async def wait_for(client: KubeClient, name: str, check: Any, within: float = 30.0) -> Obj:
    deadline = asyncio.get_running_loop().time() + within
    last: Obj | None = None
    while asyncio.get_running_loop().time() < deadline:
        try:
            last = await client.get(r.PODS, name, namespace="default")
            if check(last):
                return last
        except Exception as err:  # 404 while being created / after deletion
            if check is gone and getattr(err, "code", 0) == 404:
                return {}
        await asyncio.sleep(0.05)
    raise AssertionError(f"pod {name} never got there; last status: {(last or {}).get('status')}")


async def until(check: Any, within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        if check():
            return
        await asyncio.sleep(0.05)


def gone(_pod: Obj) -> bool:
    return False


def ready(pod: Obj) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions") or [])


def succeeded(pod: Obj) -> bool:
    return pod["status"].get("phase") in ("Succeeded", "Failed")


def pod(name: str, command: list[str], **spec: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": NODE, "containers": [{"name": "c", "image": "host", "command": command}], **spec}}


def log_of(root: Path, p: Obj) -> str:
    meta = p["metadata"]
    path = root / "kubelet" / "pods" / f"default_{meta['name']}_{meta['uid']}" / "c" / "0.log"
    return "\n".join(line.split(" ", 3)[3] for line in path.read_text().splitlines())


class Node:
    """The kubelet of the scenario, started and stopped like `kubeling agent` does it."""

    def __init__(self, client: KubeClient, root: Path, prefix: str, plugin_dir: str, node_ip: str) -> None:
        self.client, self.root = client, root
        self.options = dict(pod_network="cni", cni_bin_dirs=[plugin_dir], pod_netns_prefix=prefix,
                            cluster_cidr="10.42.0.0/16")
        self.node_ip = node_ip
        self.kubelet: Kubelet | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> Kubelet:
        runtime = ProcessRuntime(str(self.root / "runtime"), cgroup_parent=f"kubeling-test-cni-{os.getpid()}")
        self.kubelet = Kubelet(self.client, node_name=NODE, runtime=runtime, root_dir=str(self.root / "kubelet"),
                               address=self.node_ip, options=fast_options(**self.options))
        self.task = asyncio.create_task(self.kubelet.run())
        await asyncio.wait_for(self.kubelet.ready.wait(), 30)
        return self.kubelet

    async def stop(self) -> None:
        assert self.kubelet is not None and self.task is not None
        await self.kubelet.shutdown()
        await asyncio.wait_for(self.task, 30)


def netns_of(prefix: str) -> list[str]:
    return sorted(n for n in os.listdir("/run/netns") if n.startswith(prefix)) if os.path.isdir("/run/netns") else []


async def scenario(root: Path, prefix: str, plugin_dir: str, node_ip: str) -> Obj:
    seen: Obj = {"node_netns": os.readlink("/proc/self/ns/net")}
    async with live_apiserver(root) as (_server, client):
        informers = InformerFactory(client)
        ipam = NodeIpamController(client, informers)
        await informers.start()
        ipam_task = asyncio.create_task(ipam.run())
        node = Node(client, root, prefix, plugin_dir, node_ip)
        try:
            await node.start()
            seen["pod_cidr"] = (await client.get(r.NODES, NODE))["spec"]["podCIDR"]
            seen["ready_condition"] = next(c["status"] for c in (await client.get(r.NODES, NODE))["status"]
                                           ["conditions"] if c["type"] == "Ready")
            # A web server whose readiness probe the kubelet sends from the node to the pod IP.
            await client.create(r.PODS, pod("web", [sys.executable, "-m", "http.server", "8080"],
                                            containers=[{"name": "c", "image": "host",
                                                         "command": [sys.executable, "-m", "http.server", "8080"],
                                                         "readinessProbe": {"httpGet": {"port": 8080},
                                                                            "periodSeconds": 1}}]))
            web = await wait_for(client, "web", ready)
            seen["web"] = {"ip": web["status"]["podIP"], "host_ip": web["status"]["hostIP"],
                           "netns": netns_of(prefix)}
            # A second pod reaches it over the bridge, and shows what a container sees.
            fetch = f"import urllib.request; print(urllib.request.urlopen('http://{web['status']['podIP']}:8080/').status)"
            await client.create(r.PODS, pod("client", ["sh", "-c", "readlink /proc/self/ns/net; hostname; "
                                                       "cat /etc/resolv.conf; echo ---; cat /etc/hosts; echo ---; "
                                                       f"{sys.executable} -c \"{fetch}\""],
                                            restartPolicy="Never", subdomain="sub"))
            done = await wait_for(client, "client", succeeded)
            seen["client"] = {"phase": done["status"]["phase"], "ip": done["status"]["podIP"],
                              "log": log_of(root, done), "uid": done["metadata"]["uid"]}
            # A finished pod's network is released right after its final status is written.
            await until(lambda: netns_of(prefix) == seen["web"]["netns"])
            seen["after_client_finished"] = netns_of(prefix)
            await client.create(r.PODS, pod("hostnet", ["readlink", "/proc/self/ns/net"], restartPolicy="Never",
                                            hostNetwork=True))
            done = await wait_for(client, "hostnet", succeeded)
            seen["hostnet"] = {"phase": done["status"]["phase"], "ip": done["status"]["podIP"],
                               "log": log_of(root, done)}
            await client.delete(r.PODS, "web", namespace="default")
            await wait_for(client, "web", gone)
            seen["after_web_deleted"] = netns_of(prefix)
            seen["results_after_web_deleted"] = sorted(os.listdir(root / "kubelet" / "cni" / "state" / "results"))
            # A graceful node stop takes the running pod's namespace with it; a restart gives it a new one.
            await client.create(r.PODS, pod("again", ["sleep", "300"]))
            first = await wait_for(client, "again", lambda p: p["status"].get("phase") == "Running")
            seen["again_before"] = {"ip": first["status"]["podIP"], "netns": netns_of(prefix)}
            await node.stop()
            seen["after_stop"] = netns_of(prefix)
            await node.start()
            second = await wait_for(client, "again", lambda p: p["status"].get("phase") == "Running"
                                    and p["status"]["containerStatuses"][0]["restartCount"] == 1)
            seen["again_after"] = {"ip": second["status"]["podIP"], "netns": netns_of(prefix)}
            await node.stop()
            seen["after_final_stop"] = netns_of(prefix)
            ipam_dir = root / "kubelet" / "cni" / "state" / "ipam" / "kubeling"
            seen["ipam_left"] = sorted(n for n in os.listdir(ipam_dir) if _is_ip(n)) if ipam_dir.exists() else []
        finally:
            if node.task is not None and not node.task.done():
                await node.stop()
            ipam_task.cancel()
            await asyncio.gather(ipam_task, return_exceptions=True)
            await informers.stop()
    return seen


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def main() -> None:
    root, prefix, plugin_dir, node_ip = sys.argv[1:5]
    seen = asyncio.run(scenario(Path(root), prefix, plugin_dir, node_ip))
    print(json.dumps(seen), flush=True)


if __name__ == "__main__":
    main()
