"""The Kubernetes channel protocols: framing, base64, negotiation, error-channel payloads."""

from __future__ import annotations

import json

from kubeling.apiserver.streams import channels


def test_binary_and_base64_framing() -> None:
    v5 = channels.WS_EXEC["v5.channel.k8s.io"]
    assert v5.encode(1, b"hi") == b"\x01hi"
    assert v5.decode(b"\x00abc") == (0, b"abc")
    assert v5.decode(b"\xff\x00") == (255, b"\x00")
    assert v5.decode(b"") == (-1, b"")
    b64 = channels.WS_EXEC["v4.base64.channel.k8s.io"]
    assert b64.encode(2, b"hello") == "2aGVsbG8="
    assert b64.decode("0aGVsbG8=") == (0, b"hello")


def test_negotiation_follows_the_client_order() -> None:
    assert channels.negotiate(["v5.channel.k8s.io", "v4.channel.k8s.io"], channels.WS_EXEC).version == 5
    assert channels.negotiate(["x", "v4.channel.k8s.io", "v5.channel.k8s.io"], channels.WS_EXEC).version == 4
    assert channels.negotiate(["SPDY/3.1+portforward.k8s.io"], channels.WS_EXEC) is None
    assert channels.negotiate(["v4.channel.k8s.io"], channels.SPDY_EXEC).name == "v4.channel.k8s.io"


def test_status_payload_by_version() -> None:
    failure = channels.exit_status(3)
    assert failure["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]
    v4 = channels.SPDY_EXEC["v4.channel.k8s.io"]
    assert json.loads(v4.status_payload(failure))["reason"] == "NonZeroExitCode"
    v1 = channels.SPDY_EXEC["channel.k8s.io"]
    assert v1.status_payload(channels.exit_status(0)) == b""
    assert v1.status_payload(failure).startswith(b"command terminated with non-zero exit code")
    assert channels.port_prefix(8080) == b"\x90\x1f"
