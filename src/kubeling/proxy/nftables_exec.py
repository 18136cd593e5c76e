"""Running `nft` for the Service proxy: transactions, listings, the node's sysctls, a preflight check.

Every change goes to the kernel as one `nft -f -` batch, which nftables applies
atomically: either all of it holds or none of it does, so packets never see a half
programmed Service. With `netns` set, nft runs inside that named network namespace
(`ip netns exec`) and sysctls are written from a thread that entered it — how tests,
benchmarks and several nodes on one machine each get a node of their own.

The sysctls are the ones kube-proxy needs on a bridge network: `net.ipv4.ip_forward`
(DNATed traffic is forwarded) and, when the br_netfilter module is loaded,
`net.bridge.bridge-nf-call-iptables`, so that frames bridged between two pods of one
node pass the netfilter hooks. Without it, a pod that reaches a pod on the same bridge
through a ClusterIP gets the reply straight from the pod's own address (bridged, never
un-NATed) and the connection breaks; `prepare_node()` says whether it is on, and the
proxy masquerades all Service traffic when it is not.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from collections import Counter
from typing import Any, Protocol

from kubeling.network.netns import call_in_netns, netns_path
from kubeling.proxy.nftables_rules import FAMILY, TABLE, RuleSettings, render_service
from kubeling.proxy.nftables_transactions import cleanup_transaction, full_transaction
from kubeling.proxy.rules import Frontend

BRIDGE_NF_CALL_IPTABLES = "net.bridge.bridge-nf-call-iptables"
IP_FORWARD = "net.ipv4.ip_forward"
CAP_NET_ADMIN = 12


class NftError(Exception):
    """nft refused a command or a transaction (nothing of that transaction was applied)."""


def summarize(transaction: str, error: str, *, limit: int = 1500) -> str:
    """One readable line about a failed transaction: its size and kinds of commands, and nft's complaint."""
    kinds = Counter(" ".join(line.split()[:2]) for line in transaction.splitlines() if line.strip())
    shape = ", ".join(f"{n} {kind}" for kind, n in kinds.most_common(6))
    said = " | ".join(line.strip() for line in error.strip().splitlines() if line.strip())
    return f"transaction of {sum(kinds.values())} commands ({shape}): {said[:limit]}"


class NftRunner(Protocol):
    """What the proxy needs from nft (a fake in the tests that run without root)."""

    async def apply(self, transaction: str) -> None: ...

    async def existing(self) -> tuple[set[str], set[str], list[str]]: ...

    async def cleanup(self) -> None: ...


class Nft:
    """Runs nft for the proxy's table, inside the named network namespace `netns` when one is given."""

    timeout = 300.0  # a cold sync of tens of thousands of Services takes seconds, never minutes

    def __init__(self, netns: str | None = None, binary: str = "nft") -> None:
        self.netns = netns
        self.binary = binary

    def argv(self, *args: str) -> list[str]:
        argv = [self.binary, *args]
        return ["ip", "netns", "exec", self.netns, *argv] if self.netns else argv

    async def run(self, *args: str, stdin: str | None = None) -> str:
        proc = await asyncio.create_subprocess_exec(
            *self.argv(*args), stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            async with asyncio.timeout(self.timeout):
                out, err = await proc.communicate(stdin.encode() if stdin is not None else None)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise NftError(f"nft {' '.join(args)} did not finish in {self.timeout:.0f} s") from None
        if proc.returncode != 0:
            raise NftError(err.decode(errors="replace").strip() or f"nft exited with {proc.returncode}")
        return out.decode(errors="replace")

    async def apply(self, transaction: str) -> None:
        """Apply one transaction atomically; NftError (with a summary) if the kernel or nft refuses it."""
        try:
            await self.run("-f", "-", stdin=transaction)
        except NftError as err:
            raise NftError(summarize(transaction, str(err))) from None

    async def list_json(self, *what: str) -> list[dict[str, Any]]:
        """The objects of `nft -j list <what>` (without the metainfo entry)."""
        doc = json.loads(await self.run("-j", "list", *what) or "{}")
        return [o for o in doc.get("nftables") or [] if "metainfo" not in o]

    async def existing(self) -> tuple[set[str], set[str], list[str]]:
        """(our chains, our sets, other tables whose forward hook drops by default)."""
        chains: set[str] = set()
        dropping: list[str] = []
        for obj in await self.list_json("chains"):
            chain = obj.get("chain") or {}
            if chain.get("family") == FAMILY and chain.get("table") == TABLE:
                chains.add(str(chain.get("name")))
            elif chain.get("hook") == "forward" and chain.get("policy") == "drop":
                dropping.append(f"{chain.get('family')} {chain.get('table')} {chain.get('name')}")
        sets = {str((o.get("set") or {}).get("name")) for o in await self.list_json("sets", FAMILY)
                if (o.get("set") or {}).get("table") == TABLE}
        return chains, sets, dropping

    async def cleanup(self) -> None:
        """Delete the proxy's table and every rule in it (uninstall; fine when there is none)."""
        await self.apply(cleanup_transaction())


async def cleanup(netns: str | None = None) -> None:
    """Remove everything the nftables proxy programmed on this node (`kubeling` uninstall / reset)."""
    await Nft(netns).cleanup()


# -- sysctls --------------------------------------------------------------------------------------

def _sysctl_path(name: str) -> str:
    return "/proc/sys/" + name.replace(".", "/")


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _write(path: str, value: str) -> bool:
    """Write the value unless it is there already; False when the sysctl does not exist."""
    current = _read(path)
    if current is None:
        return False
    if current != value:
        with open(path, "w") as f:
            f.write(value)
    return True


async def read_sysctl(name: str, netns: str | None = None) -> str | None:
    """The value of a sysctl (in `netns`), or None if it does not exist there."""
    if netns is None:
        return _read(_sysctl_path(name))
    return await call_in_netns(netns_path(netns), _read, _sysctl_path(name))


async def write_sysctl(name: str, value: str, netns: str | None = None) -> bool:
    """Set a sysctl (in `netns`: /proc/sys/net is per network namespace); False if it does not exist."""
    if netns is None:
        return _write(_sysctl_path(name), value)
    return await call_in_netns(netns_path(netns), _write, _sysctl_path(name), value)


async def prepare_node(netns: str | None = None) -> bool:
    """Enable forwarding and bridge netfilter; returns whether bridged traffic passes netfilter."""
    await write_sysctl(IP_FORWARD, "1", netns)
    if not await write_sysctl(BRIDGE_NF_CALL_IPTABLES, "1", netns):
        return False  # br_netfilter is not loaded: nothing to set (and loading modules is the admin's call)
    return await read_sysctl(BRIDGE_NF_CALL_IPTABLES, netns) == "1"


# -- preflight ------------------------------------------------------------------------------------

def _has_net_admin() -> bool:
    status = _read("/proc/self/status") or ""
    match = re.search(r"^CapEff:\s*([0-9a-f]+)", status, re.M)
    return bool(match and int(match.group(1), 16) & (1 << CAP_NET_ADMIN))


def nftables_available(netns: str | None = None) -> str:
    """'' when the nftables proxy can run here (root, `nft`, a kernel that takes its rules), else why not.

    The check is `nft --check`: the kernel validates a sample transaction with every kind of
    rule the proxy writes and then discards it, so nothing is created, anywhere.
    """
    if not _has_net_admin():
        return "needs root (CAP_NET_ADMIN) to program nftables"
    nft = Nft(netns)
    if not shutil.which(nft.binary):
        return "needs the nft command (apt-get install nftables)"
    eps = (("10.42.0.2", 80), ("10.42.0.3", 80))
    sample = [Frontend(("TCP", "10.43.0.2", 80), "kube-system/probe", "p", "ClusterIP", eps, 10.0,
                       cluster_endpoints=eps),
              Frontend(("TCP", "10.0.0.1", 30000), "kube-system/probe", "p", "NodePort", (), 10.0,
                       local_policy=True, cluster_endpoints=eps)]
    settings = RuleSettings(cluster_cidr="10.42.0.0/16")
    text = full_transaction({"kube-system/probe": render_service(sample, settings)}, settings)
    try:
        proc = subprocess.run(nft.argv("--check", "-f", "-"), input=text, capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"cannot run nft: {err}"
    if proc.returncode != 0:
        first = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[0]
        return f"the kernel refuses the proxy's nftables rules: {first}"
    return ""
