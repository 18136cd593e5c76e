"""The data path of the userspace proxy: endpoint choice, TCP splicing and UDP relaying.

Speed matters here more than anywhere else in the proxy: every byte of every
proxied connection crosses this code twice. So the TCP path uses asyncio's
low-level Protocol/Transport API rather than streams — `data_received` hands the
chunk (up to 256 KiB per read) straight to the peer transport's `write`, which
sends it at once when the socket has room; no StreamReader buffer, no
coroutine wake-up per chunk. Back-pressure is the transports' own: when one
side's write buffer passes its high-water mark the *other* side stops reading
(pause_writing → pause_reading), so a slow client never makes the proxy buffer
a fast backend's whole response. Half-closes are forwarded (write_eof), as a
kernel NAT would.

`Backends` is the mutable endpoint set of one frontend. The proxy swaps its
contents in place on EndpointSlice changes, so a listener is never restarted to
change where *new* connections go, and established connections (which keep
their own transports) are untouched, as conntrack entries are under kube-proxy.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Any, cast

from kubeling.proxy.rules import Endpoint

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0
CONNECT_ATTEMPTS = 3  # kube-proxy's userspace mode also retried other endpoints on a failed dial
WRITE_HIGH_WATER = 1024 * 1024
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


class ConnectionTracker:
    """Every spliced connection and pending task of one proxy, so that stop() leaves nothing behind."""

    def __init__(self) -> None:
        self.transports: set[asyncio.BaseTransport] = set()
        self.tasks: set[asyncio.Task[Any]] = set()

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
        for transport in list(self.transports):
            transport.abort() if hasattr(transport, "abort") else transport.close()
        self.transports.clear()
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class _Pipe(asyncio.Protocol):
    """One side of a spliced TCP connection: what it reads, its peer writes."""

    def __init__(self, tracker: ConnectionTracker) -> None:
        self.tracker = tracker
        self.transport: asyncio.Transport | None = None
        self.peer: _Pipe | None = None
        self.eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self.tracker.transports.add(transport)

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is not None and peer.transport is not None:
            peer.transport.write(data)

    def eof_received(self) -> bool:
        self.eof = True
        peer = self.peer
        if peer is None or peer.transport is None or peer.eof or not peer.transport.can_write_eof():
            return False  # both directions done (or half-close impossible): close
        peer.transport.write_eof()
        return True  # keep the other direction open

    # Our write buffer is full: stop reading from the side that fills it.
    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.tracker.transports.discard(self.transport)
        peer = self.peer
        if peer is not None and peer.transport is not None and not peer.transport.is_closing():
            peer.transport.close()  # flushes what is still buffered first


class ClientSide(_Pipe):
    """An accepted client connection: held (not read) until a backend connection is up."""

    def __init__(self, backends: Backends, tracker: ConnectionTracker) -> None:
        super().__init__(tracker)
        self.backends = backends
        self._dial: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert self.transport is not None
        self.transport.pause_reading()
        peer = transport.get_extra_info("peername") or ("", 0)
        self._dial = self.tracker.spawn(self._connect(str(peer[0])), "proxy-dial")

    async def _connect(self, client_ip: str) -> None:
        loop = asyncio.get_running_loop()
        tried: set[Endpoint] = set()
        for _ in range(CONNECT_ATTEMPTS):
            endpoint = self.backends.pick(client_ip, tried)
            if endpoint is None:
                break
            backend = _Pipe(self.tracker)
            try:
                await asyncio.wait_for(loop.create_connection(lambda b=backend: b, endpoint[0], endpoint[1]),
                                       CONNECT_TIMEOUT)
            except (OSError, TimeoutError) as err:
                log.debug("dial %s:%d failed: %s", endpoint[0], endpoint[1], err)
                tried.add(endpoint)
                continue
            if self.transport is None or self.transport.is_closing():
                if backend.transport is not None:
                    backend.transport.close()
                return
            backend.peer, self.peer = self, backend
            self.transport.resume_reading()
            return
        if self.transport is not None:
            self.transport.close()  # no endpoint (or none answered): the client sees the connection end

    def connection_lost(self, exc: Exception | None) -> None:
        if self._dial is not None and not self._dial.done():
            self._dial.cancel()
        super().connection_lost(exc)


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
