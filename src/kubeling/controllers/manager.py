"""The controller manager: runs every registered controller under one Lease.

Only the leader acts (two control planes never both reconcile). Controllers
are built from `CONTROLLERS` (name → class), informers are shared and started
after every controller registered its handlers, and the manager waits for
their caches to sync before any worker runs (as kube-controller-manager does).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from typing import Any

from kubeling.client import KubeClient, LeaderElector
from kubeling.client.leaderelection import LostLeadership
from kubeling.controllers.base import Controller, InformerFactory

log = logging.getLogger(__name__)


def registry() -> dict[str, type[Controller]]:
    """Name → controller class for every controller that exists."""
    from kubeling.controllers import catalog
    return catalog.CONTROLLERS


class ControllerManager:
    """Supervised component: `run()` until cancelled; a crashing controller stops the manager."""

    lease_duration = 15.0  # kube-controller-manager's --leader-elect-* defaults
    renew_deadline = 10.0
    retry_period = 2.0

    def __init__(self, client: KubeClient, *, enabled: list[str] | None = None, options: dict[str, Any] | None = None,
                 leader_elect: bool = True, identity: str | None = None) -> None:
        self.client = client
        self.enabled = enabled
        self.options = options or {}
        self.leader_elect = leader_elect
        self.identity = identity or f"{socket.gethostname()}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        self.controllers: list[Controller] = []
        self.informers = InformerFactory(client)

    def build(self) -> list[Controller]:
        out = []
        for name, cls in registry().items():
            if self.enabled is not None and name not in self.enabled:
                continue
            ctrl = cls(self.client, self.informers)
            for key, value in self.options.items():
                if hasattr(ctrl, key):
                    setattr(ctrl, key, value)
            out.append(ctrl)
        return out

    async def run(self) -> None:
        """Campaign, reconcile while leading; after a lost Lease (a stalled process, a partition)
        campaign again with fresh caches instead of ending, as the scheduler does."""
        if not self.leader_elect:
            await self._lead()
            return
        while True:
            elector = LeaderElector(self.client, name="kube-controller-manager", identity=self.identity,
                                    lease_duration=self.lease_duration, renew_deadline=self.renew_deadline,
                                    retry_period=self.retry_period)
            try:
                await elector.run(self._lead)
            except LostLeadership as err:
                log.warning("%s; campaigning again", err)
                self.informers = InformerFactory(self.client)
            else:
                return

    async def _lead(self) -> None:
        self.controllers = self.build()
        await self.informers.start()
        await self.informers.wait_synced()
        log.info("controller manager leading with %d controllers", len(self.controllers))
        tasks = [asyncio.create_task(c.run(), name=f"controller-{c.NAME}") for c in self.controllers]
        if not tasks:
            await asyncio.Event().wait()  # nothing enabled: lead, idle, until cancelled
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                t.result()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.informers.stop()
