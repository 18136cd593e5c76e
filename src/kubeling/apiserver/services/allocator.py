"""ClusterIP and NodePort allocators: bitmaps persisted in the store.

Why a persisted bitmap with compare-and-swap rather than "scan the Services
and pick a free one": two concurrent creates would both see the same free
address. Kubernetes keeps one `RangeAllocation` object per range
(`/registry/ranges/serviceips`, `/registry/ranges/servicenodeports`) whose
`data` is a bitmap, and every allocation is a read-modify-CAS of that key; a
lost race retries on the fresh value. We do the same, so several API
servers on one store (and 200 concurrent creates on one) never hand out an
address twice. Inside one process an asyncio lock serialises the
read-modify-write so the CAS almost never loses.

Dynamic picks are random and prefer the upper part of the range, leaving the
lower "static" band (Kubernetes' ServiceIPStaticSubrange) for addresses users
choose by hand; a few well-known offsets (the `kubernetes` Service at .1 and
the cluster DNS at .10) are never handed out dynamically.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import logging
import random
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from kubeling.apiserver import objects
from kubeling.storage.interface import KeyExists, KeyNotFound, RevisionMismatch, Store

log = logging.getLogger(__name__)

SERVICE_IPS_KEY = "/registry/ranges/serviceips"
NODE_PORTS_KEY = "/registry/ranges/servicenodeports"
DEFAULT_SERVICE_CIDR = "127.43.0.0/16"      # no-root mode: a loopback range the userspace proxy can bind
ROOT_SERVICE_CIDR = "10.43.0.0/16"          # root/CNI mode
DEFAULT_NODE_PORT_RANGE = "30000-32767"
# Kubernetes caps a bitmap at 2^16 entries (large IPv6 ranges use only the first 64Ki addresses).
MAX_BITMAP_SIZE = 1 << 16
CAS_RETRIES = 64


class AllocationError(Exception):
    """Base of allocation failures; the message is Kubernetes' wording."""


class NotInRange(AllocationError):  # noqa: N818 (Kubernetes' ErrNotInRange)
    """The value lies outside the allocator's range."""


class AlreadyAllocated(AllocationError):  # noqa: N818 (Kubernetes' ErrAllocated)
    """The value is taken."""


class RangeFull(AllocationError):  # noqa: N818 (Kubernetes' ErrFull)
    """No free value is left."""


def _first_free(used: int, start: int, end: int) -> int | None:
    """The lowest offset in [start, end) whose bit in `used` is clear."""
    if start >= end:
        return None
    free = (~used & ((1 << end) - 1)) >> start
    if free == 0:
        return None
    return start + (free & -free).bit_length() - 1


def encode_bitmap(bitmap: int) -> str:
    """Big-endian bytes of the bitmap, base64 (Go's big.Int.Bytes(), as Kubernetes stores it)."""
    return base64.b64encode(bitmap.to_bytes((bitmap.bit_length() + 7) // 8, "big")).decode()


def decode_bitmap(data: str) -> int:
    return int.from_bytes(base64.b64decode(data or ""), "big") if data else 0


class RangeAllocator:
    """A bitmap over offsets [0, size) persisted under `key` as a RangeAllocation.

    Subclasses map their values (IP strings, port numbers) to offsets. All
    mutations go through `_mutate`, a read-modify-compare-and-swap loop.
    """

    kind_of_value = "value"

    def __init__(self, store: Store, key: str, range_text: str, size: int, *,
                 reserved: Iterable[int] = (), static_size: int = 0) -> None:
        self.store = store
        self.key = key
        self.range_text = range_text
        self.size = size
        self.reserved = frozenset(o for o in reserved if 0 <= o < size)
        self.static_size = min(static_size, size)
        self._reserved_mask = sum(1 << o for o in self.reserved)
        self._lock = asyncio.Lock()
        self._rng = random.Random()

    # ---- value <-> offset (subclasses) ------------------------------------------------

    def offset(self, value: Any) -> int:
        raise NotImplementedError

    def value(self, offset: int) -> Any:
        raise NotImplementedError

    def not_in_range(self, value: Any) -> NotInRange:
        raise NotImplementedError

    def contains(self, value: Any) -> bool:
        try:
            return 0 <= self.offset(value) < self.size
        except ValueError:
            return False

    # ---- persistence ------------------------------------------------------------------

    async def snapshot(self) -> tuple[int, int]:
        """(bitmap, revision of the key; 0 when absent). A stored range that differs from ours is empty."""
        kv = await self.store.get(self.key)
        if kv is None:
            return 0, 0
        obj = orjson.loads(kv.value)
        if obj.get("range") != self.range_text:
            log.warning("%s holds range %s, configured %s: starting from an empty bitmap (repair refills it)",
                        self.key, obj.get("range"), self.range_text)
            return 0, kv.mod_revision
        return decode_bitmap(str(obj.get("data") or "")) & ((1 << self.size) - 1), kv.mod_revision

    async def _write(self, bitmap: int, revision: int) -> None:
        body = objects.encode_for_store({
            "apiVersion": "v1", "kind": "RangeAllocation",
            "metadata": {"creationTimestamp": objects.now_rfc3339()},
            "range": self.range_text, "data": encode_bitmap(bitmap)})
        if revision == 0:
            await self.store.create(self.key, body)
        else:
            await self.store.update(self.key, body, expected_revision=revision)

    async def _mutate(self, change: Callable[[int], int]) -> None:
        """Apply `change` to the stored bitmap with compare-and-swap; retry when another writer won."""
        async with self._lock:
            for _ in range(CAS_RETRIES):
                bitmap, revision = await self.snapshot()
                new = change(bitmap)
                if new == bitmap and revision:
                    return
                try:
                    await self._write(new, revision)
                    return
                except (RevisionMismatch, KeyExists, KeyNotFound):
                    continue
        raise AllocationError(f"too many concurrent writers of {self.key}; please retry")

    async def replace(self, bitmap: int, expected_revision: int) -> bool:
        """Write a whole bitmap if the key is still at `expected_revision` (the repair loop's CAS)."""
        async with self._lock:
            try:
                await self._write(bitmap, expected_revision)
            except (RevisionMismatch, KeyExists, KeyNotFound):
                return False
        return True

    # ---- the allocator API ------------------------------------------------------------

    async def allocate(self, value: Any) -> None:
        """Take a specific value; NotInRange / AlreadyAllocated."""
        off = self._checked_offset(value)

        def take(bitmap: int) -> int:
            if bitmap >> off & 1:
                raise AlreadyAllocated(f"provided {self.kind_of_value} is already allocated")
            return bitmap | 1 << off
        await self._mutate(take)

    async def allocate_next(self) -> Any:
        """Take a free value, chosen at random, upper band first; RangeFull."""
        chosen: list[int] = []

        def take(bitmap: int) -> int:
            chosen.clear()
            used = bitmap | self._reserved_mask
            off = self._pick(used, self.static_size, self.size)
            if off is None:
                off = self._pick(used, 0, self.static_size)
            if off is None:
                raise RangeFull("range is full")
            chosen.append(off)
            return bitmap | 1 << off
        await self._mutate(take)
        return self.value(chosen[0])

    async def release(self, value: Any) -> None:
        """Free a value (a value outside the range or already free is ignored)."""
        try:
            off = self.offset(value)
        except ValueError:
            return
        if not 0 <= off < self.size:
            return
        await self._mutate(lambda bitmap: bitmap & ~(1 << off))

    async def check(self, value: Any) -> None:
        """Raise what `allocate` would, without taking it (dry runs)."""
        off = self._checked_offset(value)
        bitmap, _ = await self.snapshot()
        if bitmap >> off & 1:
            raise AlreadyAllocated(f"provided {self.kind_of_value} is already allocated")

    async def has(self, value: Any) -> bool:
        try:
            off = self.offset(value)
        except ValueError:
            return False
        bitmap, _ = await self.snapshot()
        return 0 <= off < self.size and bool(bitmap >> off & 1)

    async def free_count(self) -> int:
        bitmap, _ = await self.snapshot()
        return self.size - bitmap.bit_count()

    def _checked_offset(self, value: Any) -> int:
        try:
            off = self.offset(value)
        except ValueError:
            raise self.not_in_range(value) from None
        if not 0 <= off < self.size:
            raise self.not_in_range(value)
        return off

    def _pick(self, used: int, start: int, end: int) -> int | None:
        if start >= end:
            return None
        first = start + self._rng.randrange(end - start)
        found = _first_free(used, first, end)
        return found if found is not None else _first_free(used, start, first)


class ClusterIPAllocator(RangeAllocator):
    """Service ClusterIPs from a CIDR; offset 0 is the first host address (network address excluded)."""

    kind_of_value = "IP"

    def __init__(self, store: Store, cidr: str, *, reserved_ips: Iterable[str] = ()) -> None:
        self.network = ipaddress.ip_network(cidr, strict=False)
        hosts = self.network.num_addresses - (2 if self.network.version == 4 else 1)
        size = max(0, min(hosts, MAX_BITMAP_SIZE))
        self.base = int(self.network.network_address) + 1
        reserved = [int(ipaddress.ip_address(ip)) - self.base for ip in reserved_ips]
        super().__init__(store, SERVICE_IPS_KEY, str(self.network), size,
                         reserved=reserved, static_size=min(max(16, size // 16), 256))

    def nth(self, n: int) -> str:
        """The n-th address of the range (1 = the `kubernetes` Service, 10 = cluster DNS)."""
        return str(ipaddress.ip_address(int(self.network.network_address) + n))

    def offset(self, value: Any) -> int:
        ip = ipaddress.ip_address(str(value))
        if ip.version != self.network.version:
            raise ValueError(f"{value} is not IPv{self.network.version}")
        return int(ip) - self.base

    def value(self, offset: int) -> str:
        return str(ipaddress.ip_address(self.base + offset))

    def not_in_range(self, value: Any) -> NotInRange:
        return NotInRange(f"the provided IP ({value}) is not in the valid range. "
                          f"The range of valid IPs is {self.network}")


class NodePortAllocator(RangeAllocator):
    """NodePorts from a "low-high" port range."""

    kind_of_value = "port"

    def __init__(self, store: Store, port_range: str) -> None:
        self.low, self.high = parse_port_range(port_range)
        size = self.high - self.low + 1
        super().__init__(store, NODE_PORTS_KEY, f"{self.low}-{self.high}", size,
                         static_size=min(max(16, size // 32), 128))

    def offset(self, value: Any) -> int:
        return int(value) - self.low

    def value(self, offset: int) -> int:
        return self.low + offset

    def not_in_range(self, value: Any) -> NotInRange:
        return NotInRange(f"provided port is not in the valid range. The range of valid ports is {self.range_text}")


def parse_port_range(text: str) -> tuple[int, int]:
    """"30000-32767" (or "30000+2767", Kubernetes' base+size form) → (30000, 32767)."""
    text = text.strip()
    try:
        if "+" in text:
            base, extra = text.split("+", 1)
            low, high = int(base), int(base) + int(extra)
        else:
            low_s, _, high_s = text.partition("-")
            low, high = int(low_s), int(high_s or low_s)
    except ValueError:
        raise ValueError(f"invalid port range {text!r}: want LOW-HIGH, e.g. 30000-32767") from None
    if not 1 <= low <= high <= 65535:
        raise ValueError(f"invalid port range {text!r}: want 1 <= LOW <= HIGH <= 65535")
    return low, high
