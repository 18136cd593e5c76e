"""The service account controller: every live namespace has a "default" ServiceAccount.

Pods that name no service account run as "default", and admission refuses a
pod whose account is missing, so the account must exist in every namespace —
also when someone deletes it. Kubernetes' pkg/controller/serviceaccount does
this with informers on ServiceAccounts and Namespaces; so do we. A namespace
being deleted gets nothing (recreating content there would keep it alive).
The API server also creates the account when a namespace is created; the
resulting 409 here is expected and harmless.
"""

from __future__ import annotations

import logging
from typing import Any

from kubeling.api.errors import StatusError
from kubeling.client import resources
from kubeling.controllers.base import Controller

Obj = dict[str, Any]
log = logging.getLogger(__name__)


class ServiceAccountController(Controller):
    """Ensures the ServiceAccounts in `service_accounts` (default: "default") in every namespace."""

    NAME = "serviceaccount"
    WORKERS = 1
    service_accounts: tuple[str, ...] = ("default",)

    def setup(self) -> None:
        self.namespaces = self.watch(resources.NAMESPACES, on_add=self.enqueue,
                                     on_update=lambda _old, new: self.enqueue(new))
        self.accounts = self.watch(resources.SERVICEACCOUNTS, on_delete=self._account_deleted)

    def _account_deleted(self, sa: Obj) -> None:
        meta = sa.get("metadata") or {}
        if meta.get("name") in self.service_accounts and meta.get("namespace"):
            self.enqueue_key(meta["namespace"])

    async def reconcile(self, key: str) -> None:
        ns = self.namespaces.get(key)
        if ns is None or ns["metadata"].get("deletionTimestamp") or \
                (ns.get("status") or {}).get("phase") == "Terminating":
            return
        for name in self.service_accounts:
            if self.accounts.get(f"{key}/{name}") is not None:
                continue
            sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": key}}
            try:
                await self.client.create(resources.SERVICEACCOUNTS, sa)
                log.info("created service account %s/%s", key, name)
            except StatusError as err:
                # 409: it exists (the cache lags, or the API server made it); 403/404: namespace terminating/gone.
                if err.code not in (403, 404, 409):
                    raise
