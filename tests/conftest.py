"""Suite-wide test support: `kill -USR1 <pytest pid>` prints every asyncio task's stack,
to see where a hung async test waits (py-spy shows only an idle event loop)."""

from __future__ import annotations

import asyncio
import signal
import sys


def _dump_tasks(signum: int, frame: object) -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    tasks = asyncio.all_tasks(loop) if loop is not None else set()
    print(f"\n--- {len(tasks)} asyncio tasks ---", file=sys.stderr, flush=True)
    for task in tasks:
        task.print_stack(file=sys.stderr)


signal.signal(signal.SIGUSR1, _dump_tasks)
