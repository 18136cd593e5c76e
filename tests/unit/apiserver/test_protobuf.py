"""Kubernetes protobuf request bodies → the JSON kubectl would have sent.

The .bin fixtures are request bodies captured from the real kubectl 1.33.1
binary (`kubectl.1.33 --server http://127.0.0.1:PORT create ...` against a
logging aiohttp server).  Each matching .json is the same command's
`--dry-run=client -o json` output, i.e. Go's own JSON encoding of the object,
so decoding must reproduce it exactly.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from kubeling.api.errors import StatusError
from kubeling.apiserver.protobuf import PROTOBUF, decode_protobuf_object, go_duration
from kubeling.apiserver.serialization import decode_body

FIXTURES = Path(__file__).parent / "protobuf_fixtures"
NAMESPACE_FOO = (
    b'k8s\x00\n\x0f\n\x02v1\x12\tNamespace\x12\x1b\n\x13\n\x03foo\x12\x00\x1a\x00"\x00*\x002\x008\x00B\x00'
    b'\x12\x00\x1a\x02\n\x00\x1a\x00"\x00'
)


def fixture(name: str) -> dict[str, Any]:
    return decode_protobuf_object((FIXTURES / f"{name}.bin").read_bytes())


# --- a tiny encoder, to build bodies kubectl cannot be asked to send ---------------------------


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number: int, value: int | bytes | str) -> bytes:
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    data = value.encode() if isinstance(value, str) else value
    return varint(number << 3 | 2) + varint(len(data)) + data


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    return b"k8s\x00" + field(1, field(1, api_version) + field(2, kind)) + field(2, raw)


# --- real kubectl 1.33 bodies --------------------------------------------------------------------


def test_namespace_bytes_from_the_brief() -> None:
    assert decode_protobuf_object(NAMESPACE_FOO) == {
        "kind": "Namespace",
        "apiVersion": "v1",
        "metadata": {"name": "foo", "creationTimestamp": None},
        "spec": {},
        "status": {},
    }


@pytest.mark.parametrize("name", sorted(p.stem for p in FIXTURES.glob("*.json")))
def test_captured_body_decodes_to_kubectls_own_json(name: str) -> None:
    expected = json.loads((FIXTURES / f"{name}.json").read_text())
    assert fixture(name) == expected


def test_deployment() -> None:
    obj = fixture("deployment")
    assert obj["apiVersion"] == "apps/v1" and obj["kind"] == "Deployment"
    assert obj["spec"]["replicas"] == 2
    container = obj["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "nginx"
    assert container["ports"] == [{"containerPort": 80}]
    assert obj["spec"]["selector"] == {"matchLabels": {"app": "web"}}


def test_pointer_zero_is_kept() -> None:
    assert fixture("deployment_zero_replicas")["spec"]["replicas"] == 0


def test_service_target_port_is_an_int() -> None:
    port = fixture("service")["spec"]["ports"][0]
    assert port == {"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080}


def test_secret_and_configmap_data() -> None:
    assert fixture("secret")["data"] == {"p": base64.b64encode(b"q").decode()}
    assert fixture("configmap")["data"] == {"a": "b"}
    blob = base64.b64decode(fixture("configmap_binary")["binaryData"]["blob.bin"])
    assert blob.startswith(b"\x7fELF") and len(blob) == 300


def test_quota_quantities_are_strings() -> None:
    assert fixture("quota")["spec"]["hard"] == {"pods": "3", "cpu": "1"}


def test_misc_kinds() -> None:
    assert fixture("job")["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert fixture("cronjob")["spec"]["schedule"] == "*/1 * * * *"
    assert fixture("serviceaccount") == {
        "kind": "ServiceAccount",
        "apiVersion": "v1",
        "metadata": {"name": "sa", "creationTimestamp": None},
    }
    pc = fixture("priorityclass")
    assert (pc["apiVersion"], pc["value"]) == ("scheduling.k8s.io/v1", 10)
    assert fixture("pdb")["spec"]["minAvailable"] == "50%"  # IntOrString, string form
    backend = fixture("ingress")["spec"]["rules"][0]["http"]["paths"][0]["backend"]  # inline IngressRuleValue
    assert backend == {"service": {"name": "svc1", "port": {"number": 8080}}}
    assert fixture("clusterrole")["rules"] == [{"verbs": ["get"], "nonResourceURLs": ["/logs"]}]


def test_token_request() -> None:
    assert fixture("token")["spec"] == {"expirationSeconds": 3600}
    bound = fixture("token_bound")
    assert bound["apiVersion"] == "authentication.k8s.io/v1"
    assert bound["spec"]["boundObjectRef"] == {"kind": "Pod", "apiVersion": "v1", "name": "p", "uid": "123"}


def test_decode_body_dispatches_on_media_type() -> None:
    assert decode_body(NAMESPACE_FOO, f"{PROTOBUF}; charset=utf-8")["metadata"]["name"] == "foo"


# --- special types and wire details ---------------------------------------------------------------


def test_time_microtime_rawextension_packed_and_negative() -> None:
    created = field(8, field(1, 1_700_000_000))  # ObjectMeta.creationTimestamp (Time)
    meta = field(1, "l") + created + field(10, -5)  # deletionGracePeriodSeconds, a pointer
    micro = field(1, 1_700_000_000) + field(2, 123_456_789)
    spec = field(3, micro) + field(2, 30)  # LeaseSpec.acquireTime (MicroTime), leaseDurationSeconds
    lease = decode_protobuf_object(
        envelope("coordination.k8s.io/v1", "Lease", field(1, meta) + field(2, spec))
    )
    assert lease["metadata"] == {
        "name": "l",
        "creationTimestamp": "2023-11-14T22:13:20Z",
        "deletionGracePeriodSeconds": -5,
    }
    assert lease["spec"] == {"acquireTime": "2023-11-14T22:13:20.123456Z", "leaseDurationSeconds": 30}

    embedded = field(1, b'{"kind":"Pod","apiVersion":"v1"}')  # RawExtension with JSON inside
    event = decode_protobuf_object(envelope("v1", "WatchEvent", field(1, "ADDED") + field(2, embedded)))
    assert event == {
        "kind": "WatchEvent",
        "apiVersion": "v1",
        "type": "ADDED",
        "object": {"kind": "Pod", "apiVersion": "v1"},
    }

    packed = field(4, varint(1000) + varint(0))  # PodSecurityContext.supplementalGroups, packed int64
    ctx = decode_protobuf_object(envelope("v1", "Pod", field(2, field(14, packed))))
    assert ctx["spec"]["securityContext"] == {"supplementalGroups": [1000, 0]}


def test_wrapper_map_values_and_unknown_fields() -> None:
    extra = field(1, "k") + field(2, field(1, "a") + field(1, "b"))  # map<string, ExtraValue>
    spec = field(3, "alice") + field(5, extra) + field(99, "from a newer client")
    review = decode_protobuf_object(
        envelope("authorization.k8s.io/v1", "SubjectAccessReview", field(2, spec))
    )
    assert review["spec"] == {"user": "alice", "extra": {"k": ["a", "b"]}}


def test_meta_kinds_in_any_group() -> None:
    body = envelope("apps/v1", "DeleteOptions", field(1, 0) + field(4, "Foreground"))
    assert decode_protobuf_object(body) == {
        "kind": "DeleteOptions",
        "apiVersion": "apps/v1",
        "gracePeriodSeconds": 0,
        "propagationPolicy": "Foreground",
    }


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0s"),
        (1, "1ns"),
        (1500, "1.5µs"),
        (300_000_000, "300ms"),
        (3_600_000_000_000, "1h0m0s"),
        (90_500_000_000, "1m30.5s"),
        (-2_000_000_000, "-2s"),
    ],
)
def test_go_duration(ns: int, text: str) -> None:
    assert go_duration(ns) == text


# --- errors are always 400s -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"kind":"Namespace"}', "magic"),
        (NAMESPACE_FOO[:-12], "truncated"),
        (envelope("v1", "Nope", b""), 'no kind "Nope"'),
        (envelope("nope/v9", "Namespace", b""), 'no kind "Namespace"'),
        (b"k8s\x00", "Kind"),
        (envelope("v1", "Namespace", field(1, field(1, b"\xff\xfe"))), "UTF-8"),
        (envelope("v1", "Namespace", b"\x80"), "varint"),
        (envelope("v1", "Namespace", b"\x0f"), "wire type"),
        (envelope("v1", "Namespace", field(1, 7)), "wire type"),
    ],
)
def test_malformed_bodies_are_bad_requests(body: bytes, message: str) -> None:
    with pytest.raises(StatusError) as info:
        decode_body(body, PROTOBUF)
    assert info.value.code == 400
    assert message in str(info.value.message)


def test_deep_nesting_is_rejected() -> None:
    raw = b""
    for _ in range(200):  # WatchEvent → RawExtension → envelope → ...
        raw = envelope("v1", "WatchEvent", field(2, field(1, raw or b"{}")))
    with pytest.raises(StatusError) as info:
        decode_protobuf_object(raw)
    assert info.value.code == 400


# --- through the HTTP handlers --------------------------------------------------------------------


async def test_create_with_protobuf_body(api: Any) -> None:
    status, ns = await api.call("POST", "/api/v1/namespaces", raw=NAMESPACE_FOO, content_type=PROTOBUF)
    assert status == 201, ns
    assert ns["metadata"]["name"] == "foo" and ns["metadata"]["uid"]
    raw = (FIXTURES / "deployment.bin").read_bytes()
    status, dep = await api.call("POST", "/apis/apps/v1/namespaces/foo/deployments", raw=raw, content_type=PROTOBUF)
    assert status == 201, dep
    assert dep["spec"]["replicas"] == 2
    status, err = await api.call("POST", "/api/v1/namespaces", raw=b"k8s\x00\xff", content_type=PROTOBUF)
    assert status == 400 and err["reason"] == "BadRequest"
