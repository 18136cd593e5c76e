"""Helpers for the runtime contract: process-table checks, CRI log parsing, small sync file reads."""

from __future__ import annotations

import asyncio
import os
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path

from kubeling.runtime.interface import Runtime

CRI_LINE = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z (stdout|stderr) (F|P) (.*)$")


def capability(runtime: Runtime, name: str) -> bool:
    caps = getattr(runtime, "capabilities", None)
    return bool(getattr(caps(), name, False)) if caps else True


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def exists(path: str) -> bool:
    return os.path.exists(path)


def size(path: str) -> int:
    return os.path.getsize(path)


def read(path: str) -> bytes:
    """The file's bytes, or b"" if it does not exist (yet)."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        return b""


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


async def read_until(stream: AsyncIterator[bytes], needle: bytes, within: float = 5.0) -> bytes:
    got = b""
    async with asyncio.timeout(within):
        async for chunk in stream:
            got += chunk
            if needle in got:
                break
    return got


def log_lines(path: str) -> list[tuple[bytes, bytes, bytes]]:
    out = []
    for line in Path(path).read_bytes().splitlines():
        m = CRI_LINE.match(line)
        assert m, f"not a CRI log line: {line!r}"
        out.append((m.group(1), m.group(2), m.group(3)))
    return out
