"""Pod IPs for no-root mode: one loopback address per pod.

Why: without root there is no network namespace per pod, so every pod shares
the host network. Linux routes all of 127.0.0.0/8 to `lo` with no configuration,
so giving each pod its own 127.x.y.z lets three replicas of a web server all
bind port 8080 on their own `status.podIP` — the property Services, readiness
probes and `$(POD_IP)` binds rely on. Addresses are handed out round-robin (a
released address is not reused at once, like CNI host-local) and persisted to a
small JSON file so a kubelet restart gives running pods the same address back.
"""

from __future__ import annotations

import ipaddress
import json
import os
import threading

_LOOPBACK_DEFAULT = ipaddress.ip_address("127.0.0.1")


class PodIPExhausted(Exception):
    """Every address of the range is in use."""


class PodIPAllocator:
    """Allocates stable per-pod addresses from `range_cidr`; persisted under `root_dir` when given."""

    def __init__(self, range_cidr: str = "127.42.0.0/16", *, root_dir: str | None = None,
                 state_file: str | None = None) -> None:
        self.network = ipaddress.ip_network(range_cidr, strict=False)
        if self.network.version != 4:
            raise ValueError("pod IP range must be IPv4")
        self.state_file = state_file or (os.path.join(root_dir, "pod-ips.json") if root_dir else None)
        self._lock = threading.Lock()
        self._by_uid: dict[str, str] = {}
        self._cursor = int(self.network.network_address)
        self._load()

    # -- persistence -----------------------------------------------------------------------------

    def _load(self) -> None:
        if not self.state_file or not os.path.exists(self.state_file):
            return
        try:
            with open(self.state_file, encoding="utf-8") as f:
                state = json.load(f)
        except (OSError, ValueError):
            return
        if state.get("range") != str(self.network):
            return  # range changed: old addresses are meaningless
        self._by_uid = {str(k): str(v) for k, v in (state.get("pods") or {}).items()
                        if self._usable(ipaddress.ip_address(v))}
        self._cursor = int(state.get("last") or self._cursor)

    def _save(self) -> None:
        if not self.state_file:
            return
        os.makedirs(os.path.dirname(self.state_file) or ".", exist_ok=True)
        tmp = f"{self.state_file}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"range": str(self.network), "last": self._cursor, "pods": self._by_uid}, f)
        os.replace(tmp, self.state_file)

    # -- allocation ------------------------------------------------------------------------------

    def _usable(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        if ip not in self.network or ip == _LOOPBACK_DEFAULT:
            return False
        if self.network.num_addresses > 2 and ip in (self.network.network_address,
                                                      self.network.broadcast_address):
            return False
        return True

    def allocate(self, pod_uid: str) -> str:
        """The pod's address (the same one for the same uid, across restarts); PodIPExhausted when full."""
        with self._lock:
            if pod_uid in self._by_uid:
                return self._by_uid[pod_uid]
            used = set(self._by_uid.values())
            first = int(self.network.network_address)
            size = self.network.num_addresses
            for step in range(1, size + 1):
                candidate = first + (self._cursor - first + step) % size
                ip = ipaddress.ip_address(candidate)
                if self._usable(ip) and str(ip) not in used:
                    self._cursor = candidate
                    self._by_uid[pod_uid] = str(ip)
                    self._save()
                    return str(ip)
            raise PodIPExhausted(f"no free pod IP left in {self.network} ({len(used)} in use)")

    def release(self, pod_uid: str) -> None:
        """Free the pod's address (no-op when it has none)."""
        with self._lock:
            if self._by_uid.pop(pod_uid, None) is not None:
                self._save()

    def get(self, pod_uid: str) -> str | None:
        """The address already allocated to `pod_uid`, if any."""
        return self._by_uid.get(pod_uid)

    def allocations(self) -> dict[str, str]:
        """A copy of pod uid → address."""
        return dict(self._by_uid)

    def retain_only(self, pod_uids: set[str]) -> list[str]:
        """Release every allocation whose pod is not in `pod_uids` (garbage after a restart); returns them."""
        with self._lock:
            gone = [uid for uid in self._by_uid if uid not in pod_uids]
            for uid in gone:
                del self._by_uid[uid]
            if gone:
                self._save()
            return gone
