"""The root mode's cluster DNS address on the node's lo, inside a network namespace the test creates."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("ip"),
                                reason="needs root and iproute2 (a network namespace of the test's own)")

SCRIPT = """
import asyncio, sys
from kubeling.dns.localaddr import add_local_address, remove_local_address
async def main():
    first = await add_local_address("10.43.0.10")
    again = await add_local_address("10.43.0.10")
    loop = await add_local_address("127.43.0.10")
    print(first, again, loop)
    if sys.argv[1] == "remove":
        await remove_local_address("10.43.0.10")
        await remove_local_address("10.43.0.10")
asyncio.run(main())
"""


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"kl-test-{secrets.token_hex(3)}-dns"
    subprocess.run(["ip", "netns", "add", name], check=True, timeout=10)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True, timeout=10)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], timeout=10)


def run_in(netns: str, action: str) -> str:
    res = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", SCRIPT, action],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    return res.stdout.strip()


def lo_addresses(netns: str) -> str:
    return subprocess.run(["ip", "-n", netns, "-o", "addr", "show", "dev", "lo"], capture_output=True,
                          text=True, timeout=10).stdout


def test_address_added_once_and_loopback_left_alone(netns: str) -> None:
    assert run_in(netns, "keep") == "True False False"
    assert " 10.43.0.10/32 " in lo_addresses(netns)
    assert "127.43.0.10" not in lo_addresses(netns)


def test_address_removed_again(netns: str) -> None:
    run_in(netns, "remove")
    assert "10.43.0.10" not in lo_addresses(netns)
