"""The container-runtime contract as tests, shared by every backend (one suite for all drivers).

A backend's test module subclasses `RuntimeContract` and provides the
fixture `runtime_factory`: an async callable returning a *started* runtime,
over the same state directory each time it is called, and `crashed_runtime`:
an async callable that starts a pod with one running container (`echo before;
sleep 300`) from a runtime instance that then dies without cleanup, returning
(sandbox id, container id) — the adoption test then opens a new instance. Containers run host binaries (`sh`, the test's Python), so a
runc backend's fixture must supply a rootfs that has them. Isolation a host
may not offer (namespaces, cgroups) is read from the runtime's optional
`capabilities()` and skipped with the reason when absent.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from kubeling.runtime.interface import (
    ContainerConfig,
    ContainerState,
    Mount,
    PodSandboxConfig,
    Resources,
    Runtime,
    RuntimeError_,
)

from .support import capability, exists, free_port, log_lines, pid_alive, read, read_until, size

RuntimeFactory = Callable[[], Awaitable[Runtime]]
PY = sys.executable


class RuntimeContract:
    """Every test here must pass on every backend."""

    @pytest.fixture
    async def runtime(self, runtime_factory: RuntimeFactory) -> AsyncIterator[Runtime]:
        runtime = await runtime_factory()
        yield runtime
        await runtime.close()

    @pytest.fixture
    def pod_config(self, tmp_path: Path) -> PodSandboxConfig:
        return PodSandboxConfig(name="web", namespace="default", uid=f"u{os.getpid()}-{time.monotonic_ns()}",
                                hostname="web-0", log_directory=str(tmp_path / "pods" / "default_web"),
                                pod_ip="127.0.0.1")

    @pytest.fixture
    async def sandbox(self, runtime: Runtime, pod_config: PodSandboxConfig) -> AsyncIterator[str]:
        sid = await runtime.run_pod_sandbox(pod_config)
        yield sid
        await runtime.remove_pod_sandbox(sid)

    async def run(self, runtime: Runtime, sandbox: str, command: list[str], **kw: object) -> str:
        cid = await runtime.create_container(sandbox, ContainerConfig(name=str(kw.pop("name", "c")), image="",
                                                                      command=command, **kw))  # type: ignore[arg-type]
        await runtime.start_container(cid)
        return cid

    async def output(self, runtime: Runtime, sandbox: str, command: list[str], **kw: object) -> bytes:
        cid = await self.run(runtime, sandbox, command, **kw)
        status = await asyncio.wait_for(runtime.wait_container(cid), 10)
        assert status.exit_code == 0, read(status.log_path)
        return b"\n".join(c for s, _, c in log_lines(status.log_path) if s == b"stdout")

    # ---- sandboxes and lifecycle ----------------------------------------------------

    async def test_sandbox_lifecycle(self, runtime: Runtime, pod_config: PodSandboxConfig) -> None:
        sid = await runtime.run_pod_sandbox(pod_config)
        assert exists(pod_config.log_directory)
        status = await runtime.pod_sandbox_status(sid)
        assert status is not None and status.ready and status.pod_ip == "127.0.0.1"
        assert [s for s, _ in await runtime.list_pod_sandboxes()] == [sid]
        await runtime.stop_pod_sandbox(sid)
        assert not (await runtime.pod_sandbox_status(sid)).ready  # type: ignore[union-attr]
        await runtime.remove_pod_sandbox(sid)
        assert await runtime.pod_sandbox_status(sid) is None

    @pytest.mark.parametrize(("script", "code", "reason"), [("exit 0", 0, "Completed"), ("exit 3", 3, "Error")],
                             ids=["completed", "error"])
    async def test_exit_codes(self, runtime: Runtime, sandbox: str, script: str, code: int, reason: str) -> None:
        cid = await runtime.create_container(sandbox, ContainerConfig(name="c", image="", command=["sh", "-c", script]))
        created = await runtime.container_status(cid)
        assert created is not None and created.state == ContainerState.CREATED
        await runtime.start_container(cid)
        status = await asyncio.wait_for(runtime.wait_container(cid), 10)
        assert (status.state, status.exit_code, status.reason) == (ContainerState.EXITED, code, reason)
        assert status.created_at <= status.started_at <= status.finished_at
        assert [c.id for c in await runtime.list_containers(sandbox)] == [cid]

    async def test_no_command_cannot_run(self, runtime: Runtime, sandbox: str) -> None:
        with pytest.raises(RuntimeError_) as info:
            await runtime.create_container(sandbox, ContainerConfig(name="c", image="nginx", command=[]))
        assert info.value.reason == "ContainerCannotRun"

    async def test_missing_binary_cannot_run(self, runtime: Runtime, sandbox: str) -> None:
        cid = await runtime.create_container(sandbox, ContainerConfig(name="c", image="", command=["no-such-bin-x"]))
        with pytest.raises(RuntimeError_) as info:
            await runtime.start_container(cid)
        assert info.value.reason == "ContainerCannotRun" and "no-such-bin-x" in str(info.value)
        status = await runtime.container_status(cid)
        assert status is not None and status.state == ContainerState.EXITED and status.reason == "ContainerCannotRun"

    async def test_env_and_working_dir(self, runtime: Runtime, sandbox: str, tmp_path: Path) -> None:
        os.environ["KUBELING_LEAK_CHECK"] = "leaked"
        try:
            out = await self.output(runtime, sandbox, ["sh", "-c", "pwd; env"], working_dir=str(tmp_path),
                                    env=[("A", "1"), ("B", "two words")])
        finally:
            del os.environ["KUBELING_LEAK_CHECK"]
        lines = out.decode().splitlines()
        assert lines[0] == str(tmp_path)
        assert "A=1" in lines and "B=two words" in lines
        assert not any(line.startswith("KUBELING_LEAK_CHECK") for line in lines)

    # ---- logs -------------------------------------------------------------------------

    async def test_logs_cri_format_streams_and_partial_lines(self, runtime: Runtime, sandbox: str) -> None:
        script = "echo out; echo err >&2; head -c 40000 /dev/zero | tr '\\0' x; echo; printf tail"
        cid = await self.run(runtime, sandbox, ["sh", "-c", script])
        status = await asyncio.wait_for(runtime.wait_container(cid), 10)
        lines = log_lines(status.log_path)
        assert (b"stdout", b"F", b"out") in lines and (b"stderr", b"F", b"err") in lines
        partial = [c for s, t, c in lines if t == b"P"]
        assert partial, "a 40000-byte line must be split into partial entries"
        long_line = b"".join(partial) + next(c for s, t, c in lines if t == b"F" and c.startswith(b"x"))
        assert long_line == b"x" * 40000
        assert lines[-1] == (b"stdout", b"F", b"tail")  # a last line without newline is still logged

    async def test_log_rotation(self, runtime: Runtime, sandbox: str) -> None:
        cid = await self.run(runtime, sandbox, ["sh", "-c", "i=0; while [ $i -lt 200 ]; do echo line$i; i=$((i+1)); done"],
                             log_max_bytes=2000)
        status = await asyncio.wait_for(runtime.wait_container(cid), 10)
        assert size(status.log_path) <= 2000
        assert exists(status.log_path + ".1") and size(status.log_path + ".1") <= 2000
        assert log_lines(status.log_path)[-1][2] == b"line199"

    # ---- stopping -----------------------------------------------------------------------

    async def test_stop_sigterm(self, runtime: Runtime, sandbox: str) -> None:
        cid = await self.run(runtime, sandbox, ["sleep", "300"])
        await runtime.stop_container(cid, 10)
        status = await runtime.container_status(cid)
        assert status is not None and (status.state, status.exit_code) == (ContainerState.EXITED, 143)

    async def test_stop_sigkill_after_timeout_kills_tree(self, runtime: Runtime, sandbox: str, tmp_path: Path) -> None:
        pidfile = tmp_path / "grandchild"
        script = f"trap '' TERM; sh -c 'sleep 300 & echo $! > {pidfile}; wait' & wait; wait"
        cid = await self.run(runtime, sandbox, ["sh", "-c", script])
        for _ in range(100):
            if pidfile.exists() and pidfile.read_text().strip():
                break
            await asyncio.sleep(0.02)
        grandchild = int(pidfile.read_text())
        start = time.monotonic()
        await runtime.stop_container(cid, 0.5)
        assert 0.4 < time.monotonic() - start < 5
        status = await runtime.container_status(cid)
        assert status is not None and status.exit_code == 137
        await asyncio.sleep(0.05)
        assert not pid_alive(grandchild)

    async def test_close_leaves_no_process(self, runtime_factory: RuntimeFactory, pod_config: PodSandboxConfig) -> None:
        runtime = await runtime_factory()
        sid = await runtime.run_pod_sandbox(pod_config)
        cids = [await self.run(runtime, sid, ["sh", "-c", "sleep 300 & sleep 300"], name=f"c{i}") for i in range(2)]
        cids.append(await self.run(runtime, sid, ["sh", "-c", "trap '' TERM; sleep 300"], name="stubborn"))
        pids = [(await runtime.container_status(c)).pid for c in cids]  # type: ignore[union-attr]
        await asyncio.sleep(0.1)
        if hasattr(runtime, "_close_grace"):
            runtime._close_grace = 0.3  # keep the suite fast: the stubborn one is killed after this
        await runtime.close()
        await asyncio.sleep(0.05)
        assert not any(pid_alive(p) for p in pids)
        assert not [p for p in os.listdir("/proc") if p.isdigit() and self._in_session(int(p), pids)]

    @staticmethod
    def _in_session(pid: int, sessions: list[int]) -> bool:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            return False
        return fields[0] != "Z" and int(fields[3]) in sessions

    # ---- isolation ------------------------------------------------------------------------

    async def test_hostname(self, runtime: Runtime, sandbox: str) -> None:
        if not capability(runtime, "hostname"):
            pytest.skip("no UTS namespace on this host (see capabilities().notes)")
        assert await self.output(runtime, sandbox, ["hostname"]) == b"web-0"

    async def test_mount_at_missing_path_and_read_only(self, runtime: Runtime, sandbox: str, tmp_path: Path) -> None:
        if not capability(runtime, "mounts"):
            pytest.skip("no private mount namespace on this host (see capabilities().notes)")
        config, data = tmp_path / "config", tmp_path / "data"
        config.mkdir()
        data.mkdir()
        (config / "key").write_text("value")
        mounts = [Mount(str(config), "/etc/kubeling-test/config", read_only=True),
                  Mount(str(data), "/kubeling-test-data"),
                  Mount(str(config / "key"), "/etc/kubeling-test/sub/file.txt")]  # a subPath-style file
        script = ("cat /etc/kubeling-test/config/key; echo; test -f /etc/passwd && echo passwd;"
                  "touch /etc/kubeling-test/config/x 2>/dev/null || echo ro; echo w > /kubeling-test-data/f;"
                  "cat /etc/kubeling-test/sub/file.txt")
        out = await self.output(runtime, sandbox, ["sh", "-c", script], mounts=mounts)
        assert out.split(b"\n") == [b"value", b"passwd", b"ro", b"value"]
        assert (data / "f").read_text() == "w\n"
        assert not exists("/etc/kubeling-test") and not exists("/kubeling-test-data")

    # ---- exec, attach, port-forward ---------------------------------------------------------------

    async def test_exec_output_and_exit_code(self, runtime: Runtime, sandbox: str, tmp_path: Path) -> None:
        cid = await self.run(runtime, sandbox, ["sleep", "300"], env=[("GREETING", "hi")], working_dir=str(tmp_path))
        session = await runtime.exec(cid, ["sh", "-c", "echo $GREETING; pwd; echo oops >&2; exit 7"],
                                     tty=False, stdin=False)
        out = b"".join([c async for c in session.stdout()])
        err = b"".join([c async for c in session.stderr()])
        assert (out, err, await session.wait()) == (f"hi\n{tmp_path}\n".encode(), b"oops\n", 7)
        if capability(runtime, "hostname"):
            assert await runtime.exec_sync(cid, ["hostname"], 5) == (0, b"web-0\n")

    async def test_exec_with_stdin(self, runtime: Runtime, sandbox: str) -> None:
        cid = await self.run(runtime, sandbox, ["sleep", "300"])
        session = await runtime.exec(cid, ["cat"], tty=False, stdin=True)
        await session.write_stdin(b"ping\n")
        await session.close_stdin()
        assert b"".join([c async for c in session.stdout()]) == b"ping\n"
        assert await session.wait() == 0

    async def test_exec_tty(self, runtime: Runtime, sandbox: str) -> None:
        cid = await self.run(runtime, sandbox, ["sleep", "300"])
        session = await runtime.exec(cid, ["sh", "-c", "sleep 0.2; tty; stty size"], tty=True, stdin=True)
        await session.resize(100, 40)
        got = await read_until(session.stdout(), b"40 100")
        assert re.search(rb"/dev/pts/\d+", got), got
        assert await session.wait() == 0

    async def test_exec_sync_timeout_kills(self, runtime: Runtime, sandbox: str) -> None:
        cid = await self.run(runtime, sandbox, ["sleep", "300"])
        code, output = await runtime.exec_sync(cid, ["sh", "-c", "echo a; sleep 0.1; echo b >&2; exit 2"], 5)
        assert (code, output) == (2, b"a\nb\n")
        start = time.monotonic()
        with pytest.raises(TimeoutError):  # what the kubelet's probes catch
            await runtime.exec_sync(cid, ["sleep", "30"], 0.3)
        assert time.monotonic() - start < 3

    async def test_stop_kills_exec_sessions(self, runtime: Runtime, sandbox: str) -> None:
        cid = await self.run(runtime, sandbox, ["sleep", "300"])
        session = await runtime.exec(cid, ["sh", "-c", "echo $$; exec sleep 300"], tty=False, stdin=False)
        pid = int(await read_until(session.stdout(), b"\n"))
        await runtime.stop_container(cid, 5)
        assert await asyncio.wait_for(session.wait(), 5) in (137, 143)
        assert not pid_alive(pid)

    async def test_exec_in_stopped_container_fails(self, runtime: Runtime, sandbox: str) -> None:
        cid = await self.run(runtime, sandbox, ["true"])
        await runtime.wait_container(cid)
        with pytest.raises(RuntimeError_):
            await runtime.exec(cid, ["true"], tty=False, stdin=False)

    async def test_attach_echo(self, runtime: Runtime, sandbox: str) -> None:
        cid = await self.run(runtime, sandbox, ["cat"], stdin=True, stdin_once=True)
        session = await runtime.attach(cid, stdin=True, tty=False)
        await session.write_stdin(b"hello\n")
        assert b"hello" in await read_until(session.stdout(), b"hello")
        await session.close_stdin()
        assert await asyncio.wait_for(session.wait(), 5) == 0
        status = await runtime.container_status(cid)
        assert status is not None and log_lines(status.log_path)[0][2] == b"hello"

    async def test_attach_tty(self, runtime: Runtime, sandbox: str) -> None:
        cid = await self.run(runtime, sandbox, ["sh"], tty=True, stdin=True)
        session = await runtime.attach(cid, stdin=True, tty=True)
        await session.resize(120, 30)
        await session.write_stdin(b"stty size; tty; exit 4\n")
        got = await read_until(session.stdout(), b"/dev/pts/")
        assert b"30 120" in got
        assert await asyncio.wait_for(session.wait(), 5) == 4
        status = await runtime.container_status(cid)
        assert status is not None and all(s == b"stdout" for s, _, _ in log_lines(status.log_path))

    async def test_port_forward(self, runtime: Runtime, pod_config: PodSandboxConfig) -> None:
        pod_config.pod_ip = "127.88.0.5"  # no-root mode: one loopback address per pod
        sid = await runtime.run_pod_sandbox(pod_config)
        try:
            port = free_port(pod_config.pod_ip)
            cid = await self.run(runtime, sid, [PY, "-m", "http.server", str(port), "--bind", pod_config.pod_ip])
            for _ in range(100):
                try:
                    reader, writer = await runtime.port_forward(sid, port)
                    break
                except RuntimeError_:
                    await asyncio.sleep(0.05)
            writer.write(b"GET / HTTP/1.0\r\n\r\n")  # type: ignore[attr-defined]
            response = await asyncio.wait_for(reader.read(), 5)  # type: ignore[attr-defined]
            writer.close()  # type: ignore[attr-defined]
            assert response.startswith(b"HTTP/1.0 200")
            await runtime.stop_container(cid, 5)
        finally:
            await runtime.remove_pod_sandbox(sid)

    # ---- resources ------------------------------------------------------------------------------

    async def test_oom_killed(self, runtime: Runtime, sandbox: str) -> None:
        if not capability(runtime, "cgroups"):
            pytest.skip("cgroups are not writable here (see capabilities().notes)")
        cid = await self.run(runtime, sandbox, [PY, "-c", "b = b'x' * (200 * 1024 * 1024); print('survived')"],
                             resources=Resources(memory_limit_bytes=50 * 1024 * 1024))
        status = await asyncio.wait_for(runtime.wait_container(cid), 20)
        assert (status.exit_code, status.reason) == (137, "OOMKilled")

    async def test_stats(self, runtime: Runtime, sandbox: str) -> None:
        cid = await self.run(runtime, sandbox, [PY, "-c", "import time; b = b'y' * 20_000_000; sum(range(3_000_000));"
                                                          "print('ready', flush=True); time.sleep(300)"],
                             resources=Resources(cpu_limit_millis=1000, memory_limit_bytes=512 * 1024 * 1024))
        status = await runtime.container_status(cid)
        assert status is not None
        for _ in range(200):
            if b"ready" in read(status.log_path):
                break
            await asyncio.sleep(0.02)
        stats = await runtime.container_stats(cid)
        assert stats is not None
        assert stats.cpu_usage_core_nanoseconds > 0 and stats.memory_working_set_bytes > 10_000_000
        assert stats.timestamp > 0

    # ---- a restarted runtime --------------------------------------------------------------------

    async def test_adopts_containers_of_a_previous_instance(self, runtime_factory: RuntimeFactory,
                                                            pod_config: PodSandboxConfig, crashed_runtime: Callable[
                                                                [PodSandboxConfig], Awaitable[tuple[str, str]]]) -> None:
        sid, cid = await crashed_runtime(pod_config)
        runtime = await runtime_factory()
        try:
            assert sid in [s for s, _ in await runtime.list_pod_sandboxes()]
            listed = {c.id: c for c in await runtime.list_containers(sid)}
            assert listed[cid].state == ContainerState.RUNNING and pid_alive(listed[cid].pid)
            session = await runtime.exec(cid, ["echo", "adopted"], tty=False, stdin=False)
            assert b"".join([c async for c in session.stdout()]) == b"adopted\n"
            await session.wait()
            await runtime.stop_container(cid, 5)
            status = await runtime.container_status(cid)
            assert status is not None and status.state == ContainerState.EXITED
            assert not pid_alive(listed[cid].pid)
            assert b"before" in read(status.log_path)
            await runtime.remove_pod_sandbox(sid)
        finally:
            await runtime.close()
