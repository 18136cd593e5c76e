"""ProcessRuntime: the shared runtime contract plus what only host processes have (adoption by pid, cgroups)."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

import kubeling
from kubeling.runtime import new_runtime
from kubeling.runtime.interface import PodSandboxConfig
from kubeling.runtime.process import ProcessRuntime
from kubeling.runtime.process.logs import (
    CriLogWriter,
    LineSplitter,
    join_partials,
    parse_cri_line,
    read_cri_log,
)

from .contract import RuntimeContract, RuntimeFactory, exists

CGROUP_PARENT = f"kubeling-test-{os.getpid()}"


@pytest.fixture(autouse=True, scope="module")
def no_cgroup_left_behind() -> Iterator[None]:
    """After the module: the runtime must have removed every cgroup it created under our parent."""
    yield
    left = [d for d in glob.glob(f"/sys/fs/cgroup/**/{CGROUP_PARENT}/*", recursive=True) if os.path.isdir(d)]
    for d in glob.glob(f"/sys/fs/cgroup/**/{CGROUP_PARENT}", recursive=True):
        for sub in sorted((p for p in glob.glob(f"{d}/**/", recursive=True)), key=len, reverse=True):
            with contextlib.suppress(OSError):
                os.rmdir(sub)
    assert not left, f"cgroups left behind: {left}"


class TestProcessRuntimeContract(RuntimeContract):
    """The contract on a fresh state directory per test."""

    @pytest.fixture
    def runtime_factory(self, tmp_path: Path) -> RuntimeFactory:
        async def factory() -> ProcessRuntime:
            runtime = ProcessRuntime(str(tmp_path / "runtime"), cgroup_parent=CGROUP_PARENT)
            await runtime.start()
            return runtime

        return factory

    @pytest.fixture
    def crashed_runtime(self, tmp_path: Path) -> Callable[[PodSandboxConfig], Awaitable[tuple[str, str]]]:
        """Runs a runtime in a child process that starts a container, then dies without cleanup."""

        async def crash(pod: PodSandboxConfig) -> tuple[str, str]:
            script = textwrap.dedent(f"""
                import asyncio, os
                from kubeling.runtime.interface import ContainerConfig, PodSandboxConfig
                from kubeling.runtime.process import ProcessRuntime
                async def main():
                    rt = ProcessRuntime({str(tmp_path / "runtime")!r}, cgroup_parent={CGROUP_PARENT!r})
                    await rt.start()
                    sid = await rt.run_pod_sandbox(PodSandboxConfig(name={pod.name!r}, namespace={pod.namespace!r},
                        uid={pod.uid!r}, hostname={pod.hostname!r}, log_directory={pod.log_directory!r}))
                    cid = await rt.create_container(sid, ContainerConfig(name="c", image="",
                        command=["sh", "-c", "echo before; sleep 300"]))
                    await rt.start_container(cid)
                    await asyncio.sleep(0.2)
                    print(sid, cid, flush=True)
                    os._exit(0)  # a crash: no close(), no cleanup
                asyncio.run(main())
            """)
            proc = await asyncio.create_subprocess_exec(sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE)
            out, _ = await proc.communicate()
            sid, cid = out.decode().split()
            return sid, cid

        return crash


class TestProcessRuntimeWithoutIsolation(RuntimeContract):
    """The contract on plain processes: what a host without namespaces or cgroups gets."""

    @pytest.fixture
    def runtime_factory(self, tmp_path: Path) -> RuntimeFactory:
        async def factory() -> ProcessRuntime:
            runtime = ProcessRuntime(str(tmp_path / "runtime"), use_namespaces=False, use_cgroups=False)
            await runtime.start()
            return runtime

        return factory

    crashed_runtime = TestProcessRuntimeContract.crashed_runtime


async def test_factory_and_capabilities(tmp_path: Path) -> None:
    runtime = new_runtime("process", str(tmp_path))
    assert isinstance(runtime, ProcessRuntime)
    await runtime.start()
    caps = runtime.capabilities()
    assert caps.root == (os.geteuid() == 0)
    if caps.root:
        assert caps.hostname and caps.mounts and not caps.user_namespace
    await runtime.close()
    with pytest.raises(ValueError):
        new_runtime("docker", str(tmp_path))


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[ProcessRuntime]:
    rt = ProcessRuntime(str(tmp_path / "rt"), cgroup_parent=CGROUP_PARENT)
    await rt.start()
    yield rt
    await rt.close()


async def test_cgroups_removed_with_sandbox(runtime: ProcessRuntime, tmp_path: Path) -> None:
    if not runtime.capabilities().cgroups:
        pytest.skip("cgroups are not writable here")
    from kubeling.runtime.interface import ContainerConfig, Resources

    sid = await runtime.run_pod_sandbox(PodSandboxConfig(name="p", namespace="n", uid="cg-test", hostname="p",
                                                         log_directory=str(tmp_path / "logs")))
    cid = await runtime.create_container(sid, ContainerConfig(name="c", image="", command=["sleep", "300"],
                                                              resources=Resources(cpu_limit_millis=500)))
    await runtime.start_container(cid)
    dirs = list(runtime._records[cid].cgroup.values())
    assert dirs and all(exists(d) for d in dirs)
    pod_dirs = [os.path.dirname(d) for d in dirs]
    await runtime.remove_pod_sandbox(sid)
    assert not any(exists(d) for d in dirs + pod_dirs)


def test_log_writer_rotation_and_reader(tmp_path: Path) -> None:
    path = str(tmp_path / "0.log")
    writer = CriLogWriter(path, max_bytes=300)
    splitter = LineSplitter(max_line=10)
    for content, partial in splitter.feed(b"short\n" + b"a" * 25 + b"\n" + b"rest"):
        writer.write("stdout", content, partial=partial)
    for content, partial in splitter.finish():
        writer.write("stderr", content, partial=partial)
    for i in range(5):
        writer.write("stdout", b"filler %d" % i)
    writer.close()
    entries = list(read_cri_log(path))
    assert os.path.exists(path + ".1") and os.path.getsize(path) <= 300
    joined = [(e.stream, e.content) for e in join_partials(iter(entries))]
    assert joined[:3] == [("stdout", b"short"), ("stdout", b"a" * 25), ("stderr", b"rest")]
    assert joined[-1] == ("stdout", b"filler 4")
    assert parse_cri_line(b"garbage") is None
    entry = parse_cri_line(b"2026-01-01T00:00:00.000000001Z stdout P half")
    assert entry is not None and entry.partial and entry.content == b"half"


UNPRIVILEGED_SMOKE = """
import asyncio, os, sys
from kubeling.runtime.interface import ContainerConfig, Mount, PodSandboxConfig
from kubeling.runtime.process import ProcessRuntime

async def main(root):
    rt = ProcessRuntime(os.path.join(root, "rt"))
    await rt.start()
    caps = rt.capabilities()
    assert not caps.root
    if not caps.hostname:
        print("SKIP", caps.notes)
        return
    assert caps.user_namespace and caps.mounts, caps
    os.makedirs(os.path.join(root, "vol"))
    with open(os.path.join(root, "vol", "key"), "w") as f:
        f.write("value")
    sid = await rt.run_pod_sandbox(PodSandboxConfig(name="p", namespace="n", uid="u", hostname="unpriv-0",
                                                    log_directory=os.path.join(root, "logs")))
    cid = await rt.create_container(sid, ContainerConfig(name="c", image="", command=["sleep", "60"],
        mounts=[Mount(os.path.join(root, "vol"), "/etc/kubeling-unpriv", read_only=True)]))
    await rt.start_container(cid)
    code, out = await rt.exec_sync(cid, ["sh", "-c", "hostname; id -u; cat /etc/kubeling-unpriv/key"], 5)
    assert (code, out.split()) == (0, [b"unpriv-0", str(os.getuid()).encode(), b"value"]), (code, out)
    await rt.close()
    print("OK")

asyncio.run(main(sys.argv[1]))
"""


def _unprivileged_python(uid: int) -> str | None:
    """An interpreter of our minor version that `uid` may run (the venv's may live under /root)."""
    candidates = [sys.executable, f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}"]
    for python in candidates:
        # It must also be able to start itself again (sys.executable), as the runtime does.
        check = "import subprocess, sys; subprocess.run([sys.executable, '-c', '0'], check=True)"
        probe = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", python, "-c", check],
                               capture_output=True, cwd="/")
        if probe.returncode == 0:
            return python
    return None


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="drops root privileges; needs root")
def test_unprivileged_user_namespace_mode() -> None:
    """As root, also check the no-root mode: an unprivileged user gets hostname, mounts and exec."""
    uid = 65534
    python = _unprivileged_python(uid)
    if python is None:
        pytest.skip("no Python interpreter the unprivileged user may run")
    root = tempfile.mkdtemp(prefix="kubeling-unpriv-")
    os.chmod(root, 0o777)
    try:
        src = str(Path(kubeling.__file__).resolve().parents[1])
        result = subprocess.run(
            ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", python, "-c", UNPRIVILEGED_SMOKE, root],
            capture_output=True, env={"PATH": os.environ["PATH"], "PYTHONPATH": src}, timeout=30, cwd="/")
        assert result.returncode == 0, result.stderr.decode()
        if result.stdout.startswith(b"SKIP"):
            pytest.skip(f"no unprivileged user namespaces here: {result.stdout.decode()}")
        assert result.stdout.strip() == b"OK"
    finally:
        shutil.rmtree(root, ignore_errors=True)
