"""netns helpers: setns only moves the helper thread, errors come back, create/delete are idempotent."""

from __future__ import annotations

import socket

import pytest

from kubeling.network.netns import (
    NetnsError,
    call_in_netns,
    create_netns,
    delete_netns,
    exec_in_netns,
    netns_exists,
)


async def test_call_and_exec_inside_a_namespace(netns_prefix: str) -> None:
    name = netns_prefix + "ns"
    try:
        path = await create_netns(name)
        assert await create_netns(name) == path  # reuse, not an error
        inside = await call_in_netns(path, socket.if_nameindex)
        assert [n for _, n in inside] == ["lo"]
        assert len(socket.if_nameindex()) >= len(inside)  # the loop's thread did not move

        def boom() -> None:
            raise RuntimeError("inside")

        with pytest.raises(RuntimeError, match="inside"):
            await call_in_netns(path, boom)
        _, out, _ = await exec_in_netns(name, "ip", "-o", "link", "show", "lo")
        assert "UP" in out or "LOWER_UP" in out  # create_netns brought lo up
        with pytest.raises(NetnsError):
            await exec_in_netns(name, "false")
    finally:
        await delete_netns(name)
    assert not netns_exists(name)
    await delete_netns(name)  # idempotent
    with pytest.raises(NetnsError):
        await create_netns("../escape")
