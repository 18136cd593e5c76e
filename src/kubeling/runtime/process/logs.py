"""Container logs in the CRI file format, written with rotation, read back by the kubelet.

Why this format: it is what containerd and CRI-O write and what the kubelet's
`pods/log` code parses — `<RFC3339Nano> <stdout|stderr> <F|P> <content>\\n`,
one entry per line of output; a line longer than the maximum entry size is
split into `P` (partial) entries ending with an `F` one, exactly like
containerd's 16 KiB buffer. Rotation keeps one previous file (`<path>.1`) so
`kubectl logs` never reads unbounded files and `--previous` logs of a
restarted container (a different file, by attempt) are unaffected.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

MAX_LINE = 16 * 1024


def rfc3339nano(ns: int | None = None) -> str:
    ns = time.time_ns() if ns is None else ns
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


class CriLogWriter:
    """Appends CRI entries to `path`, rotating to `path.1` before exceeding `max_bytes`."""

    def __init__(self, path: str, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        self._file = open(path, "ab")  # noqa: SIM115 - owned for the writer's lifetime
        self._size = self._file.tell()

    def write(self, stream: str, content: bytes, *, partial: bool = False) -> None:
        entry = b"%s %s %s %s\n" % (rfc3339nano().encode(), stream.encode(), b"P" if partial else b"F", content)
        if self._size and self._size + len(entry) > self.max_bytes:
            self._rotate()
        self._file.write(entry)
        self._size += len(entry)

    def flush(self) -> None:
        self._file.flush()

    def _rotate(self) -> None:
        self._file.close()
        os.replace(self.path, self.path + ".1")
        self._file = open(self.path, "ab")  # noqa: SIM115
        self._size = 0

    def close(self) -> None:
        self._file.close()


class LineSplitter:
    """Turns a byte stream into (content, partial) entries; `max_line` bounds an entry."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self._buf = b""

    def feed(self, data: bytes) -> Iterator[tuple[bytes, bool]]:
        self._buf += data
        while True:
            nl = self._buf.find(b"\n")
            if 0 <= nl <= self.max_line:
                line, self._buf = self._buf[:nl], self._buf[nl + 1 :]
                yield line.removesuffix(b"\r"), False
            elif len(self._buf) >= self.max_line:
                chunk, self._buf = self._buf[: self.max_line], self._buf[self.max_line :]
                yield chunk, True
            else:
                return

    def finish(self) -> Iterator[tuple[bytes, bool]]:
        """At end of stream a trailing line without newline is a full entry (containerd does the same)."""
        if self._buf:
            line, self._buf = self._buf, b""
            yield line, False


@dataclass(frozen=True)
class CriEntry:
    """One parsed log entry."""

    timestamp: str
    stream: str
    partial: bool
    content: bytes


def parse_cri_line(line: bytes) -> CriEntry | None:
    """Parse one line of a CRI log file (without or with its newline); None if malformed."""
    parts = line.rstrip(b"\n").split(b" ", 3)
    if len(parts) < 3 or parts[1] not in (b"stdout", b"stderr"):
        return None
    content = parts[3] if len(parts) == 4 else b""
    return CriEntry(parts[0].decode(), parts[1].decode(), parts[2] == b"P", content)


def read_cri_log(path: str, *, include_rotated: bool = True) -> Iterator[CriEntry]:
    """Every entry of a container's log, oldest first (the rotated file, then the current one)."""
    paths = [path + ".1", path] if include_rotated else [path]
    for p in paths:
        try:
            with open(p, "rb") as f:
                for line in f:
                    entry = parse_cri_line(line)
                    if entry is not None:
                        yield entry
        except FileNotFoundError:
            continue


def join_partials(entries: Iterator[CriEntry]) -> Iterator[CriEntry]:
    """Merge P entries into the F entry that completes them (what `kubectl logs` shows)."""
    pending: dict[str, list[bytes]] = {}
    for e in entries:
        if e.partial:
            pending.setdefault(e.stream, []).append(e.content)
            continue
        parts = pending.pop(e.stream, [])
        yield CriEntry(e.timestamp, e.stream, False, b"".join([*parts, e.content]))
