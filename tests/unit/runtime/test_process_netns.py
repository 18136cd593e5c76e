"""ProcessRuntime with a pod network namespace (root mode): containers, execs and port-forward land in it.

Each test makes its own namespace `kl-test-<random>-pod` holding a veth pair with a private
address (both ends inside it), and deletes it afterwards, also on failure: nothing is added
to the machine's own network.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from kubeling.runtime.interface import ContainerConfig, Mount, PodSandboxConfig, RuntimeError_
from kubeling.runtime.process import ProcessRuntime

from .support import free_port, log_lines, read, read_until

POD_IP = "10.250.99.2"
CGROUP_PARENT = f"kubeling-test-netns-{os.getpid()}"


def _skip_reason() -> str:
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    if not shutil.which("ip"):
        return "needs iproute2 (`ip`)"
    return ""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


@pytest.fixture
def pod_netns() -> Iterator[str]:
    """A test-created pod namespace with `lo` up and eth0 = POD_IP/24; its /run/netns path."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    name = f"kl-test-{secrets.token_hex(3)}-pod"
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True, timeout=10)
    if r.returncode != 0:
        pytest.skip(f"ip netns add failed: {r.stderr.strip()}")
    try:
        _ip("-n", name, "link", "set", "lo", "up")
        _ip("-n", name, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p")
        _ip("-n", name, "addr", "add", f"{POD_IP}/24", "dev", "eth0")
        _ip("-n", name, "link", "set", "eth0p", "up")
        _ip("-n", name, "link", "set", "eth0", "up")
        yield f"/run/netns/{name}"
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
        assert not os.path.exists(f"/run/netns/{name}")


def _runtime(root: Path) -> ProcessRuntime:
    return ProcessRuntime(str(root / "runtime"), cgroup_parent=CGROUP_PARENT, close_grace=1.0)


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[ProcessRuntime]:
    rt = _runtime(tmp_path)
    await rt.start()
    yield rt
    await rt.close()


def _sandbox(tmp_path: Path, netns: str) -> PodSandboxConfig:
    return PodSandboxConfig(name="web", namespace="default", uid=f"netns-{secrets.token_hex(4)}", hostname="web",
                            log_directory=str(tmp_path / "pods" / "web"), pod_ip=POD_IP, netns_path=netns)


def _netns_id(path: str) -> str:
    """What readlink /proc/self/ns/net prints for a process inside the namespace at `path`."""
    return f"net:[{os.stat(path).st_ino}]"


async def _output(runtime: ProcessRuntime, sid: str, command: list[str], **kw: object) -> str:
    cid = await runtime.create_container(sid, ContainerConfig(name="probe", image="", command=command,
                                                              **kw))  # type: ignore[arg-type]
    await runtime.start_container(cid)
    status = await asyncio.wait_for(runtime.wait_container(cid), 10)
    assert status.exit_code == 0, read(status.log_path)
    await runtime.remove_container(cid)
    return "\n".join(c.decode() for s, _, c in log_lines(status.log_path) if s == b"stdout")


async def test_container_and_exec_live_in_the_pod_netns(runtime: ProcessRuntime, pod_netns: str,
                                                        tmp_path: Path) -> None:
    sid = await runtime.run_pod_sandbox(_sandbox(tmp_path, pod_netns))
    try:
        out = await _output(runtime, sid, ["sh", "-c", "readlink /proc/self/ns/net; ip -o -4 addr show"])
        ns_line, *addrs = out.splitlines()
        assert ns_line == _netns_id(pod_netns) != os.readlink("/proc/self/ns/net")
        # Only the pod's interfaces: its loopback and eth0 with the pod IP, nothing of the node.
        assert [(a.split()[1], a.split()[3]) for a in addrs] == [("lo", "127.0.0.1/8"), ("eth0", f"{POD_IP}/24")]
        cid = await runtime.create_container(sid, ContainerConfig(name="app", image="", command=["sleep", "300"]))
        await runtime.start_container(cid)
        code, got = await runtime.exec_sync(cid, ["readlink", "/proc/self/ns/net"], 10)
        assert code == 0 and got.decode().strip() == _netns_id(pod_netns)
        await runtime.stop_container(cid, 1)
    finally:
        await runtime.remove_pod_sandbox(sid)


async def test_port_forward_reaches_localhost_inside_the_pod(runtime: ProcessRuntime, pod_netns: str,
                                                            tmp_path: Path) -> None:
    sid = await runtime.run_pod_sandbox(_sandbox(tmp_path, pod_netns))
    port = free_port("127.0.0.1")
    server = (f"import socket; s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen(); print('up', flush=True)\n"
              "while True:\n c, _ = s.accept(); c.sendall(b'in-pod:' + c.recv(64)); c.close()")
    try:
        cid = await runtime.create_container(sid, ContainerConfig(name="srv", image="",
                                                                  command=[sys.executable, "-c", server]))
        await runtime.start_container(cid)
        session = await runtime.attach(cid, stdin=False, tty=False)
        await read_until(session.stdout(), b"up")
        await session.kill()
        reader, writer = await runtime.port_forward(sid, port)
        writer.write(b"hello")  # type: ignore[attr-defined]
        assert await asyncio.wait_for(reader.read(), 5) == b"in-pod:hello"  # type: ignore[attr-defined]
        writer.close()  # type: ignore[attr-defined]
        with pytest.raises(ConnectionRefusedError):  # bound in the pod only: the node's localhost has nothing
            await asyncio.open_connection("127.0.0.1", port)
        await runtime.stop_container(cid, 1)
        with pytest.raises(RuntimeError_) as err:
            await runtime.port_forward(sid, port)
        assert err.value.reason == "PortForwardError"
    finally:
        await runtime.remove_pod_sandbox(sid)


async def test_kubelet_files_are_mounted_over_etc_only_inside(runtime: ProcessRuntime, pod_netns: str,
                                                              tmp_path: Path) -> None:
    host_before = read("/etc/resolv.conf")
    resolv = tmp_path / "etc-resolv.conf"
    resolv.write_text("search default.svc.cluster.local\nnameserver 10.43.0.10\noptions ndots:5\n")
    hosts = tmp_path / "etc-hosts"
    hosts.write_text(f"127.0.0.1\tlocalhost\n{POD_IP}\tweb\n")
    sid = await runtime.run_pod_sandbox(_sandbox(tmp_path, pod_netns))
    try:
        out = await _output(runtime, sid, ["sh", "-c", "cat /etc/resolv.conf; echo ---; cat /etc/hosts"],
                            mounts=[Mount(str(resolv), "/etc/resolv.conf"), Mount(str(hosts), "/etc/hosts")])
        assert out == resolv.read_text() + "---\n" + hosts.read_text().rstrip("\n")
    finally:
        await runtime.remove_pod_sandbox(sid)
    assert read("/etc/resolv.conf") == host_before


async def test_adopted_container_keeps_its_netns_for_exec(pod_netns: str, tmp_path: Path) -> None:
    # A runtime in a child process starts the pod, then dies without cleanup (a kubelet crash) ...
    script = textwrap.dedent(f"""
        import asyncio, os
        from kubeling.runtime.interface import ContainerConfig, PodSandboxConfig
        from kubeling.runtime.process import ProcessRuntime
        async def main():
            rt = ProcessRuntime({str(tmp_path / "runtime")!r}, cgroup_parent={CGROUP_PARENT!r})
            await rt.start()
            sid = await rt.run_pod_sandbox(PodSandboxConfig(name="web", namespace="default", uid="adopt",
                hostname="web", log_directory={str(tmp_path / "logs")!r}, netns_path={pod_netns!r}))
            cid = await rt.create_container(sid, ContainerConfig(name="app", image="", command=["sleep", "300"]))
            await rt.start_container(cid)
            print(sid, cid, flush=True)
            os._exit(0)
        asyncio.run(main())
    """)
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    sid, cid = out.decode().split()
    # ... and the next instance adopts the running container from its records, netns included.
    runtime = _runtime(tmp_path)
    await runtime.start()
    try:
        ((_, config),) = await runtime.list_pod_sandboxes()
        assert config.netns_path == pod_netns
        code, got = await runtime.exec_sync(cid, ["readlink", "/proc/self/ns/net"], 10)
        assert code == 0 and got.decode().strip() == _netns_id(pod_netns)
    finally:
        await runtime.remove_pod_sandbox(sid)
        await runtime.close()


async def test_sandbox_with_a_missing_netns_is_refused(runtime: ProcessRuntime, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (a pod network namespace)")
    missing = f"/run/netns/kl-test-{secrets.token_hex(3)}-missing"
    with pytest.raises(RuntimeError_, match="does not exist"):
        await runtime.run_pod_sandbox(_sandbox(tmp_path, missing))
