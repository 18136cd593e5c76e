"""TCP splicing for the userspace proxy, on raw non-blocking sockets and the loop's reader callbacks.

Every byte of every proxied connection crosses this code twice, and the
proxy's goal is at least half the request rate of talking to the pod directly
(Kubernetes' own userspace proxy managed about a third). asyncio's
Protocol/Transport layers cost several Python calls per chunk (read-ready
checks, a fresh 256 KiB bytes object per recv, `data_received`, the write
path's state checks) and streams cost far more, so a connection here is just
two sockets registered with `loop.add_reader`: on readable, `recv_into` one
shared buffer and `send` the chunk straight to the peer — two syscalls and
two Python calls per chunk, no allocation.

Back-pressure: if the peer's socket does not take the whole chunk, the rest
is copied out of the shared buffer, reading from that side stops and a writer
callback drains the rest first — so the proxy holds at most one chunk per
direction, however fast one side and slow the other. A read of 0 bytes is a
half-close, forwarded with `shutdown(SHUT_WR)` as a kernel NAT would; both
halves closed (or any error) closes both sockets.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable

from kubeling.proxy.relay import Backends, ConnectionTracker
from kubeling.proxy.rules import Endpoint

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0
CONNECT_ATTEMPTS = 3  # kube-proxy's userspace mode also retried other endpoints on a failed dial
ACCEPTS_PER_WAKEUP = 64
ACCEPT_RETRY_DELAY = 1.0  # after EMFILE and friends, as asyncio's own Server does
_RESOURCE_ERRORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class Splice:
    """One proxied connection: client socket <-> backend socket."""

    __slots__ = ("loop", "tracker", "socks", "fds", "pending", "eof", "closed", "pumps")

    def __init__(self, loop: asyncio.AbstractEventLoop, client: socket.socket, backend: socket.socket,
                 tracker: ConnectionTracker) -> None:
        self.loop = loop
        self.tracker = tracker
        self.socks = (client, backend)
        self.fds = (client.fileno(), backend.fileno())
        self.pending: list[bytes] = [b"", b""]  # per direction (0: client→backend), what the peer did not take
        self.eof = [False, False]
        self.closed = False
        self.pumps: tuple[Callable[[], None], ...] = ()

    def start(self) -> None:
        self.tracker.conns.add(self)
        self.pumps = (self._pump(0), self._pump(1))
        self.loop.add_reader(self.fds[0], self.pumps[0])
        self.loop.add_reader(self.fds[1], self.pumps[1])

    def _pump(self, d: int) -> Callable[[], None]:
        """The reader callback of direction `d` (0: client→backend), with everything it needs in locals:
        this is the hottest code of the proxy."""
        recv_into, send, view = self.socks[d].recv_into, self.socks[1 - d].send, self.tracker.buffer

        def pump() -> None:
            try:
                n = recv_into(view)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.close()
                return
            if not n:
                self._half_close(d)
                return
            try:
                sent = send(view[:n])
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self.close()
                return
            if sent < n:
                self._stall(d, bytes(view[sent:n]))
        return pump

    def _stall(self, d: int, rest: bytes) -> None:
        """The peer did not take it all: stop reading this side until the rest is sent."""
        self.pending[d] = rest
        self.loop.remove_reader(self.fds[d])
        self.loop.add_writer(self.fds[1 - d], self._drain, d)

    def _drain(self, d: int) -> None:
        data = self.pending[d]
        try:
            sent = self.socks[1 - d].send(data)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        if sent < len(data):
            self.pending[d] = data[sent:]
            return
        self.pending[d] = b""
        self.loop.remove_writer(self.fds[1 - d])
        self.loop.add_reader(self.fds[d], self.pumps[d])

    def _half_close(self, d: int) -> None:
        # Reading stops while a remainder is pending, so EOF is only seen with nothing left to send.
        self.eof[d] = True
        self.loop.remove_reader(self.fds[d])
        if self.eof[1 - d]:
            self.close()
            return
        try:
            self.socks[1 - d].shutdown(socket.SHUT_WR)
        except OSError:
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for fd in self.fds:
            self.loop.remove_reader(fd)
            self.loop.remove_writer(fd)
        for sock in self.socks:
            sock.close()
        self.pumps = ()  # the callbacks hold `self`: break the cycle
        self.tracker.conns.discard(self)


def _new_socket(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


async def dial(client: socket.socket, client_ip: str, backends: Backends, tracker: ConnectionTracker) -> None:
    """Connect an accepted client to an endpoint (trying others if one refuses), then splice them."""
    loop = asyncio.get_running_loop()
    tried: set[Endpoint] = set()
    try:
        for _ in range(CONNECT_ATTEMPTS):
            endpoint = backends.pick(client_ip, tried)
            if endpoint is None:
                break
            backend = _new_socket(endpoint[0])
            try:
                await asyncio.wait_for(loop.sock_connect(backend, endpoint), CONNECT_TIMEOUT)
            except (OSError, TimeoutError) as err:
                backend.close()
                log.debug("dial %s:%d failed: %s", endpoint[0], endpoint[1], err)
                tried.add(endpoint)
                continue
            except BaseException:
                backend.close()
                raise
            Splice(loop, client, backend, tracker).start()
            return
    except BaseException:
        client.close()
        raise
    client.close()  # no endpoint (or none answered): the client sees the connection end


class TCPListener:
    """A listening socket whose accepts spawn `dial`s (asyncio.Server without the Protocol layer)."""

    def __init__(self, sock: socket.socket, backends: Backends, tracker: ConnectionTracker) -> None:
        self.loop = asyncio.get_running_loop()
        self.sock = sock
        self.backends = backends
        self.tracker = tracker
        self.closed = False
        self._retry: asyncio.TimerHandle | None = None
        self.loop.add_reader(sock.fileno(), self._accept)

    def _accept(self) -> None:
        for _ in range(ACCEPTS_PER_WAKEUP):
            try:
                conn, addr = self.sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as err:
                if err.errno not in _RESOURCE_ERRORS:
                    raise
                log.error("accept on %s failed, pausing %.0fs: %s", self.sock.getsockname(),
                          ACCEPT_RETRY_DELAY, err)
                self.loop.remove_reader(self.sock.fileno())
                self._retry = self.loop.call_later(ACCEPT_RETRY_DELAY, self._resume)
                return
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.tracker.spawn(dial(conn, str(addr[0]), self.backends, self.tracker), "proxy-dial")

    def _resume(self) -> None:
        if not self.closed:
            self.loop.add_reader(self.sock.fileno(), self._accept)

    def close(self) -> None:
        """Stop accepting; established connections are left alone (stop() of the proxy ends those)."""
        if self.closed:
            return
        self.closed = True
        if self._retry is not None:
            self._retry.cancel()
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()
