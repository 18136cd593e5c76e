"""A real in-process API server (SQLite in the test's tmp dir) behind a loopback HTTP port,
with a `KubeClient` talking to it: the shared start/stop for component tests that need one."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp.test_utils import TestServer

from kubeling.apiserver.app import APIServer
from kubeling.client.rest import KubeClient
from kubeling.storage.sqlite import SQLiteStore


@contextlib.asynccontextmanager
async def live_apiserver(tmp_path: Path) -> AsyncIterator[tuple[APIServer, KubeClient]]:
    """(server, client) until the block exits; then the client, the HTTP port and the server close."""
    server = APIServer(SQLiteStore(str(tmp_path / "state.db")))
    await server.start()
    http = TestServer(server.app(), host="127.0.0.1")
    await http.start_server()
    try:
        async with KubeClient(str(http.make_url("")).rstrip("/")) as client:
            yield server, client
    finally:
        await http.close()
        await server.stop()
