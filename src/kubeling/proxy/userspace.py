"""The userspace Service proxy of the no-root network mode: asyncio listeners per Service address.

Without root there are no nftables rules to write, but Linux routes all of
127.0.0.0/8 to the loopback device, so any process may *bind* 127.43.0.5:8080
— ClusterIPs come from a loopback service range exactly so that a plain
process can answer them. This proxy keeps one listening socket per frontend
(ClusterIP:port, NodePort on the node address, loopback externalIPs,
LoadBalancer ingress IPs; TCP and UDP) and splices each accepted connection
to a random ready endpoint (see `relay`).

Why it is shaped like kube-proxy's sync loop: informer handlers only mark a
Service *dirty* (a Service change, or a change to one of its EndpointSlices);
one task drains the dirty set after a short batching delay and re-plans only
those Services. A Service's listeners are diffed against its new plan —
removed frontends close, new ones open, kept ones get their endpoint set
swapped in place — so a change to one Service never touches another's
listeners or connections. A restarted proxy has no state: its informers' first
LIST marks every Service dirty, which is the full re-sync.

What cannot be served is said, on the Service, as a Warning event: a port
below 1024 without root (`net.ipv4.ip_unprivileged_port_start`, 1024 by
default: such ClusterIP ports need root or CAP_NET_BIND_SERVICE), an address
already taken by another process or another Service, a non-loopback address.
Failed binds are retried every `retry_period` seconds.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Mapping
from typing import Any

from kubeling.client import EventRecorder, Informer
from kubeling.proxy.relay import Backends, ConnectionTracker, UDPFrontend
from kubeling.proxy.rules import Frontend, FrontendKey, Plan, plan_service, service_key_of_slice
from kubeling.proxy.splice import TCPListener

log = logging.getLogger(__name__)

SLICE_INDEX = "service"
_BIND_REASONS = ("PortConflict", "FailedToListen")


def slice_service_index(obj: Mapping[str, Any]) -> list[str]:
    """EndpointSlice index function: the "namespace/name" of its Service."""
    key = service_key_of_slice(obj)
    return [key] if key else []


def _bind_socket(key: FrontendKey) -> socket.socket:
    protocol, address, port = key
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    kind = socket.SOCK_STREAM if protocol == "TCP" else socket.SOCK_DGRAM
    sock = socket.socket(family, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # rebind at once after a restart
        sock.setblocking(False)
        sock.bind((address, port))
        if kind == socket.SOCK_STREAM:
            sock.listen(4096)
    except BaseException:
        sock.close()
        raise
    return sock


def _bind_error(key: FrontendKey, err: OSError) -> str:
    protocol, address, port = key
    where = f"{protocol} {address}:{port}"
    if err.errno in (errno.EACCES, errno.EPERM):
        return (f"cannot listen on {where}: ports below 1024 need root or CAP_NET_BIND_SERVICE "
                f"(net.ipv4.ip_unprivileged_port_start); this port is not served")
    if err.errno == errno.EADDRINUSE:
        return f"cannot listen on {where}: the address is in use by another process; retrying"
    return f"cannot listen on {where}: {err.strerror or err}; retrying"


class Listener:
    """One open frontend: its socket server and the live endpoint set behind it."""

    def __init__(self, frontend: Frontend, backends: Backends, server: TCPListener | None,
                 udp: UDPFrontend | None) -> None:
        self.frontend = frontend
        self.backends = backends
        self.server = server
        self.udp = udp

    @property
    def service(self) -> str:
        return self.frontend.service

    def update(self, frontend: Frontend) -> None:
        self.frontend = frontend
        self.backends.update(frontend.endpoints, frontend.affinity_timeout)
        if self.udp is not None:
            self.udp.prune(now=float("-inf"))  # drop only sessions whose endpoint left

    def close(self) -> None:
        # Established TCP connections outlive their listener (as conntrack entries do); stop() ends them.
        if self.server is not None:
            self.server.close()
        if self.udp is not None:
            self.udp.close()


class UserspaceProxy:
    """Serves every Service of the cluster on this node from asyncio listeners (no root needed)."""

    batch_delay = 0.01  # coalesce a Service and its slices changing together into one sync
    retry_period = 5.0  # re-try binds that failed; sweep idle UDP sessions and expired affinities

    def __init__(self, services: Informer, slices: Informer, *, node_name: str, node_address: str,
                 recorder: EventRecorder | None = None) -> None:
        self.services = services
        self.slices = slices
        self.node_name = node_name
        self.node_address = node_address
        self.recorder = recorder
        self.listeners: dict[FrontendKey, Listener] = {}
        self.synced = asyncio.Event()  # set after the first full sync: every Service programmed once
        self._wanted: dict[str, set[FrontendKey]] = {}  # per Service: frontends of its last plan
        self._failed: dict[str, dict[FrontendKey, tuple[str, str]]] = {}  # per Service: frontends it could not open
        self._reported: dict[str, set[tuple[str, str]]] = {}  # events already recorded, per Service
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self.tracker = ConnectionTracker()
        slices.indexer.add_indexer(SLICE_INDEX, slice_service_index)
        services.add_handler(self._on_service, lambda old, new: self._on_service(new), self._on_service)
        slices.add_handler(self._on_slice, self._on_slice_update, self._on_slice)

    # -- change notification: only mark dirty ---------------------------------------------------------

    def mark(self, key: str) -> None:
        self._dirty.add(key)
        self._wake.set()

    def _on_service(self, svc: Mapping[str, Any]) -> None:
        meta = svc.get("metadata") or {}
        self.mark(f"{meta.get('namespace') or ''}/{meta.get('name') or ''}")

    def _on_slice(self, slice_: Mapping[str, Any]) -> None:
        key = service_key_of_slice(slice_)
        if key:
            self.mark(key)

    def _on_slice_update(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        self._on_slice(old)
        self._on_slice(new)

    # -- the sync loop --------------------------------------------------------------------------------

    async def run(self) -> None:
        """Program Services as they change, until cancelled; the first pass waits for both caches."""
        await self.services.wait_synced()
        await self.slices.wait_synced()
        for svc in self.services.list():
            self._on_service(svc)
        housekeeping = self.tracker.spawn(self._housekeeping(), "proxy-housekeeping")
        try:
            while True:
                await self._wake.wait()
                if self.synced.is_set() and self.batch_delay > 0:
                    await asyncio.sleep(self.batch_delay)
                self._wake.clear()
                dirty, self._dirty = self._dirty, set()
                await self.sync(dirty)
                self.synced.set()
        finally:
            housekeeping.cancel()

    async def sync(self, keys: set[str]) -> None:
        """Re-plan the given Services and apply only the differences to the listeners."""
        for n, key in enumerate(sorted(keys), 1):
            try:
                await self._sync_service(key)
            except Exception:  # guard: one bad Service must not stop the proxy
                log.exception("syncing service %s failed", key)
            if n % 500 == 0:
                await asyncio.sleep(0)  # a full re-sync must not stall the traffic already flowing

    def _plan(self, key: str) -> tuple[Mapping[str, Any] | None, Plan]:
        svc = self.services.get(key)
        if svc is None:
            return None, Plan()
        slices = self.slices.indexer.by_index(SLICE_INDEX, key)
        return svc, plan_service(svc, slices, node_name=self.node_name, node_address=self.node_address)

    async def _sync_service(self, key: str) -> None:
        svc, plan = self._plan(key)
        previous = self._wanted.pop(key, set())
        failed_before = self._failed.pop(key, {})
        for fkey in previous - plan.frontends.keys():
            self._release(key, fkey)
        failed: dict[FrontendKey, tuple[str, str]] = {}
        for fkey, frontend in plan.frontends.items():
            listener = self.listeners.get(fkey)
            if listener is not None and listener.service == key:
                listener.update(frontend)
                continue
            if listener is not None:
                failed[fkey] = ("PortConflict", f"{frontend.kind} {fkey[0]} {fkey[1]}:{fkey[2]} is already "
                                                f"served for Service {listener.service}; this port is not served")
                continue
            try:
                await self._open(frontend)
            except OSError as err:
                failed[fkey] = ("FailedToListen", _bind_error(fkey, err))
        if svc is None:
            self._reported.pop(key, None)
            return
        self._wanted[key] = set(plan.frontends)
        if failed:
            self._failed[key] = failed
        reported = self._reported.setdefault(key, set())
        problems = [*plan.problems, *failed.values()]
        for reason, message in problems:
            if (reason, message) not in reported:
                reported.add((reason, message))
                log.warning("service %s: %s", key, message)
                if self.recorder is not None:
                    self.tracker.spawn(self.recorder.event(svc, "Warning", reason, message), "proxy-event")
        if failed_before and not failed:  # a later failure is news again; plan problems stay reported
            reported.difference_update({r for r in reported if r[0] in _BIND_REASONS})

    async def _open(self, frontend: Frontend) -> None:
        sock = _bind_socket(frontend.key)
        loop = asyncio.get_running_loop()
        backends = Backends(frontend.endpoints, frontend.affinity_timeout)
        tracker = self.tracker
        try:
            if frontend.protocol == "TCP":
                self.listeners[frontend.key] = Listener(frontend, backends, TCPListener(sock, backends, tracker), None)
            else:
                udp = UDPFrontend(backends, tracker)
                await loop.create_datagram_endpoint(lambda: udp, sock=sock)
                self.listeners[frontend.key] = Listener(frontend, backends, None, udp)
        except BaseException:
            sock.close()
            raise

    def _release(self, key: str, fkey: FrontendKey) -> None:
        listener = self.listeners.get(fkey)
        if listener is None or listener.service != key:
            return
        del self.listeners[fkey]
        listener.close()
        # Another Service may have been refused this frontend: give it a chance now.
        for other, frontends in self._failed.items():
            if fkey in frontends:
                self.mark(other)

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(self.retry_period)
            try:
                for key in list(self._failed):
                    self.mark(key)
                for listener in self.listeners.values():
                    listener.backends.sweep()
                    if listener.udp is not None:
                        listener.udp.prune()
            except Exception:  # guard: housekeeping must go on
                log.exception("proxy housekeeping failed")

    async def close(self) -> None:
        """Close every listener and every proxied connection."""
        for listener in self.listeners.values():
            listener.close()
        self.listeners.clear()
        self._wanted.clear()
        self._failed.clear()
        await self.tracker.close()

    def serving(self, protocol: str, address: str, port: int) -> bool:
        """Whether a listener is open for this frontend (for tests, benchmarks and diagnostics)."""
        return (protocol, address, port) in self.listeners

