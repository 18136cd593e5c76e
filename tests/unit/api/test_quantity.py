"""Quantity parsing and canonical formatting, against apimachinery's behaviour."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kubeling.api import quantity
from kubeling.api.quantity import (
    FORMAT_ERROR,
    canonical_quantity,
    cpu_millis,
    format_quantity,
    is_valid_quantity,
    memory_bytes,
    parse_quantity,
)


@pytest.mark.parametrize(("text", "value"), [
    ("100m", Decimal("0.1")),
    ("1Gi", Decimal(2**30)),
    ("2", Decimal(2)),
    ("1e3", Decimal(1000)),
    ("1E3", Decimal(1000)),
    ("0.5", Decimal("0.5")),
    ("512Mi", Decimal(512 * 2**20)),
    ("1k", Decimal(1000)),
    ("1M", Decimal(10**6)),
    ("1E", Decimal(10**18)),
    ("1Ei", Decimal(2**60)),
    ("5n", Decimal("0.000000005")),
    ("-1", Decimal(-1)),
    ("+1.5Ki", Decimal(1536)),
    (".5", Decimal("0.5")),
    ("1.", Decimal(1)),
    ("2e-3", Decimal("0.002")),
], ids=lambda v: str(v))
def test_parse(text: str, value: Decimal) -> None:
    assert parse_quantity(text) == value
    assert is_valid_quantity(text)


@pytest.mark.parametrize("text", ["", "abc", "1.2.3", "1Kb", "1 Gi", "Gi", "1ki", "--1", "1e", "1m1"],
                         ids=repr)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_quantity(text)
    assert not is_valid_quantity(text)


def test_format_error_message_is_kubernetes() -> None:
    with pytest.raises(ValueError) as exc:
        parse_quantity("abc")
    assert str(exc.value) == FORMAT_ERROR
    assert FORMAT_ERROR == ("quantities must match the regular expression "
                            "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")


@pytest.mark.parametrize(("text", "millis"), [("100m", 100), ("1", 1000), ("1.5", 1500), ("1n", 1), (2, 2000)],
                         ids=str)
def test_cpu_millis(text: str, millis: int) -> None:
    assert cpu_millis(text) == millis


@pytest.mark.parametrize(("text", "size"), [("1Ki", 1024), ("1k", 1000), ("512Mi", 536870912), ("100m", 1)],
                         ids=str)
def test_memory_bytes(text: str, size: int) -> None:
    assert memory_bytes(text) == size


@pytest.mark.parametrize(("text", "canonical"), [
    ("0.5", "500m"),
    ("1000m", "1"),
    ("1024Mi", "1Gi"),
    ("1.5Gi", "1536Mi"),
    ("1536Mi", "1536Mi"),
    ("512Ki", "512Ki"),
    ("0.5Ki", "512"),
    ("1e3", "1e3"),
    ("1000", "1k"),
    ("100m", "100m"),
    ("0", "0"),
    ("-100m", "-100m"),
    ("1.5", "1500m"),
], ids=str)
def test_canonical(text: str, canonical: str) -> None:
    assert canonical_quantity(text) == canonical


def test_format_binary_and_compare() -> None:
    assert format_quantity(Decimal(2**20), quantity.BINARY_SI) == "1Mi"
    assert format_quantity(Decimal("0.25")) == "250m"
    assert quantity.compare("1", "1000m") == 0
    assert quantity.compare("1Gi", "1G") == 1
    assert quantity.compare("100m", "0.2") == -1
