"""The one controller skeleton: informers → keys → work queue → `reconcile(key)`.

Event handlers only enqueue keys; `reconcile` recomputes everything from the
informer caches and acts through the API. It is idempotent, never mutates a
cached object (copy before changing), and can be called directly in tests.
Informers are shared through `InformerFactory`, so ten controllers watching
pods cost one watch.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from kubeling.client import EventRecorder, Informer, KubeClient, Resource, WorkQueue, meta_key, run_workers

Obj = dict[str, Any]
log = logging.getLogger(__name__)


class InformerFactory:
    """Hands out one shared Informer per resource (client-go's SharedInformerFactory)."""

    def __init__(self, client: KubeClient, *, resync_period: float = 0.0) -> None:
        self.client = client
        self.resync_period = resync_period
        self._informers: dict[Resource, Informer] = {}
        self._started: set[Resource] = set()

    def informer(self, res: Resource) -> Informer:
        inf = self._informers.get(res)
        if inf is None:
            inf = Informer(self.client, res, resync_period=self.resync_period)
            self._informers[res] = inf
        return inf

    async def start(self) -> None:
        for res, inf in list(self._informers.items()):
            if res not in self._started:
                self._started.add(res)
                await inf.start()

    async def wait_synced(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109
        results = await asyncio.gather(*(i.wait_synced(timeout) for i in self._informers.values()))
        return all(results)

    async def stop(self) -> None:
        for inf in self._informers.values():
            await inf.stop()
        self._started.clear()


class Controller:
    """Base class: subclasses set NAME, register handlers in `setup`, implement `reconcile`."""

    NAME = "controller"
    WORKERS = 2

    def __init__(self, client: KubeClient, informers: InformerFactory, *,
                 recorder: EventRecorder | None = None) -> None:
        self.client = client
        self.informers = informers
        self.queue: WorkQueue[str] = WorkQueue(name=self.NAME)
        self.recorder = recorder or EventRecorder(client, component=self.component_name())
        self.setup()

    def component_name(self) -> str:
        return f"{self.NAME}-controller"

    def setup(self) -> None:
        """Register informer handlers (called from __init__)."""

    async def reconcile(self, key: str) -> None:
        raise NotImplementedError

    # ---- helpers for handlers --------------------------------------------------------

    def enqueue(self, obj: Obj) -> None:
        self.queue.add(meta_key(obj))

    def enqueue_key(self, key: str) -> None:
        self.queue.add(key)

    def enqueue_after(self, key: str, delay: float) -> None:
        self.queue.add_after(key, delay)

    def watch(self, res: Resource, *, on_add: Callable[[Obj], Any] | None = None,
              on_update: Callable[[Obj, Obj], Any] | None = None,
              on_delete: Callable[[Obj], Any] | None = None) -> Informer:
        inf = self.informers.informer(res)
        inf.add_handler(on_add=on_add, on_update=on_update, on_delete=on_delete)
        return inf

    def enqueue_handlers(self, res: Resource) -> Informer:
        """Enqueue the object's own key on every add, update and delete."""
        return self.watch(res, on_add=self.enqueue, on_update=lambda _old, new: self.enqueue(new),
                          on_delete=self.enqueue)

    async def event(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        await self.recorder.event(obj, type_, reason, message)

    async def run(self) -> None:
        """Process keys until cancelled."""
        try:
            await run_workers(self.queue, self.reconcile, workers=self.WORKERS, name=self.NAME)
        finally:
            self.queue.shutdown()


def deep_copy(obj: Obj) -> Obj:
    """A private copy of a cached object, safe to change."""
    return copy.deepcopy(obj)


def controller_ref(obj: Obj) -> Obj | None:
    """The ownerReference with controller=true, if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def controller_key(obj: Obj, kind: str) -> str | None:
    """`namespace/name` of the object's controller when that controller is a `kind`, else None."""
    ref = controller_ref(obj)
    if ref is None or ref.get("kind") != kind:
        return None
    return f"{obj['metadata']['namespace']}/{ref['name']}"


async def run_beside(main: Awaitable[None], background: Coroutine[Any, Any, Any], *, name: str) -> None:
    """Await `main` (a controller's `run`) with `background` running as a task, cancelled when `main` ends."""
    task = asyncio.create_task(background, name=name)
    try:
        await main
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def owner_reference(owner: Obj, *, block_owner_deletion: bool = True) -> Obj:
    meta = owner["metadata"]
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": meta["name"], "uid": meta["uid"],
            "controller": True, "blockOwnerDeletion": block_owner_deletion}


def is_being_deleted(obj: Obj) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))
