"""Resource quantities and pod requests, computed the way kube-scheduler computes them.

The scheduler compares integers: CPU in millicores, everything else in base units
(bytes, devices). Parsing happens once per pod and once per node, never inside the
per-node loop, which is why this module turns wire quantities into ints up front.

`pod_requests` follows `k8s.io/component-helpers/resource.PodRequests`: the sum of the
regular containers, raised to the largest init container (where sidecars — init
containers with `restartPolicy: Always` — keep running and therefore add up), plus
`spec.overhead`. The non-zero variant substitutes 100m CPU / 200Mi memory for a
container that requests none, which kube-scheduler uses for *scoring only*, so that
best-effort pods still spread instead of piling onto one "empty" node.

The parser is private on purpose: it keeps the scheduler free of a dependency on the
API layer's quantity module while that module is being written.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

CPU, MEMORY, EPHEMERAL_STORAGE, PODS = "cpu", "memory", "ephemeral-storage", "pods"
DEFAULT_MILLI_CPU_REQUEST = 100  # schedutil.DefaultMilliCPURequest
DEFAULT_MEMORY_REQUEST = 200 * 1024 * 1024  # schedutil.DefaultMemoryRequest

_SUFFIXES = {
    "": Decimal(1), "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
    "k": Decimal(10**3), "M": Decimal(10**6), "G": Decimal(10**9), "T": Decimal(10**12),
    "P": Decimal(10**15), "E": Decimal(10**18),
    "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40),
    "Pi": Decimal(2**50), "Ei": Decimal(2**60),
}
_QUANTITY_RE = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(?:([eE][+-]?[0-9]+)|([a-zA-Z]*))$")


def parse_quantity(value: Any) -> Decimal:
    """Parse a Kubernetes quantity ("100m", "1.5", "512Mi", "1e3", 2) into a Decimal.

    Raises ValueError for anything `resource.ParseQuantity` would reject.
    """
    if isinstance(value, bool):
        raise ValueError(f"quantities must match the regular expression: {value!r}")
    if isinstance(value, int | float):
        return Decimal(str(value))
    m = _QUANTITY_RE.match(str(value).strip())
    if not m:
        raise ValueError(f"quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {value!r}")
    number, exponent, suffix = m.groups()
    try:
        base = Decimal(number)
    except InvalidOperation as e:
        raise ValueError(f"invalid quantity {value!r}") from e
    if exponent:
        return base * (Decimal(10) ** int(exponent[1:]))
    if suffix not in _SUFFIXES:
        raise ValueError(f"unable to parse quantity's suffix: {value!r}")
    return base * _SUFFIXES[suffix]


def cpu_millis(value: Any) -> int:
    """A quantity as integer millicores, rounded up like `Quantity.MilliValue()`."""
    return math.ceil(parse_quantity(value) * 1000)


def int_value(value: Any) -> int:
    """A quantity as an integer in base units, rounded up like `Quantity.Value()`."""
    return math.ceil(parse_quantity(value))


def _quantity_of(name: str, value: Any) -> int:
    return cpu_millis(value) if name == CPU else int_value(value)


@dataclass(slots=True)
class Resource:
    """A resource vector in scheduler units (CPU millicores, bytes, device counts)."""

    milli_cpu: int = 0
    memory: int = 0
    ephemeral_storage: int = 0
    scalar: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_list(cls, rl: dict[str, Any] | None) -> Resource:
        """Build from a wire ResourceList (`{"cpu": "500m", "memory": "1Gi", ...}`); ignores `pods`."""
        r = cls()
        for name, q in (rl or {}).items():
            r.add_one(name, _quantity_of(name, q))
        return r

    def add_one(self, name: str, v: int) -> None:
        if name == CPU:
            self.milli_cpu += v
        elif name == MEMORY:
            self.memory += v
        elif name == EPHEMERAL_STORAGE:
            self.ephemeral_storage += v
        elif name != PODS:
            self.scalar[name] = self.scalar.get(name, 0) + v

    def add(self, other: Resource, sign: int = 1) -> None:
        """In-place `self += sign * other`."""
        self.milli_cpu += sign * other.milli_cpu
        self.memory += sign * other.memory
        self.ephemeral_storage += sign * other.ephemeral_storage
        for k, v in other.scalar.items():
            self.scalar[k] = self.scalar.get(k, 0) + sign * v

    def set_max(self, other: Resource) -> None:
        """In-place element-wise maximum (`maxResourceList`)."""
        self.milli_cpu = max(self.milli_cpu, other.milli_cpu)
        self.memory = max(self.memory, other.memory)
        self.ephemeral_storage = max(self.ephemeral_storage, other.ephemeral_storage)
        for k, v in other.scalar.items():
            self.scalar[k] = max(self.scalar.get(k, 0), v)

    def copy(self) -> Resource:
        return Resource(self.milli_cpu, self.memory, self.ephemeral_storage, dict(self.scalar))

    def is_zero(self) -> bool:
        return not (self.milli_cpu or self.memory or self.ephemeral_storage or any(self.scalar.values()))

    def get(self, name: str) -> int:
        """The amount of one named resource."""
        if name == CPU:
            return self.milli_cpu
        if name == MEMORY:
            return self.memory
        if name == EPHEMERAL_STORAGE:
            return self.ephemeral_storage
        return self.scalar.get(name, 0)


def _container_requests(c: dict[str, Any], non_zero: bool) -> Resource:
    requests = (c.get("resources") or {}).get("requests") or {}
    r = Resource.from_list(requests)
    if non_zero:
        # NonMissingContainerRequests: only a *missing* request is defaulted; an explicit 0 stays 0.
        if CPU not in requests:
            r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST
        if MEMORY not in requests:
            r.memory = DEFAULT_MEMORY_REQUEST
    return r


def pod_requests(pod: dict[str, Any], *, non_zero: bool = False) -> Resource:
    """The effective request of a pod, as `resource.PodRequests` computes it (see module doc)."""
    spec = pod.get("spec") or {}
    reqs = Resource()
    for c in spec.get("containers") or []:
        reqs.add(_container_requests(c, non_zero))
    restartable = Resource()
    init_max = Resource()
    for c in spec.get("initContainers") or []:
        creq = _container_requests(c, non_zero)
        if c.get("restartPolicy") == "Always":
            # A sidecar runs alongside everything started after it: it adds to the pod's total
            # and to every later init container's peak.
            reqs.add(creq)
            restartable.add(creq)
            creq = restartable.copy()
        else:
            creq.add(restartable)
        init_max.set_max(creq)
    reqs.set_max(init_max)
    overhead = spec.get("overhead")
    if overhead:
        reqs.add(Resource.from_list(overhead))
    return reqs
