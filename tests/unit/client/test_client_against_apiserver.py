"""The client against the real in-process API server: the wire format is the real one, not our fake's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kubeling.api.errors import StatusError
from kubeling.client import resources as r
from kubeling.client.informer import Informer
from kubeling.client.leaderelection import LeaderElector
from kubeling.client.rest import KubeClient
from tests.unit.apiserver.live import live_apiserver
from tests.unit.client.fake_kube_api import eventually


@pytest.fixture
async def real(tmp_path: Path) -> AsyncIterator[KubeClient]:
    async with live_apiserver(tmp_path) as (_server, client):
        yield client


def configmap(name: str, **labels: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default",
                                                                  "labels": labels}}


async def test_errors_paging_and_informer(real: KubeClient) -> None:
    await real.create(r.CONFIGMAPS, configmap("a"))
    with pytest.raises(StatusError) as info:
        await real.create(r.CONFIGMAPS, configmap("a"))
    assert (info.value.code, info.value.reason, info.value.name) == (409, "AlreadyExists", "a")
    with pytest.raises(StatusError) as info:
        await real.create(r.CONFIGMAPS, configmap("Bad_"))
    assert info.value.code == 422 and info.value.causes[0].field == "metadata.name"

    for i in range(6):
        await real.create(r.CONFIGMAPS, configmap(f"c{i}", parity=str(i % 2)))
    page = await real.list(r.CONFIGMAPS, namespace="default", limit=3)
    assert len(page["items"]) == 3 and page["metadata"]["continue"]
    assert len((await real.list_all(r.CONFIGMAPS, namespace="default", limit=3))["items"]) == 7

    informer = Informer(real, r.CONFIGMAPS, namespace="default")
    deleted: list[str] = []
    informer.add_handler(on_delete=lambda o: deleted.append(o["metadata"]["name"]))
    await informer.start()
    try:
        assert await informer.wait_synced(5) and len(informer.list()) == 7
        await real.delete_collection(r.CONFIGMAPS, namespace="default", label_selector="parity=1")
        await eventually(lambda: len(informer.list()) == 4)
        assert sorted(deleted) == ["c1", "c3", "c5"]
        assert len(informer.indexer.list_by_labels("default", {"parity": "0"})) == 3
    finally:
        await informer.stop()


async def test_lease_and_binding(real: KubeClient) -> None:
    elector = LeaderElector(real, name="ctrl", identity="me", lease_duration=2, renew_deadline=1, retry_period=0.1)
    seen: list[bool] = []

    async def work() -> None:
        seen.append(elector.is_leader)

    await elector.run(work)
    assert seen == [True]
    lease = await real.get(r.LEASES, "ctrl", namespace="kube-system")
    assert lease["spec"]["holderIdentity"] == ""  # released on the way out

    await real.create(r.PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
                               "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    await real.create(r.PODS, {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p", "namespace": "default"},
                               "target": {"kind": "Node", "name": "n1"}}, subresource="binding")
    assert (await real.get(r.PODS, "p", namespace="default"))["spec"]["nodeName"] == "n1"
