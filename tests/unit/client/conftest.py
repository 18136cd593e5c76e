"""Fixtures for the client tests: a fake API server on a random port and a client for it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from kubeling.client.rest import KubeClient
from tests.unit.client.fake_kube_api import FakeAPI


@pytest.fixture
async def fake_api() -> AsyncIterator[FakeAPI]:
    api = FakeAPI()
    await api.start()
    yield api
    await api.stop()


@pytest.fixture
async def client(fake_api: FakeAPI) -> AsyncIterator[KubeClient]:
    async with KubeClient(fake_api.url, token="t0ken", timeout=5) as c:
        yield c
