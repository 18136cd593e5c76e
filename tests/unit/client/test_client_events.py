"""EventRecorder: client-go-shaped Events, aggregation within ten minutes, never raising."""

from __future__ import annotations

import re

from kubeling.client.events import EventRecorder
from kubeling.client.rest import KubeClient
from tests.unit.client.fake_kube_api import FakeAPI

EVENTS = ("", "v1", "events")
POD = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "web-1", "namespace": "prod", "uid": "u-1", "resourceVersion": "7"}}


def events(fake_api: FakeAPI) -> list[dict]:
    return list(fake_api.objects.get(EVENTS, {}).values())


async def test_event_shape(client: KubeClient, fake_api: FakeAPI) -> None:
    recorder = EventRecorder(client, component="default-scheduler", host="node-a", clock=lambda: 1_700_000_000.0)
    await recorder.event(POD, "Warning", "FailedScheduling", "0/3 nodes are available")
    [event] = events(fake_api)
    assert re.fullmatch(r"web-1\.[0-9a-f]{16}", event["metadata"]["name"])
    assert event["metadata"]["namespace"] == "prod"
    assert event["involvedObject"] == {"kind": "Pod", "namespace": "prod", "name": "web-1", "uid": "u-1",
                                       "apiVersion": "v1", "resourceVersion": "7"}
    assert (event["type"], event["reason"], event["message"], event["count"]) == (
        "Warning", "FailedScheduling", "0/3 nodes are available", 1)
    assert event["source"] == {"component": "default-scheduler", "host": "node-a"}
    assert event["firstTimestamp"] == event["lastTimestamp"] == "2023-11-14T22:13:20Z"
    assert (event["reportingComponent"], event["reportingInstance"]) == ("default-scheduler", "node-a")


async def test_aggregation_within_ten_minutes(client: KubeClient, fake_api: FakeAPI) -> None:
    now = [1_700_000_000.0]
    recorder = EventRecorder(client, component="kubelet", host="n", clock=lambda: now[0])
    await recorder.event(POD, "Normal", "Pulled", "image pulled")
    now[0] += 60
    await recorder.event(POD, "Normal", "Pulled", "image pulled")
    now[0] += 60
    await recorder.event(POD, "Normal", "Pulled", "image pulled")
    [event] = events(fake_api)
    assert event["count"] == 3 and event["lastTimestamp"] == "2023-11-14T22:15:20Z"
    assert event["firstTimestamp"] == "2023-11-14T22:13:20Z"
    assert [q.method for q in fake_api.requests] == ["POST", "PATCH", "PATCH"]
    assert fake_api.requests[-1].body == {"count": 3, "lastTimestamp": "2023-11-14T22:15:20Z"}

    await recorder.event(POD, "Normal", "Started", "started")  # a different reason: a new Event
    now[0] += 601  # past the window: a new series for the same message
    await recorder.event(POD, "Normal", "Pulled", "image pulled")
    assert len(events(fake_api)) == 3


async def test_cluster_scoped_object_and_expired_event(client: KubeClient, fake_api: FakeAPI) -> None:
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "uid": "u-n1"}}
    recorder = EventRecorder(client, component="node-controller", host="")
    await recorder.event(node, "Normal", "RegisteredNode", "registered")
    [event] = events(fake_api)
    assert event["metadata"]["namespace"] == "default" and "namespace" not in event["involvedObject"]
    assert event["source"] == {"component": "node-controller"}
    fake_api.objects[EVENTS].clear()  # the server's TTL removed it
    await recorder.event(node, "Normal", "RegisteredNode", "registered")
    assert [e["count"] for e in events(fake_api)] == [1]


async def test_never_raises() -> None:
    async with KubeClient("http://127.0.0.1:9", timeout=0.5) as dead:
        await EventRecorder(dead, component="x").event(POD, "Normal", "R", "m")
