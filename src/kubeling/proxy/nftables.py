"""The nftables Service proxy of the root network mode: the kernel forwards, no process is in the data path.

Driven exactly like the userspace proxy (informers in, `run()`, `synced`, `close()`), shaped
like kube-proxy's nftables proxier: informer handlers only mark a Service *dirty*; one loop
turns the dirty set into ONE `nft -f -` transaction per sync, at most every
`min_sync_period` seconds (so a burst of changes coalesces) with the first sync at once.

- **Incremental syncs** re-plan only the dirty Services and write only what changed in
  their chains, affinity sets and map elements (`diff_transaction`); chain names depend on
  namespace/name/protocol/port alone, so nothing else is touched. A deleted Service's
  chains go in the same transaction that removes its map elements.
- **Full syncs** on start and every `sync_period` seconds re-plan everything from the
  informer caches and rewrite the whole table in one transaction, deleting whatever a
  previous run left behind (`full_transaction`). Rules are never removed on `close()`
  (kube-proxy leaves them too): while the proxy restarts, traffic keeps flowing on the old
  rules and the new process converges from there. `cleanup()` removes the table for good.
- **Errors**: a refused transaction is logged with its summary and nft's complaint; the
  table's state is then unknown, so the next sync is a full one, retried with back-off, and
  if even that is refused the table is replaced outright (`add table; delete table; …`).
- **Stale UDP flows**: once a transaction is in the kernel, the conntrack entries it made
  stale (UDP flows DNATed to an endpoint that left, flows to a frontend that just got
  endpoints) are deleted in the background, as kube-proxy does (`conntrack.py`).
- **Conflicts**: two Services may ask for one address and port (an externalIP, a
  LoadBalancer IP); the kernel would refuse the whole transaction, so the first to claim
  keeps it (oldest first on a full sync) and the other gets a Warning event, as do the
  plan's own problems (SCTP, IPv6 addresses).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from kubeling.client import EventRecorder, Informer
from kubeling.proxy.conntrack import (
    Conntrack,
    ConntrackCleaner,
    ConntrackRunner,
    Served,
    Target,
    served_flows,
    stale_flows,
)
from kubeling.proxy.nftables_exec import Nft, NftError, NftRunner, prepare_node
from kubeling.proxy.nftables_rules import (
    SERVICE_IPS,
    SERVICE_NODEPORTS,
    RuleSettings,
    ServiceRules,
    claim,
    render_service,
)
from kubeling.proxy.nftables_transactions import diff_transaction, full_transaction
from kubeling.proxy.rules import Endpoint, Frontend, plan_service, service_key_of_slice
from kubeling.proxy.userspace import SLICE_INDEX, slice_service_index

log = logging.getLogger(__name__)

Problem = tuple[str, str]


def _key(svc: Mapping[str, Any]) -> str:
    meta = svc.get("metadata") or {}
    return f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"


def _age(svc: Mapping[str, Any]) -> tuple[str, str]:
    return str((svc.get("metadata") or {}).get("creationTimestamp") or ""), _key(svc)


class NftablesProxy:
    """Programs every Service of the cluster into this node's nftables (table `ip kubeling-proxy`)."""

    initial_backoff = 1.0

    def __init__(self, services: Informer, slices: Informer, *, node_name: str, node_address: str,
                 recorder: EventRecorder | None = None, cluster_cidr: str | None = None,
                 masquerade_all: bool | None = None, netns: str | None = None,
                 sync_period: float = 30.0, min_sync_period: float = 0.05, nft: NftRunner | None = None,
                 manage_sysctls: bool = True, conntrack: ConntrackRunner | None = None) -> None:
        self.services = services
        self.slices = slices
        self.node_name = node_name
        self.node_address = node_address
        self.recorder = recorder
        self.netns = netns
        self.nft: NftRunner = nft or Nft(netns)
        self.manage_sysctls = manage_sysctls
        self.conntrack = ConntrackCleaner(conntrack or Conntrack(netns))
        cidr = str(ipaddress.ip_network(cluster_cidr, strict=False)) if cluster_cidr else None
        self.settings = RuleSettings(cluster_cidr=cidr, masquerade_all=bool(masquerade_all))
        self._auto_masquerade = masquerade_all is None  # decided by prepare(): on without br_netfilter
        self.sync_period = sync_period
        self.min_sync_period = min_sync_period
        self.synced = asyncio.Event()  # set after the first full sync the kernel accepted
        self.applied: dict[str, ServiceRules] = {}  # what the kernel holds, per Service
        self.served: dict[str, dict[Target, frozenset[Endpoint]]] = {}  # its UDP frontends' serving endpoints
        self.stats = {"full": 0, "incremental": 0, "failed": 0}
        self.last_transaction = ""
        self._claims: dict[str, str] = {}  # claim -> Service that holds it
        self._held: dict[str, set[str]] = {}  # Service -> its claims
        self._refused: dict[str, set[str]] = {}  # Service -> claims it wanted but another holds
        self._reported: dict[str, set[Problem]] = {}
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()  # nothing dirty, no sync due after a failure: the kernel is current
        self._need_full = True
        self._next_full = 0.0
        self._last_sync = float("-inf")
        self._backoff = self.initial_backoff
        self._warned_forward = False
        self._tasks: set[asyncio.Task[None]] = set()
        slices.indexer.add_indexer(SLICE_INDEX, slice_service_index)
        services.add_handler(self._on_service, lambda old, new: self._on_service(new), self._on_service)
        slices.add_handler(self._on_slice, lambda old, new: (self._on_slice(old), self._on_slice(new)),
                           self._on_slice)

    # -- change notification: only mark dirty ---------------------------------------------------------

    def mark(self, key: str) -> None:
        self._dirty.add(key)
        self._idle.clear()
        self._wake.set()

    def _on_service(self, svc: Mapping[str, Any]) -> None:
        self.mark(_key(svc))

    def _on_slice(self, slice_: Mapping[str, Any]) -> None:
        key = service_key_of_slice(slice_)
        if key:
            self.mark(key)

    def request_full_sync(self) -> None:
        """Rewrite the whole table at the next sync (what a failure or the sync period does)."""
        self._need_full = True
        self._next_full = 0.0
        self._idle.clear()
        self._wake.set()

    async def wait_programmed(self) -> None:
        """Until every change seen so far is in the kernel, stale flows deleted (tests, benchmarks, readiness)."""
        await self._idle.wait()
        await self.conntrack.wait_idle()

    # -- the sync loop --------------------------------------------------------------------------------

    async def prepare(self) -> None:
        """The node's sysctls; without br_netfilter, masquerade all Service traffic (unless told otherwise)."""
        if not self.manage_sysctls:
            return
        try:
            bridged = await prepare_node(self.netns)
        except OSError as err:
            log.error("cannot set the sysctls the nftables proxy needs (ip_forward, bridge-nf-call-iptables): %s",
                      err)
            return
        if not bridged and self._auto_masquerade and not self.settings.masquerade_all:
            log.warning("br_netfilter is not loaded (%s missing): bridged pod-to-pod replies would bypass "
                        "the Service NAT, so all Service traffic is masqueraded ('modprobe br_netfilter' "
                        "keeps client addresses)", "net.bridge.bridge-nf-call-iptables")
            self.settings = replace(self.settings, masquerade_all=True)

    async def run(self) -> None:
        """Program Services as they change, until cancelled; the first (full) sync waits for both caches."""
        await self.services.wait_synced()
        await self.slices.wait_synced()
        await self.prepare()
        while True:
            await self._wait_for_work()
            await self.sync_once()

    async def _wait_for_work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            if now >= self._next_full:
                return
            if self._dirty and not self._need_full:
                batch_due = self._last_sync + self.min_sync_period - now
                if batch_due > 0:
                    await asyncio.sleep(batch_due)  # let a burst of changes coalesce into one transaction
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._next_full - now):
                    await self._wake.wait()

    async def sync_once(self) -> bool:
        """One sync — full when due (or after a failure), else incremental over the dirty Services."""
        loop = asyncio.get_running_loop()
        full = self._need_full or loop.time() >= self._next_full
        dirty, self._dirty = self._dirty, set()
        self._last_sync = loop.time()
        try:
            if full:
                await self.full_sync()
            elif dirty:
                await self.incremental_sync(dirty)
        except NftError as err:
            self.stats["failed"] += 1
            log.error("nftables %s sync failed, retrying with a full sync in %.1f s: %s",
                      "full" if full else "incremental", self._backoff, err)
            self._need_full = True
            self._next_full = loop.time() + self._backoff
            self._backoff = min(self._backoff * 2, max(self.sync_period, self.initial_backoff))
            return False
        if full:
            self._need_full = False
            self._next_full = loop.time() + self.sync_period
            self.synced.set()
        self._backoff = self.initial_backoff
        if not self._dirty:
            self._idle.set()
        return True

    async def full_sync(self) -> None:
        """Re-plan every Service and rewrite the whole table in one transaction."""
        chains, sets, dropping = await self.nft.existing()
        if dropping and not self._warned_forward:
            self._warned_forward = True
            log.warning("forward chains of other tables drop by default (%s): Service traffic that is forwarded "
                        "must be accepted there too; this proxy only owns table ip kubeling-proxy",
                        "; ".join(dropping))
        self._claims.clear()
        self._held.clear()
        self._refused.clear()
        rendered: dict[str, ServiceRules] = {}
        served: dict[str, dict[Target, frozenset[Endpoint]]] = {}
        problems: dict[str, tuple[Mapping[str, Any], list[Problem]]] = {}
        for n, svc in enumerate(sorted(self.services.list(), key=_age), 1):
            key = _key(svc)
            rules, found, served[key] = self._render(key, svc)
            if rules:
                rendered[key] = rules
            problems[key] = (svc, found)
            if n % 500 == 0:
                await asyncio.sleep(0)  # a big resync must not stall the rest of the process
        text = full_transaction(rendered, self.settings, existing_chains=chains, existing_sets=sets)
        self.last_transaction = text
        try:
            await self.nft.apply(text)
        except NftError as err:
            # Something in the table is not what we would write (a chain of another version, a
            # hand-made change): replace the table; still one atomic transaction.
            log.warning("nftables full sync refused, replacing table ip kubeling-proxy: %s", err)
            text = full_transaction(rendered, self.settings, replace=True)
            self.last_transaction = text
            await self.nft.apply(text)
        self.applied = rendered
        self._clear_stale_flows(self.served, served)
        self.served = {key: flows for key, flows in served.items() if flows}
        self.stats["full"] += 1
        for key in set(self._reported) - set(problems):
            del self._reported[key]
        for key, (svc, found) in problems.items():
            self._report(key, svc, found)

    async def incremental_sync(self, keys: Iterable[str]) -> None:
        """Re-plan the given Services and write only their differences, in one transaction."""
        old: dict[str, ServiceRules] = {}
        new: dict[str, ServiceRules] = {}
        served: dict[str, dict[Target, frozenset[Endpoint]]] = {}
        found: dict[str, tuple[Mapping[str, Any] | None, list[Problem]]] = {}
        freed: set[str] = set()
        for n, key in enumerate(sorted(keys), 1):
            before = set(self._held.get(key, ()))
            svc = self.services.get(key)
            new[key], problems, served[key] = self._render(key, svc)
            old[key] = self.applied.get(key) or ServiceRules()
            freed |= before - self._held.get(key, set())
            found[key] = (svc, problems)
            if n % 500 == 0:
                await asyncio.sleep(0)
        text = diff_transaction(old, new)
        if text:
            self.last_transaction = text
            await self.nft.apply(text)
        for key, rules in new.items():
            if rules:
                self.applied[key] = rules
            else:
                self.applied.pop(key, None)
        # Even without a transaction: a terminating endpoint the rules did not use may have stopped serving.
        self._clear_stale_flows({key: self.served.get(key, {}) for key in served}, served)
        for key, flows in served.items():
            if flows:
                self.served[key] = flows
            else:
                self.served.pop(key, None)
        self.stats["incremental"] += 1
        for key, (svc, problems) in found.items():
            if svc is None:
                self._reported.pop(key, None)
            else:
                self._report(key, svc, problems)
        # A Service that was refused an address another one just gave up gets another chance.
        for other, wanted in list(self._refused.items()):
            if wanted & freed:
                self.mark(other)

    def _clear_stale_flows(self, old: Mapping[str, Served], new: Mapping[str, Served]) -> None:
        """Queue the deletion of the UDP flows the transaction just applied made stale (never before it)."""
        # Merged over the Services: a frontend that moves from one Service to another is one frontend.
        flows = stale_flows({t: eps for served in old.values() for t, eps in served.items()},
                            {t: eps for served in new.values() for t, eps in served.items()})
        if flows:
            log.debug("clearing stale conntrack entries: %s", "; ".join(map(str, flows)))
            self.conntrack.clear(flows)

    def _render(self, key: str, svc: Mapping[str, Any] | None
                ) -> tuple[ServiceRules, list[Problem], dict[Target, frozenset[Endpoint]]]:
        for c in self._held.pop(key, set()):
            if self._claims.get(c) == key:
                del self._claims[c]
        self._refused.pop(key, None)
        if svc is None:
            return ServiceRules(), [], {}
        slices = self.slices.indexer.by_index(SLICE_INDEX, key)
        plan = plan_service(svc, slices, node_name=self.node_name, node_address=self.node_address,
                            any_address=True)
        problems = list(plan.problems)
        frontends: list[Frontend] = []
        held: set[str] = set()
        for frontend in plan.frontends.values():
            protocol, address, port = frontend.key
            if frontend.kind != "NodePort" and ":" in address:
                problems.append(("AddressNotServed", f"{frontend.kind} address {address} is IPv6; the nftables "
                                                     f"proxy serves IPv4 only"))
                continue
            c = claim(frontend)
            owner = self._claims.get(c)
            if owner is not None and owner != key:
                where = f"NodePort {protocol} {port}" if frontend.kind == "NodePort" else \
                    f"{frontend.kind} {protocol} {address}:{port}"
                problems.append(("PortConflict", f"{where} is already served for Service {owner}; "
                                                 f"this port is not served"))
                self._refused.setdefault(key, set()).add(c)
                continue
            self._claims[c] = key
            held.add(c)
            frontends.append(frontend)
        self._held[key] = held
        return (render_service(frontends, self.settings), list(dict.fromkeys(problems)),
                served_flows(frontends, slices))

    def _report(self, key: str, svc: Mapping[str, Any], problems: list[Problem]) -> None:
        before = self._reported.get(key, set())
        for reason, message in problems:
            if (reason, message) in before:
                continue
            log.warning("service %s: %s", key, message)
            if self.recorder is not None:
                task = asyncio.create_task(self.recorder.event(svc, "Warning", reason, message),
                                           name="proxy-event")
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        # Only standing problems are remembered: one that goes away and comes back is news again.
        self._reported[key] = set(problems)

    # -- diagnostics and lifecycle --------------------------------------------------------------------

    def serving(self, protocol: str, address: str, port: int) -> bool:
        """Whether the rules DNAT this frontend (a NodePort: any address) — for tests and diagnostics."""
        proto = protocol.lower()
        keys = {(SERVICE_IPS, f"{address} . {proto} . {port}")}
        if address == self.node_address:
            keys.add((SERVICE_NODEPORTS, f"{proto} . {port}"))
        return any(keys & rules.elements.keys() for rules in self.applied.values())

    async def close(self) -> None:
        """Stop: the rules stay in the kernel (traffic keeps flowing until a new proxy takes over)."""
        tasks, self._tasks = list(self._tasks), set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.conntrack.close()

    async def cleanup(self) -> None:
        """Delete table ip kubeling-proxy and every rule in it (uninstall)."""
        await self.nft.cleanup()
        self.applied.clear()
