"""Reading CRI container log files for `kubectl logs` (tail, since, timestamps, follow, previous).

Why: the runtime writes each container attempt's output as CRI log lines
`<RFC3339Nano> <stdout|stderr> <F|P> <content>` to
`<root>/pods/<ns>_<name>_<uid>/<container>/<N>.log` (rotated to `<N>.log.1`, …)
— the format and layout of the Kubernetes kubelet, so the files outlive the
process and `--previous` is simply attempt N-1. This module turns those records
back into what `kubectl logs` prints: `P` (partial) records are joined with the
following records up to the `F` one into one line; `--timestamps` prefixes the
line with the fixed-width RFC3339Nano time as the kubelet does. Following polls
the file (~100 ms, no inotify dependency), survives rotation by noticing the
inode change, and ends once the container has exited and the file is drained.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import glob
import os
import re
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import BinaryIO

POLL_INTERVAL = 0.1
_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$")


@dataclass
class LogOptions:
    """The `pods/log` query: `tail_lines` None = all, `since_ns` a Unix time in nanoseconds."""

    follow: bool = False
    tail_lines: int | None = None
    since_ns: int | None = None
    timestamps: bool = False
    limit_bytes: int | None = None


@dataclass
class LogLine:
    """One logical line: its first record's time, stream, and content (with its newline when complete)."""

    ts_ns: int
    stream: str
    content: bytes
    complete: bool


def parse_time_ns(text: str) -> int:
    """RFC3339 / RFC3339Nano text → Unix nanoseconds; ValueError when malformed."""
    m = _TS.match(text.strip())
    if not m:
        raise ValueError(f"invalid RFC3339 time {text!r}")
    base = dt.datetime.fromisoformat(m.group(1) + ("+00:00" if m.group(3) == "Z" else m.group(3)))
    frac = (m.group(2) or "").ljust(9, "0")
    return int(base.timestamp()) * 1_000_000_000 + int(frac or 0)


def format_time_ns(ns: int) -> str:
    """Unix nanoseconds → kubelet's RFC3339NanoFixed (`2006-01-02T15:04:05.000000000Z`)."""
    secs, frac = divmod(ns, 1_000_000_000)
    return dt.datetime.fromtimestamp(secs, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


def parse_record(raw: bytes) -> tuple[int, str, bool, bytes] | None:
    """One CRI record (without its trailing newline) → (time ns, stream, full?, content); None if garbled."""
    parts = raw.split(b" ", 3)
    if len(parts) < 3:
        return None
    try:
        ts = parse_time_ns(parts[0].decode())
    except (ValueError, UnicodeDecodeError):
        return None
    content = parts[3] if len(parts) == 4 else b""
    return ts, parts[1].decode(errors="replace"), parts[2] != b"P", content


def log_files(path: str) -> list[str]:
    """The files of one attempt oldest first: `<N>.log.K` … `<N>.log.1`, then `<N>.log`."""
    rotated = []
    for p in glob.glob(glob.escape(path) + ".*"):
        suffix = p[len(path) + 1:]
        if suffix.isdigit():
            rotated.append((int(suffix), p))
    return [p for _, p in sorted(rotated, reverse=True)] + ([path] if os.path.exists(path) else [])


class _Joiner:
    """Joins P records per stream into logical lines."""

    def __init__(self) -> None:
        self._pending: dict[str, LogLine] = {}

    def feed(self, raw: bytes) -> LogLine | None:
        rec = parse_record(raw)
        if rec is None:
            return None
        ts, stream, full, content = rec
        pending = self._pending.pop(stream, None)
        if pending is not None:
            pending.content += content
        else:
            pending = LogLine(ts, stream, content, False)
        if not full:
            self._pending[stream] = pending
            return None
        pending.content += b"\n"
        pending.complete = True
        return pending

    def flush(self) -> list[LogLine]:
        out = sorted(self._pending.values(), key=lambda line: line.ts_ns)
        self._pending.clear()
        return out


class _Formatter:
    """Applies since / timestamps / limitBytes; signals when the byte limit is reached."""

    def __init__(self, opts: LogOptions) -> None:
        self.opts = opts
        self.remaining = opts.limit_bytes if opts.limit_bytes and opts.limit_bytes > 0 else None

    def render(self, line: LogLine) -> bytes:
        if self.opts.since_ns is not None and line.ts_ns < self.opts.since_ns:
            return b""
        out = line.content
        if self.opts.timestamps:
            out = format_time_ns(line.ts_ns).encode() + b" " + out
        if self.remaining is not None:
            out = out[: self.remaining]
            self.remaining -= len(out)
        return out

    @property
    def done(self) -> bool:
        return self.remaining is not None and self.remaining <= 0


def _read_lines(fh: object, buf: bytearray) -> tuple[list[bytes], bool]:
    """Read one chunk; complete lines found so far, and whether anything was read."""
    chunk = fh.read(1 << 16)  # type: ignore[attr-defined]
    if chunk:
        buf.extend(chunk)
    out = []
    while True:
        i = buf.find(b"\n")
        if i < 0:
            return out, bool(chunk)
        out.append(bytes(buf[:i]))
        del buf[: i + 1]


async def read_logs(path: str, opts: LogOptions,
                    is_running: Callable[[], Awaitable[bool]] | None = None) -> AsyncIterator[bytes]:
    """Yield the rendered log of one container attempt; with `opts.follow`, keep going while running.

    `is_running` reports whether the container is still running; following stops
    once it says False and the files are drained (a missing callback = not running).
    """
    fmt = _Formatter(opts)
    joiner = _Joiner()
    files = log_files(path)
    # Non-follow part: everything already in the files (only the last file stays open for follow).
    tail: deque[LogLine] | None = deque(maxlen=opts.tail_lines) if opts.tail_lines is not None \
        and opts.tail_lines >= 0 else None
    pending_out: list[LogLine] = []
    fh = None
    buf = bytearray()
    for i, p in enumerate(files):
        f = _open(p)
        if f is None:
            continue
        local = bytearray()
        while True:
            lines, more = _read_lines(f, local)
            if not more:
                break
            for raw in lines:
                line = joiner.feed(raw)
                if line is not None:
                    (tail.append(line) if tail is not None else pending_out.append(line))
        if i == len(files) - 1:
            fh, buf = f, local
        else:
            f.close()
    if tail is not None:
        pending_out = list(tail)
    try:
        for line in pending_out:
            data = fmt.render(line)
            if data:
                yield data
            if fmt.done:
                return
        if not opts.follow:
            for line in joiner.flush():
                if data := fmt.render(line):
                    yield data
                if fmt.done:
                    return
            return
        async for data in _follow(path, fh, buf, joiner, fmt, is_running):
            yield data
            if fmt.done:
                return
    finally:
        if fh is not None:
            fh.close()


async def _follow(path: str, fh: object | None, buf: bytearray, joiner: _Joiner, fmt: _Formatter,
                  is_running: Callable[[], Awaitable[bool]] | None) -> AsyncIterator[bytes]:
    drained_after_exit = 0
    try:
        while True:
            if fh is None and (fh := _open(path)) is not None:
                buf = bytearray()
            got = False
            if fh is not None:
                lines, got = _read_lines(fh, buf)
                for raw in lines:
                    line = joiner.feed(raw)
                    if line is not None and (data := fmt.render(line)):
                        yield data
                        if fmt.done:
                            return
                if not got and _rotated(path, fh):
                    fh.close()  # type: ignore[attr-defined]
                    fh, buf = None, bytearray()
                    continue
            if got:
                drained_after_exit = 0
                continue
            running = await is_running() if is_running is not None else False
            if not running:
                # One more empty poll after exit: the runtime may still be flushing its pipes.
                drained_after_exit += 1
                if drained_after_exit > 1:
                    for line in joiner.flush():
                        if data := fmt.render(line):
                            yield data
                    return
            await asyncio.sleep(POLL_INTERVAL)
    finally:
        if fh is not None:
            fh.close()  # type: ignore[attr-defined]


def _open(path: str) -> BinaryIO | None:
    """Open a log file for reading (local disk: cheap enough to do inline); None when absent."""
    try:
        return open(path, "rb")  # noqa: SIM115 - the caller keeps it open while following
    except FileNotFoundError:
        return None


def _rotated(path: str, fh: object) -> bool:
    try:
        return os.stat(path).st_ino != os.fstat(fh.fileno()).st_ino  # type: ignore[attr-defined]
    except FileNotFoundError:
        return False
