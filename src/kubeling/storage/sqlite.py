"""SQLite backend of the store contract, after kine (k3s-io/kine).

* One append-only table `kv` whose INTEGER PRIMARY KEY *is* the revision: the state at R
  is the newest row of each name with id <= R, and a watch reads rows with id > N. A
  UNIQUE (name, prev_revision) index lets the database itself refuse two writes that
  follow the same row (compare-and-swap).
* One writer thread with group commit: revisions must be gap-free and commit in order,
  so one thread owns the write connection, drains every queued write, gives each its own
  revision and result (or exception) and commits them all in one transaction. Callers
  are answered only after COMMIT, a whole batch with one `call_soon_threadsafe`.
* WAL + synchronous=NORMAL: a commit is in the WAL before anyone is answered, so it
  survives kill -9 of the process (a power cut needs etcd's fsync per commit).
* Reads run on reader threads with their own connections, beside the writer (WAL);
  multi-statement reads share one read transaction, hence one snapshot.
* Watch = replay from the table, then follow the tail: each commit wakes the waiters,
  which re-query above what they have seen. A revision is published only once
  everything up to it is committed, so nothing is skipped.
* Compaction deletes rows superseded at or below the target, and tombstones, in chunks
  that also record the compacted revision: rows above it are always complete.

One process owns the file: `current_revision()` is served from memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from kubeling.storage.interface import (
    Compacted,
    Event,
    FutureRevision,
    KeyExists,
    KeyNotFound,
    KeyValue,
    RangeResult,
    RevisionMismatch,
    StoreError,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- the revision
    name TEXT NOT NULL,
    created INTEGER NOT NULL,              -- 1 for a create
    deleted INTEGER NOT NULL,              -- 1 for a tombstone (value = the deleted value)
    create_revision INTEGER NOT NULL,
    prev_revision INTEGER NOT NULL,        -- id of the previous row of this name (0 if none)
    value BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS kv_name_prev_revision ON kv (name, prev_revision);
CREATE INDEX IF NOT EXISTS kv_name_id ON kv (name, id);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
_LATEST = "SELECT id, deleted, create_revision, value FROM kv WHERE name = ? AND id <= ? ORDER BY id DESC LIMIT 1"
_NOW = 1 << 62  # "no revision bound"
_INSERT = ("INSERT INTO kv (id, name, created, deleted, create_revision, prev_revision, value) "
           "VALUES (?, ?, ?, ?, ?, ?, ?)")
_COMPACTED = "SELECT value FROM meta WHERE name = 'compact_rev'"
_MAX_BATCH = 1000  # writes per group commit
_WATCH_BATCH = 500  # rows per watch query
_COMPACT_CHUNK = 10_000  # revisions compacted per transaction, so writers are not starved

_Row = tuple[Any, ...]
_Op = tuple[str, tuple[Any, ...], "asyncio.Future[Any]"]
_Result = tuple["asyncio.Future[Any]", Any, BaseException | None]


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.executescript("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=10000;")
    return conn


@contextlib.contextmanager
def _read_tx(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One snapshot for several statements (autocommit would give each its own)."""
    conn.execute("BEGIN")
    try:
        yield conn
    finally:
        conn.execute("COMMIT")


def _name_range(prefix: str, start_after: str = "", column: str = "name") -> tuple[str, list[str]]:
    """SQL condition and parameters selecting names under `prefix` (and > `start_after`)."""
    cond, params = (f"{column} > ?", [start_after]) if start_after >= prefix else (f"{column} >= ?", [prefix])
    if prefix:  # the smallest string above every string starting with `prefix`
        cond += f" AND {column} < ?"
        params.append(prefix[:-1] + chr(ord(prefix[-1]) + 1))
    return cond, params


class SQLiteStore:
    """The `Store` contract on one SQLite file (kine's single-table design).

    Use it from one asyncio loop: `await start()` first, `await close()` last.
    """

    def __init__(self, path: str, *, compact_interval: float = 300.0, compact_keep: int = 1000) -> None:
        self.path = path
        self.compact_interval = compact_interval
        self.compact_keep = compact_keep
        self._queue: queue.SimpleQueue[_Op | None] = queue.SimpleQueue()
        self._local = threading.local()
        self._read_conns: list[sqlite3.Connection] = []
        self._rev = 0  # committed revision as the loop knows it (advanced only by _deliver)
        self._writer_rev = 0  # committed revision as the writer knows it (writer thread only)
        self._compacted = 0
        self._closed = False
        self._tail = asyncio.Event()  # replaced after every wake-up; set = "something changed"
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer: threading.Thread | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._compactor: asyncio.Task[None] | None = None

    async def start(self) -> None:
        conn = await asyncio.to_thread(self._open)
        self._loop = asyncio.get_running_loop()
        self._writer = threading.Thread(target=self._write_loop, args=(conn,), name="sqlite-writer", daemon=True)
        self._writer.start()
        self._readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="kubeling-sqlite-read")
        if self.compact_interval > 0:
            self._compactor = asyncio.create_task(self._compact_periodically(), name="sqlite-compactor")

    def _open(self) -> sqlite3.Connection:
        conn = _connect(self.path)
        conn.executescript(_SCHEMA)
        # Not max(id): the newest row may be a tombstone that compaction removed.
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'kv'").fetchone()
        self._rev = self._writer_rev = row[0] if row else 0
        self._compacted = self._snapshot_compacted(conn, 0)
        return conn

    async def close(self) -> None:
        was_open, self._closed = self._loop is not None and not self._closed, True
        if not was_open:
            return
        if self._compactor is not None:
            self._compactor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._compactor
        self._queue.put(None)  # the writer finishes everything queued before it, then exits
        assert self._writer is not None and self._readers is not None
        await asyncio.to_thread(self._writer.join)
        await asyncio.to_thread(self._readers.shutdown, True)
        for conn in self._read_conns:
            conn.close()
        self._wake()  # ends every watch

    # ---- writes (all through the writer thread) ---------------------------

    def _submit(self, kind: str, *args: Any) -> asyncio.Future[Any]:
        if self._closed or self._loop is None:
            raise StoreError("store is closed" if self._closed else "store is not started")
        fut = self._loop.create_future()
        self._queue.put((kind, args, fut))
        return fut

    async def create(self, key: str, value: bytes) -> KeyValue:
        return await self._submit("create", key, value)  # type: ignore[no-any-return]

    async def update(self, key: str, value: bytes, *, expected_revision: int) -> KeyValue:
        return await self._submit("update", key, value, expected_revision)  # type: ignore[no-any-return]

    async def delete(self, key: str, *, expected_revision: int = 0) -> KeyValue:
        return await self._submit("delete", key, expected_revision)  # type: ignore[no-any-return]

    async def compact(self, revision: int) -> None:
        target = min(revision, self._rev)
        while self._compacted < target:
            done = await self._submit("compact", min(target, self._compacted + _COMPACT_CHUNK))
            self._compacted = max(self._compacted, done)

    def _write_loop(self, conn: sqlite3.Connection) -> None:
        stop = False
        while not stop:
            batch = [self._queue.get()]
            while len(batch) < _MAX_BATCH and not self._queue.empty():  # we are the only consumer
                batch.append(self._queue.get_nowait())
            stop = batch[-1] is None  # close() queues None after the last write
            if ops := [op for op in batch if op is not None]:
                self._commit_batch(conn, ops)
        conn.close()

    def _commit_batch(self, conn: sqlite3.Connection, batch: list[_Op]) -> None:
        rev = committed = self._writer_rev
        results: list[_Result] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for kind, args, fut in batch:
                try:
                    res, rev = self._apply(conn, kind, args, rev)
                    results.append((fut, res, None))
                except StoreError as exc:  # a refused write: nothing was appended
                    results.append((fut, None, exc))
            conn.execute("COMMIT")
            committed = self._writer_rev = rev
        except Exception as exc:  # the whole batch is lost; nobody may believe their write happened
            log.exception("sqlite store: write batch of %d failed", len(batch))
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            results = [(fut, None, StoreError(f"write failed: {exc}")) for _, _, fut in batch]
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
            self._loop.call_soon_threadsafe(self._deliver, results, committed)

    @staticmethod
    def _apply(conn: sqlite3.Connection, kind: str, args: tuple[Any, ...], rev: int) -> tuple[Any, int]:
        if kind == "compact":
            return SQLiteStore._compact_chunk(conn, args[0]), rev
        key = args[0]
        row = conn.execute(_LATEST, (key, _NOW)).fetchone()
        live = row is not None and not row[1]
        rev += 1
        if kind == "create":
            if live:
                raise KeyExists(key)
            conn.execute(_INSERT, (rev, key, 1, 0, rev, row[0] if row else 0, args[1]))
            return KeyValue(key, args[1], rev, rev), rev
        if not live:
            raise KeyNotFound(key)
        expected = args[2] if kind == "update" else args[1]
        if (expected or kind == "update") and row[0] != expected:  # delete(expected_revision=0) is unguarded
            raise RevisionMismatch(key, KeyValue(key, row[3], row[2], row[0]))
        if kind == "update":
            conn.execute(_INSERT, (rev, key, 0, 0, row[2], row[0], args[1]))
            return KeyValue(key, args[1], row[2], rev), rev
        conn.execute(_INSERT, (rev, key, 0, 1, row[2], row[0], row[3]))
        return KeyValue(key, row[3], row[2], rev), rev

    @staticmethod
    def _compact_chunk(conn: sqlite3.Connection, hi: int) -> int:
        lo = SQLiteStore._snapshot_compacted(conn, 0)
        if hi <= lo:
            return lo
        # A row is superseded when a newer row of its name (whose prev_revision it is) is <= hi.
        conn.execute("DELETE FROM kv WHERE id IN (SELECT prev_revision FROM kv WHERE id > ? AND id <= ? "
                     "AND prev_revision > 0)", (lo, hi))
        conn.execute("DELETE FROM kv WHERE id > ? AND id <= ? AND deleted = 1", (lo, hi))
        conn.execute("INSERT INTO meta (name, value) VALUES ('compact_rev', ?) "
                     "ON CONFLICT (name) DO UPDATE SET value = excluded.value", (hi,))
        return hi

    def _deliver(self, results: list[_Result], committed: int) -> None:
        if committed > self._rev:
            self._rev = committed
            self._wake()
        for fut, res, exc in results:
            if fut.cancelled():  # the write happened anyway, like an etcd request whose client left
                continue
            fut.set_result(res) if exc is None else fut.set_exception(exc)

    def _wake(self) -> None:
        self._tail.set()
        self._tail = asyncio.Event()

    # ---- reads: on reader threads; Compacted is checked in each read's own snapshot ----------

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed or self._readers is None or self._loop is None:
            raise StoreError("store is closed" if self._closed else "store is not started")
        try:
            return await self._loop.run_in_executor(self._readers, fn, *args)
        except RuntimeError as exc:  # executor shut down under us
            raise StoreError("store is closed") from exc

    def _conn(self) -> sqlite3.Connection:
        if (conn := getattr(self._local, "conn", None)) is None:
            conn = self._local.conn = _connect(self.path)
            self._read_conns.append(conn)
        return conn

    @staticmethod
    def _snapshot_compacted(conn: sqlite3.Connection, revision: int) -> int:
        """The compacted revision (in a read transaction); raise if a non-zero `revision` is below it."""
        row = conn.execute(_COMPACTED).fetchone()
        compacted = row[0] if row else 0
        if 0 < revision < compacted:
            raise Compacted(revision, compacted)
        return compacted

    async def current_revision(self) -> int:
        return self._rev

    async def compacted_revision(self) -> int:
        return self._compacted

    async def get(self, key: str, *, revision: int = 0) -> KeyValue | None:
        """As the contract; with a revision, raises Compacted / FutureRevision like `range`."""
        if revision > self._rev:
            raise FutureRevision(revision, self._rev)
        return await self._read(self._get_sync, key, revision)

    def _get_sync(self, key: str, revision: int) -> KeyValue | None:
        if not revision:
            row = self._conn().execute(_LATEST, (key, _NOW)).fetchone()
        else:
            with _read_tx(self._conn()) as conn:
                self._snapshot_compacted(conn, revision)
                row = conn.execute(_LATEST, (key, revision)).fetchone()
        if row is None or row[1]:
            return None
        return KeyValue(key, row[3], row[2], row[0])

    async def range(self, prefix: str, *, start_after: str = "", limit: int = 0,
                    revision: int = 0) -> RangeResult:
        if revision > self._rev:
            raise FutureRevision(revision, self._rev)
        return await self._read(self._range_sync, prefix, start_after, limit, revision or self._rev)

    def _range_sync(self, prefix: str, start_after: str, limit: int, revision: int) -> RangeResult:
        cond, params = _name_range(prefix, start_after)
        # The newest row of each name at or below `revision`, if it is not a tombstone. Walking
        # the (name, id) index in name order lets SQLite stop after `limit` names.
        where = (f"FROM kv WHERE {cond} AND id <= ? AND deleted = 0 AND id = "
                 "(SELECT MAX(k2.id) FROM kv AS k2 WHERE k2.name = kv.name AND k2.id <= ?)")
        args = [*params, revision, revision]
        with _read_tx(self._conn()) as conn:
            self._snapshot_compacted(conn, revision)
            rows = conn.execute(f"SELECT name, value, create_revision, id {where} ORDER BY name LIMIT ?",
                                [*args, limit + 1 if limit > 0 else -1]).fetchall()
            more = 0 < limit < len(rows)
            count = conn.execute(f"SELECT COUNT(*) {where}", args).fetchone()[0] if more else len(rows)
        kvs = [KeyValue(r[0], r[1], r[2], r[3]) for r in (rows[:limit] if more else rows)]
        return RangeResult(kvs=kvs, revision=revision, more=more, count=count)

    async def count(self, prefix: str) -> int:
        return (await self.range(prefix, limit=1)).count  # a range counts what it does not return

    async def watch(self, prefix: str, *, after_revision: int) -> AsyncIterator[Event]:
        """As the contract. `after_revision=0` replays what the table holds (after compaction:
        the state at the compacted revision, then every later change) and is never Compacted."""
        after = scanned = after_revision  # no event for `prefix` in (after, scanned] is left undelivered
        started: int | None = None  # the compacted revision when the watch began
        while not self._closed:
            if (hi := self._rev) <= scanned and started is not None:
                await self._tail.wait()
                continue
            try:
                rows, compacted, lost = await self._read(self._events_sync, prefix, scanned, hi)
            except StoreError:
                if self._closed:
                    return
                raise
            if started is None:
                started = compacted
                if 0 < after < compacted:  # asked for history that is gone (410 Gone)
                    raise Compacted(after, compacted)
            # Compaction overtook us: fatal only if it deleted rows we had not read yet (etcd's
            # synced watchers are not hurt by a compaction either). A replay from 0 expects the
            # rows compacted before it began to be missing.
            elif compacted > scanned and compacted != started and (lost or scanned < started):
                raise Compacted(scanned, compacted)
            for row in rows:
                yield self._event(row)
            scanned = rows[-1][0] if len(rows) == _WATCH_BATCH else max(hi, scanned)

    def _events_sync(self, prefix: str, after: int, hi: int) -> tuple[list[_Row], int, int]:
        """Rows in (after, hi], the compacted revision, and the rows compaction deleted in (after, it]."""
        cond, params = _name_range(prefix, column="kv.name")
        with _read_tx(self._conn()) as conn:
            compacted = self._snapshot_compacted(conn, 0)
            lost = 0 if compacted <= after else compacted - after - conn.execute(  # one row per revision
                "SELECT COUNT(*) FROM kv WHERE id > ? AND id <= ?", (after, compacted)).fetchone()[0]
            rows = conn.execute(
                "SELECT kv.id, kv.name, kv.created, kv.deleted, kv.create_revision, kv.prev_revision, "
                "kv.value, p.value FROM kv LEFT JOIN kv AS p ON p.id = kv.prev_revision "
                f"WHERE kv.id > ? AND kv.id <= ? AND {cond} ORDER BY kv.id LIMIT ?",
                [after, hi, *params, _WATCH_BATCH]).fetchall()
        return rows, compacted, lost

    @staticmethod
    def _event(row: _Row) -> Event:
        rev, name, created, deleted, create_rev, prev_rev, value, prev_value = row
        kv = KeyValue(name, value, create_rev, rev)
        prev = None if created or prev_value is None else KeyValue(name, prev_value, create_rev, prev_rev)
        return Event("DELETE" if deleted else "PUT", kv, prev)

    async def _compact_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.compact_interval)
            try:
                if (target := self._rev - self.compact_keep) > self._compacted:
                    await self.compact(target)
            except Exception:
                if self._closed:
                    return
                log.exception("sqlite store: compaction failed")
