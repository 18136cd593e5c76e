"""Supervised components (the k3s model): each is `async def run()`, started in
dependency order; if any one returns or raises while the process is not
stopping, that is reported and everything stops with a non-zero exit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("kubeling.supervisor")


@dataclass
class Component:
    """A named long-running coroutine factory."""

    name: str
    run: Callable[[], Awaitable[None]]
    stop: Callable[[], Awaitable[None]] | None = None  # graceful stop, called before cancelling


class ComponentDied(Exception):
    """A supervised component stopped on its own."""


async def supervise(components: list[Component], stop: asyncio.Event) -> None:
    """Run every component until `stop` is set; raise ComponentDied if one ends first."""
    tasks = {asyncio.create_task(c.run(), name=c.name): c for c in components}
    stopper = asyncio.create_task(stop.wait(), name="stop-signal")
    try:
        done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is stopper:
                continue
            comp = tasks[task]
            exc = task.exception() if not task.cancelled() else None
            reason = f"{type(exc).__name__}: {exc}" if exc else "exited"
            print(f"kubeling: component {comp.name} died ({reason}); stopping", file=sys.stderr, flush=True)
            if exc is not None:
                log.error("component %s died", comp.name, exc_info=exc)
            raise ComponentDied(comp.name)
    finally:
        stopper.cancel()
        # Graceful stops first, last-started first (the node before the control plane it talks to).
        for comp in reversed(components):
            if comp.stop is not None:
                try:
                    await asyncio.wait_for(comp.stop(), 60)
                except Exception:  # keep stopping the others
                    log.exception("stopping %s failed", comp.name)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task


def stop_on_signals() -> asyncio.Event:
    """An event that SIGINT or SIGTERM sets: the graceful stop of a long-running command."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def exit_code(supervisor: asyncio.Task[None]) -> int:
    """Wait for a `supervise` task: 0 after a requested stop, 1 when a component died."""
    try:
        await supervisor
    except ComponentDied:
        return 1
    return 0


def run_process(main: Coroutine[Any, Any, int], *, fatal: type[BaseException]) -> int:
    """A long-running command's process body (`kubeling server`, `agent`): log at INFO, run `main`
    to its exit code; a `fatal` error is printed and exits 1, Ctrl-C exits 0."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(main)
    except fatal as exc:
        print(f"kubeling: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        with contextlib.suppress(Exception):
            logging.shutdown()
