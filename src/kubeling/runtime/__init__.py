"""Container runtimes behind one contract (`interface.Runtime`): the process
runtime now, runc later, without the kubelet changing."""

from __future__ import annotations

from .interface import Runtime


def new_runtime(name: str, root_dir: str) -> Runtime:
    """The runtime called `name` ("process"), keeping its state under `root_dir`; not yet started."""
    if name == "process":
        from .process import ProcessRuntime

        return ProcessRuntime(root_dir)
    raise ValueError(f"unknown container runtime {name!r} (known: process)")
