"""The Kubernetes WebSocket channel protocols (channel.k8s.io, v4, v5 and base64 variants).

Every WebSocket message carries one channel's bytes: binary protocols prefix the payload
with the channel byte, base64 protocols send a text message of the channel as an ASCII
digit followed by the base64 payload. What differs between versions is what the
*error* channel (3) carries and whether half-close exists:

* channel.k8s.io (and v2/v3 names over SPDY): channel 3 carries the failure *text*;
  success is silence, so the exit code is lost.
* v4: channel 3 carries a metav1.Status JSON; NonZeroExitCode carries the exit code in
  details.causes[reason=ExitCode].
* v5: v4 plus the CLOSE signal `[255, channel]` (the client closes stdin).

The kubelet always speaks v5 binary to us; these helpers translate at the edge.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE = 255

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
PORTFORWARD_SPDY = "portforward.k8s.io"
SPDY_WS_PORTFORWARD = "SPDY/3.1+portforward.k8s.io"


@dataclass(frozen=True)
class ChannelProtocol:
    """One negotiated channel sub-protocol: how to frame, and what channel 3 means."""

    name: str
    version: int  # 1 (pre-v4), 2, 3, 4 or 5
    base64: bool = False

    def encode(self, channel: int, payload: bytes) -> bytes | str:
        if self.base64:
            return chr(ord("0") + channel) + base64.b64encode(payload).decode()
        return bytes([channel]) + payload

    def decode(self, message: bytes | str) -> tuple[int, bytes]:
        """(channel, payload) of one message; (-1, b"") for an empty one."""
        if not message:
            return -1, b""
        if isinstance(message, str):
            channel = ord(message[0]) - ord("0")
            if channel == CLOSE - ord("0") or not 0 <= channel <= 9:
                channel = ord(message[0])
            try:
                return channel, base64.b64decode(message[1:])
            except ValueError:
                return channel, message[1:].encode()
        return message[0], bytes(message[1:])

    def status_payload(self, status: dict[str, Any]) -> bytes:
        """What to write on the error channel for a v5 Status from the kubelet."""
        if self.version >= 4:
            return json.dumps(status, separators=(",", ":")).encode()
        if status.get("status") == "Success":
            return b""
        return str(status.get("message", "")).encode()

    @property
    def has_close(self) -> bool:
        return self.version >= 5


def _protocols(*entries: tuple[str, int, bool]) -> dict[str, ChannelProtocol]:
    return {name: ChannelProtocol(name, version, b64) for name, version, b64 in entries}


# WebSocket exec/attach: what kubelet's wsstream accepts (plus v2/v3 names, same as pre-v4).
WS_EXEC = _protocols((V5, 5, False), ("v5.base64.channel.k8s.io", 5, True), (V4, 4, False),
                     ("v4.base64.channel.k8s.io", 4, True), ("v3.channel.k8s.io", 3, False),
                     ("v2.channel.k8s.io", 2, False), ("channel.k8s.io", 1, False),
                     ("base64.channel.k8s.io", 1, True))
# SPDY exec/attach (X-Stream-Protocol-Version); streams replace channel bytes.
SPDY_EXEC = _protocols((V5, 5, False), (V4, 4, False), ("v3.channel.k8s.io", 3, False),
                       ("v2.channel.k8s.io", 2, False), ("channel.k8s.io", 1, False))
# WebSocket port-forward (python clients): v4 binary/base64, or the legacy unnamed binary.
WS_PORTFORWARD = _protocols((V4, 4, False), ("v4.base64.channel.k8s.io", 4, True),
                            ("channel.k8s.io", 1, False), ("base64.channel.k8s.io", 1, True))


def negotiate(offered: list[str], supported: dict[str, ChannelProtocol]) -> ChannelProtocol | None:
    """The first protocol in the *client's* order that we support (as Go's handshakes do)."""
    for name in offered:
        if name in supported:
            return supported[name]
    return None


def exit_status(code: int, command: list[str] | None = None) -> dict[str, Any]:
    """The v4/v5 Status for a command's exit code, as kubelet reports it (a kubelet helper)."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: error executing command "
                       f"[{' '.join(command or [])}], exit code {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def failure_status(message: str, reason: str = "InternalError", code: int = 500) -> dict[str, Any]:
    return {"metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code}


def port_prefix(port: int) -> bytes:
    """The first message on each port-forward channel: the port as little-endian uint16."""
    return port.to_bytes(2, "little")
