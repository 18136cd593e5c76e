"""Endpoint choice and UDP relaying for the userspace proxy (TCP splicing is in `splice`).

`Backends` is the mutable endpoint set of one frontend. The proxy swaps its
contents in place on EndpointSlice changes, so a listener is never restarted to
change where *new* connections go, and established connections (which keep
their own sockets) are untouched, as conntrack entries are under kube-proxy.
ClientIP session affinity lives here too: a client address maps to the
endpoint it last used until `timeoutSeconds` pass without a new connection, or
until that endpoint leaves the set.

UDP has no connections, so — like kube-proxy's userspace mode — each client
address gets a *session*: a connected socket to one chosen endpoint whose
replies are sent back from the service address, ended after an idle timeout
or when its endpoint leaves.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Any, Protocol, cast

from kubeling.proxy.rules import Endpoint

log = logging.getLogger(__name__)

COPY_BUFFER = 256 * 1024
UDP_IDLE_TIMEOUT = 30.0
AFFINITY_SWEEP_SIZE = 8192


class Backends:
    """The endpoints one frontend forwards to, with ClientIP session affinity."""

    __slots__ = ("endpoints", "affinity_timeout", "_members", "_sticky")

    def __init__(self, endpoints: tuple[Endpoint, ...] = (), affinity_timeout: float | None = None) -> None:
        self.endpoints: tuple[Endpoint, ...] = ()
        self.affinity_timeout: float | None = None
        self._members: frozenset[Endpoint] = frozenset()
        self._sticky: dict[str, tuple[Endpoint, float]] = {}
        self.update(endpoints, affinity_timeout)

    def update(self, endpoints: tuple[Endpoint, ...], affinity_timeout: float | None) -> None:
        """Swap in a new endpoint set; sticky clients of a removed endpoint are re-balanced on next use."""
        self.endpoints = endpoints
        self._members = frozenset(endpoints)
        if affinity_timeout is None:
            self._sticky.clear()
        self.affinity_timeout = affinity_timeout

    def contains(self, endpoint: Endpoint) -> bool:
        return endpoint in self._members

    def pick(self, client_ip: str, exclude: frozenset[Endpoint] | set[Endpoint] = frozenset()) -> Endpoint | None:
        """A random endpoint (the sticky one for this client while its affinity lasts); None if there is none."""
        candidates = self.endpoints
        if exclude:
            candidates = tuple(e for e in candidates if e not in exclude)
        if not candidates:
            return None
        timeout = self.affinity_timeout
        if timeout is None:
            return candidates[0] if len(candidates) == 1 else random.choice(candidates)
        now = time.monotonic()
        hit = self._sticky.get(client_ip)
        if hit is not None and now - hit[1] < timeout and hit[0] in self._members and hit[0] not in exclude:
            chosen = hit[0]
        else:
            chosen = random.choice(candidates)
        self._sticky[client_ip] = (chosen, now)
        if len(self._sticky) > AFFINITY_SWEEP_SIZE:
            self.sweep(now)
        return chosen

    def sweep(self, now: float | None = None) -> None:
        """Forget expired affinities (bounded memory with many clients)."""
        if self.affinity_timeout is None:
            return
        now = time.monotonic() if now is None else now
        limit = self.affinity_timeout
        for ip in [ip for ip, (_, seen) in self._sticky.items() if now - seen >= limit]:
            del self._sticky[ip]


class Closable(Protocol):
    def close(self) -> None: ...


class ConnectionTracker:
    """Every spliced connection and pending task of one proxy, so that stop() leaves nothing behind.

    It also owns the proxy's copy buffer: one per event loop is enough, because
    a chunk is sent on in the same callback that read it (a remainder the
    kernel did not take is copied out), so no connection holds it across callbacks.
    """

    def __init__(self, buffer_size: int = COPY_BUFFER) -> None:
        self.conns: set[Closable] = set()
        self.tasks: set[asyncio.Task[Any]] = set()
        self.buffer = memoryview(bytearray(buffer_size))

    def spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self._reap)
        return task

    def _reap(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("proxy task %s failed", task.get_name(), exc_info=task.exception())

    async def close(self) -> None:
        for conn in list(self.conns):
            conn.close()
        self.conns.clear()
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class _UDPSession(asyncio.DatagramProtocol):
    """One client address's flow to its chosen endpoint (a connected UDP socket)."""

    def __init__(self, frontend: UDPFrontend, client: tuple[str, int], endpoint: Endpoint) -> None:
        self.frontend = frontend
        self.client = client
        self.endpoint = endpoint
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: list[bytes] | None = []
        self.last_used = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        for data in self.pending or ():
            self.transport.sendto(data)
        self.pending = None

    def send(self, data: bytes) -> None:
        self.last_used = time.monotonic()
        if self.transport is not None:
            self.transport.sendto(data)
        elif self.pending is not None and len(self.pending) < 64:
            self.pending.append(data)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.last_used = time.monotonic()
        out = self.frontend.transport
        if out is not None:
            out.sendto(data, self.client)

    def error_received(self, exc: Exception) -> None:
        log.debug("udp to %s: %s", self.endpoint, exc)  # e.g. ICMP port unreachable: UDP is lossy anyway

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class UDPFrontend(asyncio.DatagramProtocol):
    """A UDP listener relaying datagrams per client address to a sticky endpoint, with idle expiry."""

    def __init__(self, backends: Backends, tracker: ConnectionTracker,
                 idle_timeout: float = UDP_IDLE_TIMEOUT) -> None:
        self.backends = backends
        self.tracker = tracker
        self.idle_timeout = idle_timeout
        self.transport: asyncio.DatagramTransport | None = None
        self.sessions: dict[tuple[str, int], _UDPSession] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        client = (str(addr[0]), int(addr[1]))
        session = self.sessions.get(client)
        if session is None:
            endpoint = self.backends.pick(client[0])
            if endpoint is None:
                return  # no endpoint: dropped, as a REJECT-less UDP rule would
            session = _UDPSession(self, client, endpoint)
            self.sessions[client] = session
            self.tracker.spawn(self._open(session), "proxy-udp-dial")
        session.send(data)

    async def _open(self, session: _UDPSession) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.create_datagram_endpoint(lambda: session, remote_addr=session.endpoint)
        except OSError as err:
            log.debug("udp dial %s failed: %s", session.endpoint, err)
            self.sessions.pop(session.client, None)
            return
        if self.sessions.get(session.client) is not session:
            session.close()  # the frontend closed or the session was pruned meanwhile

    def prune(self, now: float | None = None, *, keep: Callable[[Endpoint], bool] | None = None) -> None:
        """End idle sessions, and sessions to endpoints the backends no longer hold."""
        now = time.monotonic() if now is None else now
        keep = keep or self.backends.contains
        for client, session in list(self.sessions.items()):
            if now - session.last_used >= self.idle_timeout or not keep(session.endpoint):
                del self.sessions[client]
                session.close()

    def close(self) -> None:
        for session in self.sessions.values():
            session.close()
        self.sessions.clear()
        if self.transport is not None:
            self.transport.close()
