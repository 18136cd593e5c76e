"""CRI log reading: tail, since, timestamps, partial lines, limitBytes, rotation, follow."""
# ruff: noqa: ASYNC230, ASYNC240  (tests read and write small tmp files inline, on purpose)

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from kubeling.kubelet.logs import LogOptions, format_time_ns, parse_time_ns, read_logs

T0 = parse_time_ns("2026-01-02T03:04:05.000000001Z")


def rec(sec: int, content: str, stream: str = "stdout", tag: str = "F") -> str:
    return f"{format_time_ns(T0 + sec * 1_000_000_000)} {stream} {tag} {content}\n"


async def collect(path: str, opts: LogOptions, running: bool = False) -> str:
    async def is_running() -> bool:
        return running

    return b"".join([c async for c in read_logs(path, opts, is_running)]).decode()


@pytest.fixture
def log_file(tmp_path: Path) -> str:
    path = tmp_path / "0.log"
    path.write_text(rec(0, "one") + rec(1, "tw", tag="P") + rec(1, "o") + rec(2, "err", "stderr")
                    + rec(3, "three") + "garbage line\n" + rec(4, "four"))
    return str(path)


@pytest.mark.parametrize(("opts", "want"), [
    (LogOptions(), "one\ntwo\nerr\nthree\nfour\n"),
    (LogOptions(tail_lines=2), "three\nfour\n"),
    (LogOptions(tail_lines=0), ""),
    (LogOptions(tail_lines=100), "one\ntwo\nerr\nthree\nfour\n"),
    (LogOptions(since_ns=T0 + 2_000_000_000), "err\nthree\nfour\n"),
    (LogOptions(limit_bytes=6), "one\ntw"),
    (LogOptions(tail_lines=1, timestamps=True), "2026-01-02T03:04:09.000000001Z four\n"),
])
async def test_read(log_file: str, opts: LogOptions, want: str) -> None:
    assert await collect(log_file, opts) == want


def test_time_round_trip() -> None:
    assert format_time_ns(parse_time_ns("2026-01-02T03:04:05.5Z")) == "2026-01-02T03:04:05.500000000Z"
    assert parse_time_ns("2026-01-02T04:04:05+01:00") == parse_time_ns("2026-01-02T03:04:05Z")
    with pytest.raises(ValueError):
        parse_time_ns("yesterday")


async def test_rotation_files_read_in_order(tmp_path: Path) -> None:
    path = tmp_path / "1.log"
    Path(f"{path}.2").write_text(rec(0, "a"))
    Path(f"{path}.1").write_text(rec(1, "b"))
    path.write_text(rec(2, "c"))
    assert await collect(str(path), LogOptions()) == "a\nb\nc\n"
    assert await collect(str(path), LogOptions(tail_lines=2)) == "b\nc\n"


async def test_follow_until_exit_and_across_rotation(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    path.write_text(rec(0, "start"))
    state = {"running": True}

    async def is_running() -> bool:
        return state["running"]

    got: list[bytes] = []

    async def reader() -> None:
        async for chunk in read_logs(str(path), LogOptions(follow=True), is_running):
            got.append(chunk)

    task = asyncio.create_task(reader())
    await asyncio.sleep(0.15)
    with path.open("a") as f:
        f.write(rec(1, "more"))
    await asyncio.sleep(0.25)
    assert b"".join(got) == b"start\nmore\n"
    os.rename(path, f"{path}.1")  # the runtime rotates: the reader must move to the new file
    path.write_text(rec(2, "rotated"))
    await asyncio.sleep(0.3)
    assert not task.done()
    with path.open("a") as f:
        f.write(rec(3, "last"))
    state["running"] = False
    await asyncio.wait_for(task, 3)
    assert b"".join(got) == b"start\nmore\nrotated\nlast\n"


async def test_follow_waits_for_missing_file_and_ends_when_never_running(tmp_path: Path) -> None:
    assert await asyncio.wait_for(collect(str(tmp_path / "none.log"), LogOptions(follow=True)), 3) == ""
