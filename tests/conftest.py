"""Suite-wide test support: `kill -USR1 <pytest pid>` prints every asyncio task's stack,
to see where a hung async test waits (py-spy shows only an idle event loop)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys


def _dump_tasks(signum: int, frame: object) -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    tasks = asyncio.all_tasks(loop) if loop is not None else set()
    # pytest captures stderr per test (and loses it if the run is killed): write a file too.
    path = f"/tmp/kubeling-asyncio-tasks-{os.getpid()}.txt"
    with open(path, "w") as out:
        for stream in (out, sys.__stderr__):
            print(f"\n--- {len(tasks)} asyncio tasks (also in {path}) ---", file=stream, flush=True)
            for task in tasks:
                task.print_stack(file=stream)


signal.signal(signal.SIGUSR1, _dump_tasks)
