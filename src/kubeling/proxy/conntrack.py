"""Clearing stale UDP conntrack entries once the Service rules changed (kube-proxy's conntrack cleanup).

Why. NAT is decided on the first packet of a flow only; conntrack remembers the decision
for every later packet. A UDP "flow" is just a 4-tuple whose entry lives as long as the
client keeps sending (30 s after the last datagram, 120 s once it is assured), so a client
that sends from a fixed port — a DNS resolver, a game, a metrics agent — keeps talking to
an endpoint long after it left the Service, and a flow that conntrack saw before its
Service was programmed keeps bypassing the DNAT. TCP needs none of this: the old
connection breaks and the client opens a new one, which the new rules see.

What, as kube-proxy does it (pkg/proxy/conntrack/cleanup.go, the diff-based
`deleteStaleServiceConntrackEntries`/`deleteStaleEndpointConntrackEntries`), for UDP (and
SCTP, should the proxy ever serve it) Service ports, comparing what was served with what
is served now (`stale_flows`):

- an endpoint that no longer serves a Service port (removed, or not serving any more):
  the flows DNATed to it, through every frontend of that port (ClusterIP, externalIPs,
  LoadBalancer IPs: `--orig-dst A --orig-port-dst P --dst-nat E --reply-port-src T`; the
  NodePort, on any address: `--orig-port-dst N --dst-nat E --reply-port-src T`);
- a frontend that goes from no endpoints to some — or appears with endpoints, which is
  every frontend on the first sync after a start, when nothing is known about the past —:
  every flow to it (`--orig-dst A --orig-port-dst P`, `--orig-port-dst N`);
- a frontend that goes away while it had endpoints (its Service or port deleted): every
  flow to it, so its clients stop reaching the old endpoints.

Traffic policies and topology do not matter, and an endpoint that is terminating but still
serving keeps its flows, as TCP connections keep theirs: only "serving" counts. Endpoints
are address and port (kube-proxy filters on the address alone): a pod whose port changed
loses the flows to its old port only.

When and how. Only after the transaction is in the kernel — deleted earlier, the next
datagram would recreate the entry through the old rules. With the `conntrack` tool (Debian's
`conntrack` package), one process per filter, inside the proxy's network namespace, a few at a
time, in the background (`ConntrackCleaner`): the sync loop never waits for them. Without
the tool the proxy warns once and carries on with stale flows timing out on their own.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from kubeling.proxy.rules import Endpoint, Frontend

log = logging.getLogger(__name__)

CLEARED_PROTOCOLS = ("UDP", "SCTP")  # connectionless to the client: nothing else notices a stale DNAT
NOTHING_DELETED = re.compile(r"\b0 flow entries have been deleted")
DELETED = re.compile(r"\b(\d+) flow entries have been deleted")

Target = tuple[str, str, int]  # (protocol, frontend address, port); address "" = a NodePort, on any address
Served = Mapping[Target, frozenset[Endpoint]]  # each frontend -> the endpoints its flows may reach


def _ipv4(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).version == 4
    except ValueError:
        return False


def serving_endpoints(slices: Iterable[Mapping[str, Any]], port_name: str, protocol: str) -> frozenset[Endpoint]:
    """The IPv4 endpoints serving one Service port, ready or terminating (kube-proxy's IsServing)."""
    serving: set[Endpoint] = set()
    for slice_ in slices:
        numbers = [int(p["port"]) for p in slice_.get("ports") or []
                   if (p.get("name") or "") == port_name and (p.get("protocol") or "TCP") == protocol and p.get("port")]
        if not numbers:
            continue
        for ep in slice_.get("endpoints") or []:
            addresses = ep.get("addresses") or []
            cond = ep.get("conditions") or {}
            # EndpointSlice: a nil `serving` means the same as `ready`; a nil `ready` means ready.
            ready = cond.get("ready") is not False and cond.get("terminating") is not True
            is_serving = ready if cond.get("serving") is None else cond.get("serving") is True
            if addresses and is_serving and _ipv4(str(addresses[0])):
                serving.add((str(addresses[0]), numbers[0]))  # the first address, as the rules use
    return frozenset(serving)


def served_flows(frontends: Iterable[Frontend],
                 slices: Iterable[Mapping[str, Any]]) -> dict[Target, frozenset[Endpoint]]:
    """What the programmed `frontends` of one Service serve, as far as conntrack cleanup cares (UDP and SCTP)."""
    slices = list(slices)
    endpoints: dict[tuple[str, str], frozenset[Endpoint]] = {}
    out: dict[Target, frozenset[Endpoint]] = {}
    for frontend in frontends:
        protocol, address, port = frontend.key
        if protocol not in CLEARED_PROTOCOLS:
            continue
        if (frontend.port_name, protocol) not in endpoints:
            endpoints[(frontend.port_name, protocol)] = serving_endpoints(slices, frontend.port_name, protocol)
        target = (protocol, "" if frontend.kind == "NodePort" else address, port)
        out[target] = endpoints[(frontend.port_name, protocol)]
    return out


@dataclass(frozen=True, order=True)
class StaleFlows:
    """One `conntrack -D` filter: the flows to a frontend, or only those DNATed to one endpoint of it."""

    protocol: str
    address: str  # "" for a NodePort: its flows arrive on any address of the node
    port: int
    endpoint: str = ""  # "" for every flow to the frontend
    endpoint_port: int = 0

    @property
    def args(self) -> tuple[str, ...]:
        args = ["-D", "-p", self.protocol.lower()]
        if self.address:
            args += ["--orig-dst", self.address]
        args += ["--orig-port-dst", str(self.port)]
        if self.endpoint:
            # The flows DNATed to that endpoint (--dst-nat IP: NATed, replies from IP), on that port.
            args += ["--dst-nat", self.endpoint, "--reply-port-src", str(self.endpoint_port)]
        return tuple(args)

    def __str__(self) -> str:
        where = f"{self.address}:{self.port}" if self.address else f"NodePort {self.port}"
        return f"{self.protocol} {where}" + (f" DNATed to {self.endpoint}:{self.endpoint_port}"
                                            if self.endpoint else "")


def stale_flows(old: Served, new: Served) -> list[StaleFlows]:
    """The flows to delete once the rules went from serving `old` to serving `new` (module docstring)."""
    flows: set[StaleFlows] = set()
    for target in old.keys() | new.keys():
        before, after = old.get(target, frozenset()), new.get(target, frozenset())
        if after and not before:
            flows.add(StaleFlows(*target))  # newly active (or newly programmed): earlier flows bypassed the DNAT
        elif before and target not in new:
            flows.add(StaleFlows(*target))  # the frontend is gone
        else:  # one filter per endpoint that left, never one for every flow as well
            flows.update(StaleFlows(*target, endpoint=ip, endpoint_port=port) for ip, port in before - after)
    return sorted(flows)


# -- running conntrack ----------------------------------------------------------------------------

class ConntrackError(Exception):
    """conntrack could not delete (some of) the flows of one filter."""


class ConntrackMissing(ConntrackError):
    """The conntrack tool is not installed."""


class ConntrackRunner(Protocol):
    """What the cleaner needs from conntrack (a fake in the tests that run without root)."""

    async def delete(self, flows: StaleFlows) -> int: ...


class Conntrack:
    """Runs the conntrack tool, inside the named network namespace `netns` when one is given."""

    timeout = 30.0

    def __init__(self, netns: str | None = None, binary: str = "conntrack") -> None:
        self.netns = netns
        self.binary = binary

    def argv(self, *args: str) -> list[str]:
        argv = [self.binary, *args]
        return ["ip", "netns", "exec", self.netns, *argv] if self.netns else argv

    async def delete(self, flows: StaleFlows) -> int:
        """Delete the flows matching one filter; how many there were (none is no error)."""
        if shutil.which(self.binary) is None:
            raise ConntrackMissing(f"{self.binary} not found (apt-get install conntrack)")
        proc = await asyncio.create_subprocess_exec(*self.argv(*flows.args), stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            async with asyncio.timeout(self.timeout):
                out, err = await proc.communicate()
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise ConntrackError(f"conntrack {' '.join(flows.args)} did not finish in {self.timeout:.0f} s") from None
        said = (err + out).decode(errors="replace").strip()
        if proc.returncode == 1 and NOTHING_DELETED.search(said):
            return 0  # conntrack exits 1 when no entry matched
        if proc.returncode != 0:
            raise ConntrackError(said or f"conntrack exited with {proc.returncode}")
        match = DELETED.search(said)
        return int(match.group(1)) if match else 0


class ConntrackCleaner:
    """Deletes stale flows in the background, at most `limit` conntrack processes at a time.

    Filters waiting for a process are deduplicated; failures are logged, never raised: a
    flow that could not be deleted only lives on until it times out.
    """

    def __init__(self, runner: ConntrackRunner, *, limit: int = 4) -> None:
        self.runner = runner
        self.limit = limit
        self.deleted = 0  # entries deleted so far (diagnostics and tests)
        self.failed = 0
        self._waiting: dict[StaleFlows, None] = {}  # an ordered set
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._warned_missing = False

    def clear(self, flows: Iterable[StaleFlows]) -> None:
        """Queue the deletion of these flows (call it once their new rules are in the kernel)."""
        for f in flows:
            self._waiting[f] = None
        if self._waiting:
            self._idle.clear()
            self._start()

    async def wait_idle(self) -> None:
        """Until every deletion queued so far has been done (or has failed)."""
        await self._idle.wait()

    def _start(self) -> None:
        while self._waiting and len(self._tasks) < self.limit:
            flows = next(iter(self._waiting))
            del self._waiting[flows]
            task = asyncio.create_task(self._delete(flows), name="conntrack-cleanup")
            self._tasks.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._start()
        if not self._tasks and not self._waiting:
            self._idle.set()

    async def _delete(self, flows: StaleFlows) -> None:
        try:
            deleted = await self.runner.delete(flows)
        except ConntrackMissing as err:
            if not self._warned_missing:
                self._warned_missing = True
                log.warning("cannot clear stale UDP conntrack entries: %s; a UDP client may keep reaching a "
                            "removed endpoint until its flow times out", err)
            self._waiting.clear()  # nothing else can be deleted either
            return
        except ConntrackError as err:
            self.failed += 1
            log.error("clearing stale conntrack entries (%s) failed: %s", flows, err)
            return
        except Exception:
            self.failed += 1
            log.exception("clearing stale conntrack entries (%s) failed", flows)
            return
        self.deleted += deleted
        if deleted:
            log.info("deleted %d stale conntrack entries: %s", deleted, flows)

    async def close(self) -> None:
        """Drop what is queued and stop the running deletions (a restart clears every Service's flows anyway)."""
        self._waiting.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._idle.set()
