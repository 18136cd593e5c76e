"""The root-mode pod network of one node: a Linux bridge on the node's podCIDR.

Why this shape: it is the network k3s/flannel and kubenet give a node — every pod has
its own network namespace with `eth0` on a veth whose other end sits on one bridge
(`kubeling0`), the bridge holds the podCIDR's first address and is the pods' default
gateway, `host-local` hands out addresses from the podCIDR the node IPAM controller
assigned (`spec.podCIDR`), and `portmap` implements `hostPort`. All of it is done by the
standard CNI plugins (Debian's `containernetworking-plugins`), so nothing here touches
netlink itself; cross-node reachability is `routes.NodeRoutes`' job.

`loopback` runs as its own one-plugin network with ifname `lo`, as containerd does:
it ignores the interface name and returns no addresses, so chaining it after `bridge`
would only blur the result the kubelet reads the pod IP from.

Masquerading: the bridge plugin's `ipMasq` NATs everything leaving the pod subnet —
including traffic to pods on *other* nodes, which Kubernetes' network model forbids
(pods must see each other's real IPs). When the `cluster_cidr` is known, bridge
masquerading is switched off and one nftables rule masquerades only traffic leaving the
cluster CIDR, like flannel's `--ip-masq`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

from kubeling.network.cni import CNI_VERSION, DEFAULT_BIN_DIRS, CNIError, CNIResult, NetworkPlugin
from kubeling.network.netns import create_netns, delete_netns, netns_exists, netns_path

log = logging.getLogger(__name__)

NAT_TABLE = "kubeling-podnet"


class PodNetworkError(Exception):
    """The node-level setup (masquerade rules) failed."""


def port_mappings_for_pod(pod: Mapping[str, Any]) -> list[dict[str, Any]]:
    """CNI `portMappings` capability args from a Pod's `containers[].ports[].hostPort`."""
    out: list[dict[str, Any]] = []
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if not p.get("hostPort"):
                continue
            out.append({"hostPort": int(p["hostPort"]), "containerPort": int(p["containerPort"]),
                        "protocol": str(p.get("protocol") or "TCP").lower(), "hostIP": p.get("hostIP") or ""})
    return out


class PodNetwork:
    """Sets up and tears down pod sandboxes (netns + CNI) on one node.

    `conf_dir` receives the generated conflist (for inspection and for other CNI tools);
    `state_dir` (default: `conf_dir`) holds host-local's allocations (`ipam/`) and the
    cached ADD results (`results/`), so nothing is written under /var/lib/cni.
    `node_netns` runs every host-side action inside that named namespace — how tests and
    multi-node-on-one-machine setups give each node its own network stack.
    """

    def __init__(self, node_pod_cidr: str, *, bridge: str = "kubeling0",
                 bin_dirs: list[str] | None = None, conf_dir: str,
                 state_dir: str | None = None, network_name: str = "kubeling",
                 cluster_cidr: str | None = None, ip_masq: bool = True, mtu: int | None = None,
                 node_netns: str | None = None, netns_prefix: str = "kl-pod-") -> None:
        net = ipaddress.ip_network(node_pod_cidr, strict=True)
        if net.version != 4:
            raise ValueError("only IPv4 podCIDRs are supported")
        if net.num_addresses < 4:
            raise ValueError(f"podCIDR {node_pod_cidr} is too small")
        if len(bridge) > 15:
            raise ValueError(f"bridge name {bridge!r} is longer than 15 characters")
        self.pod_cidr = str(net)
        self.cluster_cidr = str(ipaddress.ip_network(cluster_cidr, strict=False)) if cluster_cidr else None
        self.bridge = bridge
        self.bin_dirs = list(bin_dirs or DEFAULT_BIN_DIRS)
        self.conf_dir = conf_dir
        self.state_dir = state_dir or conf_dir
        self.network_name = network_name
        self.ip_masq = ip_masq
        self.mtu = mtu
        self.node_netns = node_netns
        self.netns_prefix = netns_prefix
        self.conf_list = self.build_conf_list()
        self.main = NetworkPlugin(self.conf_list, self.bin_dirs, exec_netns=node_netns,
                                  cache_dir=os.path.join(self.state_dir, "results"))
        self.loopback = NetworkPlugin(
            {"cniVersion": CNI_VERSION, "name": f"{network_name}-loopback", "plugins": [{"type": "loopback"}]},
            self.bin_dirs, exec_netns=node_netns)
        self._node_ready = False
        self._node_lock = asyncio.Lock()

    @property
    def gateway(self) -> str:
        """The bridge's address: the podCIDR's first host."""
        return str(next(ipaddress.ip_network(self.pod_cidr).hosts()))

    def build_conf_list(self) -> dict[str, Any]:
        """The node's CNI network configuration list (cniVersion 1.0.0)."""
        bridge: dict[str, Any] = {
            "type": "bridge",
            "bridge": self.bridge,
            "isGateway": True,
            # With the cluster CIDR known, one node-wide rule masquerades instead (see module doc).
            "ipMasq": self.ip_masq and self.cluster_cidr is None,
            "hairpinMode": True,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": self.pod_cidr, "gateway": self.gateway}]],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": os.path.join(self.state_dir, "ipam"),
            },
        }
        if self.mtu:
            bridge["mtu"] = self.mtu
        return {
            "cniVersion": CNI_VERSION,
            "name": self.network_name,
            "plugins": [
                bridge,
                {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
            ],
        }

    def write_conf(self) -> str:
        """Write the conflist to `conf_dir` (atomically); returns its path."""
        os.makedirs(self.conf_dir, exist_ok=True)
        path = os.path.join(self.conf_dir, f"10-{self.network_name}.conflist")
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.conf_list, f, indent=2)
        os.replace(tmp, path)
        return path

    def netns_name(self, pod_uid: str) -> str:
        return f"{self.netns_prefix}{pod_uid}"

    async def ensure_node(self) -> None:
        """One-time node setup: write the conflist, program the masquerade rule. Idempotent."""
        async with self._node_lock:
            if self._node_ready:
                return
            self.write_conf()
            if self.ip_masq and self.cluster_cidr:
                await self._program_masquerade()
            self._node_ready = True

    async def setup_pod(self, pod_uid: str, port_mappings: Iterable[Mapping[str, Any]] | None = None,
                        *, pod_name: str = "", pod_namespace: str = "") -> tuple[str, str]:
        """Create the pod's sandbox netns and wire it; returns (netns_path, pod_ip).

        On any failure the sandbox is torn down again, so a retry starts clean.
        """
        await self.ensure_node()
        name = self.netns_name(pod_uid)
        self._record_netns(pod_uid, present=True)  # before it exists: a crash right after still knows it
        path = await create_netns(name)
        caps = {"portMappings": [dict(m) for m in port_mappings]} if port_mappings else None
        args = self._cni_args(pod_name, pod_namespace, pod_uid)
        try:
            await self.loopback.add(pod_uid, path, "lo", cni_args=args)
            result = await self.main.add(pod_uid, path, "eth0", caps, cni_args=args)
            ip = result.pod_ip()
            if not ip:
                raise CNIError(999, f"CNI result has no pod IP: {result.raw}")
        except BaseException:
            try:
                await self.teardown_pod(pod_uid)
            except Exception as e:  # keep the original error
                log.warning("cleanup of pod %s failed: %s", pod_uid, e)
            raise
        return path, ip

    async def teardown_pod(self, pod_uid: str, *, pod_name: str = "", pod_namespace: str = "") -> None:
        """DEL the pod's attachments and delete its netns; safe to repeat."""
        name = self.netns_name(pod_uid)
        path = netns_path(name) if netns_exists(name) else ""
        args = self._cni_args(pod_name, pod_namespace, pod_uid)
        err: BaseException | None = None
        try:
            # DEL runs even without a netns so host-local and portmap release what they hold.
            await self.main.delete(pod_uid, path, "eth0", cni_args=args)
        except CNIError as e:
            err = e
        if path:
            try:
                await self.loopback.delete(pod_uid, path, "lo", cni_args=args)
            except CNIError as e:
                err = err or e
        await delete_netns(name)
        self._record_netns(pod_uid, present=False)
        if err is not None:
            raise err

    async def check_pod(self, pod_uid: str) -> None:
        """CNI CHECK of the pod's attachment; raises CNIError when the wiring drifted."""
        await self.main.check(pod_uid, netns_path(self.netns_name(pod_uid)), "eth0")

    def pod_result(self, pod_uid: str) -> CNIResult | None:
        """The cached ADD result (survives a restart through `state_dir`)."""
        return self.main.cached_result(pod_uid, "eth0")

    def known_pods(self) -> set[str]:
        """Uids of every pod this node's network holds something for: a sandbox netns, a cached ADD
        result or a host-local reservation. A restarted kubelet tears down those of deleted pods.

        Only this network's own state counts (`state_dir`), never a scan of /run/netns: nodes that
        share a machine (the multi-node tests) share /run/netns, and one must not take another's pods.
        """
        uids = set(_listdir(os.path.join(self.state_dir, "netns")))
        results, head, tail = os.path.join(self.state_dir, "results"), f"{self.network_name}-", "-eth0.json"
        uids.update(n[len(head):-len(tail)] for n in _listdir(results)
                    if n.startswith(head) and n.endswith(tail) and len(n) > len(head) + len(tail))
        ipam = os.path.join(self.state_dir, "ipam", self.network_name)
        for name in _listdir(ipam):
            try:
                ipaddress.ip_address(name)  # reservations are named by address; skip lock/last_reserved_ip
                with open(os.path.join(ipam, name)) as f:
                    owner = f.read().split()
            except (ValueError, OSError):
                continue
            if owner:
                uids.add(owner[0])
        return uids

    def _record_netns(self, pod_uid: str, *, present: bool) -> None:
        """Keep `<state_dir>/netns/<uid>` in step with the pod's namespace (see `known_pods`)."""
        path = os.path.join(self.state_dir, "netns", pod_uid)
        if present:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(self.netns_name(pod_uid) + "\n")
        elif os.path.exists(path):
            os.unlink(path)

    @staticmethod
    def _cni_args(pod_name: str, pod_namespace: str, pod_uid: str) -> dict[str, str]:
        # The same CNI_ARGS the kubelet passes (plugins ignore keys they do not know).
        args = {"IgnoreUnknown": "1"}
        if pod_name:
            args.update(K8S_POD_NAMESPACE=pod_namespace or "default", K8S_POD_NAME=pod_name,
                        K8S_POD_INFRA_CONTAINER_ID=pod_uid, K8S_POD_UID=pod_uid)
        return args

    async def _program_masquerade(self) -> None:
        ruleset = (
            f"add table ip {NAT_TABLE}\n"
            f"flush table ip {NAT_TABLE}\n"
            f"table ip {NAT_TABLE} {{\n"
            "  chain postrouting {\n"
            "    type nat hook postrouting priority srcnat; policy accept;\n"
            f"    ip saddr {self.pod_cidr} ip daddr != {self.cluster_cidr} masquerade\n"
            "  }\n"
            "}\n"
        )
        argv = ["nft", "-f", "-"]
        if self.node_netns:
            argv = ["ip", "netns", "exec", self.node_netns, *argv]
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate(ruleset.encode())
        if proc.returncode != 0:
            raise PodNetworkError(f"nft masquerade rule: {err.decode(errors='replace').strip()}")


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []
