"""The cluster DNS address as a local address of the node (root mode).

Why: in the root network mode pods live in their own network namespaces and
reach the node through the CNI bridge. Each node runs its own DNS server (the
NodeLocal DNSCache design), bound to the kube-dns ClusterIP, which is put on
the node's `lo` as a /32: a packet from a pod to that address is then
delivered locally on whichever node the pod runs, with no DNAT and no
cross-node hop. (NodeLocal DNSCache uses a dummy interface; `lo` needs no
kernel module.) The service proxy leaves the kube-dns Service alone — it is
labelled `service.kubernetes.io/service-proxy-name` — so nothing rewrites the
traffic on its way.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging

log = logging.getLogger(__name__)

DEVICE = "lo"


class LocalAddressError(Exception):
    """The address could not be added to the node."""


async def _ip(*args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec("ip", *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode or 0, (out or err).decode(errors="replace").strip()


async def has_local_address(address: str, device: str = DEVICE) -> bool:
    """Whether `address` is already configured on `device`."""
    code, out = await _ip("-o", "addr", "show", "dev", device)
    return code == 0 and any(f" {address}/" in line for line in out.splitlines())


async def add_local_address(address: str, device: str = DEVICE) -> bool:
    """Put `address`/32 on `device` unless it is there; True when this call added it.

    Loopback addresses (127/8) are local already and are left alone."""
    ip = ipaddress.ip_address(address)
    if ip.is_loopback or await has_local_address(address, device):
        return False
    prefix = 32 if ip.version == 4 else 128
    code, out = await _ip("addr", "add", f"{address}/{prefix}", "dev", device)
    if code != 0 and "File exists" not in out:
        raise LocalAddressError(f"cannot add {address} to {device}: {out}")
    log.info("cluster DNS address %s added to %s", address, device)
    return code == 0


async def remove_local_address(address: str, device: str = DEVICE) -> None:
    """Take `address` off `device` again (no error when it is gone already)."""
    prefix = 32 if ipaddress.ip_address(address).version == 4 else 128
    code, out = await _ip("addr", "del", f"{address}/{prefix}", "dev", device)
    if code != 0 and "Cannot assign" not in out:
        log.warning("cannot remove %s from %s: %s", address, device, out)
