"""Quantity parsing and effective pod requests (component-helpers' PodRequests)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kubeling.scheduler.resources import cpu_millis, int_value, parse_quantity, pod_requests


@pytest.mark.parametrize(("text", "want"), [
    ("100m", Decimal("0.1")), ("1", Decimal(1)), ("1.5", Decimal("1.5")), ("1Gi", Decimal(2**30)),
    ("512Mi", Decimal(512 * 2**20)), ("1k", Decimal(1000)), ("1e3", Decimal(1000)), ("1M", Decimal(10**6)),
    (2, Decimal(2)), ("0.5Ki", Decimal(512)),
], ids=["milli", "one", "decimal", "Gi", "Mi", "k", "exponent", "M", "int", "fraction-Ki"])
def test_parse_quantity(text: object, want: Decimal) -> None:
    assert parse_quantity(text) == want


@pytest.mark.parametrize("text", ["", "abc", "1Qi", "1..2", "--1"], ids=["empty", "word", "bad-suffix", "dots", "sign"])
def test_parse_quantity_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_quantity(text)


def test_rounding_up() -> None:
    assert cpu_millis("0.0001") == 1
    assert cpu_millis("1.5") == 1500
    assert int_value("1.2") == 2


def _c(name: str, cpu: str, restart: str | None = None) -> dict:
    c: dict = {"name": name, "resources": {"requests": {"cpu": cpu, "memory": "100Mi"}}}
    if restart:
        c["restartPolicy"] = restart
    return c


@pytest.mark.parametrize(("spec", "cpu"), [
    ({"containers": [_c("a", "100m"), _c("b", "200m")]}, 300),
    ({"containers": [_c("a", "100m")], "initContainers": [_c("i", "500m")]}, 500),
    ({"containers": [_c("a", "100m")], "initContainers": [_c("i", "50m")]}, 100),
    # a sidecar runs next to the app and adds to it, and also to later init containers' peak
    ({"containers": [_c("a", "100m")], "initContainers": [_c("s", "200m", "Always"), _c("i", "250m")]}, 450),
    ({"containers": [_c("a", "100m")], "initContainers": [_c("s", "200m", "Always")], "overhead": {"cpu": "50m"}}, 350),
], ids=["sum-containers", "init-dominates", "containers-dominate", "sidecar", "overhead"])
def test_pod_requests(spec: dict, cpu: int) -> None:
    assert pod_requests({"spec": spec}).milli_cpu == cpu


def test_non_zero_defaults_only_for_missing_requests() -> None:
    p = {"spec": {"containers": [{"name": "a"}, {"name": "b", "resources": {"requests": {"cpu": "0"}}}]}}
    r = pod_requests(p, non_zero=True)
    assert (r.milli_cpu, r.memory) == (100, 2 * 200 * 1024 * 1024)
    assert pod_requests(p).is_zero()
