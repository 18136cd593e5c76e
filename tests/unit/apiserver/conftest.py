"""An in-process API server on a temporary SQLite store, driven over HTTP by aiohttp's test client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from kubeling.apiserver.app import APIServer
from kubeling.storage.sqlite import SQLiteStore


class API:
    """Thin JSON helpers over the test client."""

    def __init__(self, client: TestClient, server: APIServer) -> None:
        self.client = client
        self.server = server

    async def call(self, method: str, path: str, body: Any = None, *, content_type: str = "application/json",
                   headers: dict[str, str] | None = None, raw: bytes | None = None) -> tuple[int, Any]:
        import orjson

        data = raw if raw is not None else (orjson.dumps(body) if body is not None else None)
        hdrs = {"Content-Type": content_type, **(headers or {})}
        async with self.client.request(method, path, data=data, headers=hdrs) as resp:
            text = await resp.read()
            try:
                return resp.status, orjson.loads(text)
            except orjson.JSONDecodeError:
                return resp.status, text


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[API]:
    server = APIServer(SQLiteStore(str(tmp_path / "state.db")))
    await server.start()
    client = TestClient(TestServer(server.app()))
    await client.start_server()
    try:
        yield API(client, server)
    finally:
        await client.close()
        await server.stop()
