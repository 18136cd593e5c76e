"""Pod volumes: API-object volumes written atomically with modes and items, hostPath, subPath."""
# ruff: noqa: ASYNC230, ASYNC240  (tests read and write small tmp files inline, on purpose)

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path
from typing import Any

import pytest

from kubeling.kubelet.volumes import VolumeError, VolumeManager, atomic_write, check_host_path
from kubeling.runtime.interface import Mount

from .fakes import FakeClient


def _pod(volumes: list[dict[str, Any]], mounts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "default", "uid": "uid-1", "labels": {"app": "a"},
                         "annotations": {}},
            "spec": {"nodeName": "n1", "volumes": volumes,
                     "containers": [{"name": "c", "resources": {"limits": {"memory": "32Mi"}},
                                     "volumeMounts": mounts or []}]}}


def _mode(p: str) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def _read(p: str) -> str:
    return Path(p).read_text()


@pytest.fixture
def client() -> FakeClient:
    c = FakeClient()
    c.configmap("cfg", {"a.txt": "A", "b.txt": "B"}, binaryData={"bin": "AAE="})
    c.secret("sec", {"user": "admin", "pw": "x"})
    return c


async def test_configmap_and_secret_files(tmp_path: Path, client: FakeClient) -> None:
    vm = VolumeManager(client, str(tmp_path))
    pod = _pod([
        {"name": "cfg", "configMap": {"name": "cfg"}},
        {"name": "sec", "secret": {"secretName": "sec", "defaultMode": 0o400}},
        {"name": "items", "configMap": {"name": "cfg", "items": [{"key": "a.txt", "path": "sub/x.conf", "mode": 0o600}]}},
        {"name": "opt", "secret": {"secretName": "nope", "optional": True}},
    ])
    dirs = await vm.mount_pod_volumes(pod)
    assert _read(os.path.join(dirs["cfg"], "a.txt")) == "A"
    assert Path(dirs["cfg"], "bin").read_bytes() == b"\x00\x01"
    assert _mode(os.path.join(dirs["cfg"], "a.txt")) == 0o644
    assert os.path.islink(os.path.join(dirs["cfg"], "a.txt"))
    assert os.readlink(os.path.join(dirs["cfg"], "a.txt")) == "..data/a.txt"
    assert _read(os.path.join(dirs["sec"], "user")) == "admin"
    assert _mode(os.path.join(dirs["sec"], "pw")) == 0o400
    assert sorted(n for n in os.listdir(dirs["items"]) if not n.startswith("..")) == ["sub"]
    assert _read(os.path.join(dirs["items"], "sub/x.conf")) == "A"
    assert _mode(os.path.join(dirs["items"], "sub/x.conf")) == 0o600
    assert [n for n in os.listdir(dirs["opt"]) if not n.startswith("..")] == []
    assert dirs["cfg"].startswith(str(tmp_path / "pods" / "uid-1" / "volumes"))


@pytest.mark.parametrize(("volume", "message"), [
    ({"name": "v", "configMap": {"name": "missing"}}, 'configmap "missing" not found'),
    ({"name": "v", "secret": {"secretName": "missing"}}, 'secret "missing" not found'),
    ({"name": "v", "configMap": {"name": "cfg", "items": [{"key": "zz", "path": "zz"}]}},
     "configmap references non-existent config key: zz"),
    ({"name": "v", "persistentVolumeClaim": {"claimName": "data"}}, 'persistentvolumeclaim "data" not found'),
    ({"name": "v", "hostPath": {"path": "/definitely/not/here", "type": "Directory"}},
     "hostPath type check failed: /definitely/not/here is not a directory"),
])
async def test_mount_errors(tmp_path: Path, client: FakeClient, volume: dict[str, Any], message: str) -> None:
    with pytest.raises(VolumeError) as exc:
        await VolumeManager(client, str(tmp_path)).mount_pod_volumes(_pod([volume]))
    assert str(exc.value) == message


async def test_downward_api_and_projected(tmp_path: Path, client: FakeClient) -> None:
    vm = VolumeManager(client, str(tmp_path))
    pod = _pod([
        {"name": "dw", "downwardAPI": {"items": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
            {"path": "mem", "resourceFieldRef": {"containerName": "c", "resource": "limits.memory",
                                                 "divisor": "1Mi"}}]}},
        {"name": "proj", "projected": {"defaultMode": 0o440, "sources": [
            {"configMap": {"name": "cfg", "items": [{"key": "b.txt", "path": "b"}]}},
            {"secret": {"name": "sec"}},
            {"downwardAPI": {"items": [{"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
            {"serviceAccountToken": {"path": "token"}}]}},
    ])
    dirs = await vm.mount_pod_volumes(pod)
    assert _read(os.path.join(dirs["dw"], "labels")) == 'app="a"'
    assert _read(os.path.join(dirs["dw"], "name")) == "p"
    assert _read(os.path.join(dirs["dw"], "mem")) == "32"
    assert _read(os.path.join(dirs["proj"], "b")) == "B"
    assert _read(os.path.join(dirs["proj"], "user")) == "admin"
    assert _read(os.path.join(dirs["proj"], "ns")) == "default"
    assert _mode(os.path.join(dirs["proj"], "b")) == 0o440
    assert not os.path.exists(os.path.join(dirs["proj"], "token"))


async def test_atomic_update_on_refresh(tmp_path: Path, client: FakeClient) -> None:
    vm = VolumeManager(client, str(tmp_path))
    pod = _pod([{"name": "cfg", "configMap": {"name": "cfg"}}])
    dirs = await vm.mount_pod_volumes(pod)
    target = dirs["cfg"]
    first = os.readlink(os.path.join(target, "..data"))
    assert await vm.refresh(pod) == []  # unchanged: nothing rewritten
    assert os.readlink(os.path.join(target, "..data")) == first
    client.configmap("cfg", {"a.txt": "A2", "c.txt": "C"})
    assert await vm.refresh(pod) == ["cfg"]
    second = os.readlink(os.path.join(target, "..data"))
    assert second != first and not os.path.exists(os.path.join(target, first))
    assert _read(os.path.join(target, "a.txt")) == "A2"
    assert _read(os.path.join(target, "c.txt")) == "C"
    assert not os.path.lexists(os.path.join(target, "b.txt"))
    hidden = [n for n in os.listdir(target) if n.startswith("..")]
    assert sorted(hidden) == sorted(["..data", second])


def test_atomic_write_unchanged(tmp_path: Path) -> None:
    assert atomic_write(str(tmp_path / "v"), {"k": (b"v", 0o644)})
    assert not atomic_write(str(tmp_path / "v"), {"k": (b"v", 0o644)})
    assert atomic_write(str(tmp_path / "v"), {"k": (b"v", 0o600)})


async def test_empty_dir_subpath_and_mounts(tmp_path: Path, client: FakeClient) -> None:
    vm = VolumeManager(client, str(tmp_path))
    mounts = [
        {"name": "scratch", "mountPath": "/data"},
        {"name": "scratch", "mountPath": "/logs", "subPath": "logs", "readOnly": True},
        {"name": "scratch", "mountPath": "/per-pod", "subPathExpr": "$(POD_NAME)/out"},
        {"name": "cfg", "mountPath": "/etc/app/a.txt", "subPath": "a.txt"},
    ]
    pod = _pod([{"name": "scratch", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "cfg"}}], mounts)
    dirs = await vm.mount_pod_volumes(pod)
    got = vm.container_mounts(pod, pod["spec"]["containers"][0], dirs, {"POD_NAME": "p"})
    scratch = dirs["scratch"]
    assert got == [
        Mount(scratch, "/data", False),
        Mount(os.path.join(scratch, "logs"), "/logs", True),
        Mount(os.path.join(scratch, "p/out"), "/per-pod", False),
        Mount(os.path.join(dirs["cfg"], "a.txt"), "/etc/app/a.txt", True),
    ]
    assert os.path.isdir(os.path.join(scratch, "p/out"))
    assert _read(got[3].host_path) == "A"
    with pytest.raises(VolumeError, match="missing value for POD_NAME"):
        vm.container_mounts(pod, {"volumeMounts": [mounts[2]]}, dirs, {})
    with pytest.raises(VolumeError, match="must not contain"):
        vm.container_mounts(pod, {"volumeMounts": [{"name": "scratch", "mountPath": "/x", "subPath": "../up"}]}, dirs)
    await vm.cleanup("uid-1")
    assert not os.path.exists(scratch)


async def test_host_path_types_and_pvc(tmp_path: Path, client: FakeClient) -> None:
    check_host_path(str(tmp_path / "new/dir"), "DirectoryOrCreate")
    assert (tmp_path / "new/dir").is_dir()
    check_host_path(str(tmp_path / "f/file"), "FileOrCreate")
    assert (tmp_path / "f/file").is_file()
    with pytest.raises(VolumeError, match="is not a file"):
        check_host_path(str(tmp_path / "new"), "File")
    sock_path = str(tmp_path / "s.sock")
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(sock_path)
        check_host_path(sock_path, "Socket")
    with pytest.raises(VolumeError, match="is not a socket"):
        check_host_path(str(tmp_path / "f/file"), "Socket")

    client.add("persistentvolumeclaims", {"metadata": {"name": "data", "namespace": "default"},
                                          "spec": {"volumeName": "pv1"}, "status": {"phase": "Bound"}})
    client.add("persistentvolumes", {"metadata": {"name": "pv1"}, "spec": {"hostPath": {"path": str(tmp_path / "pv")}}})
    dirs = await VolumeManager(client, str(tmp_path)).mount_pod_volumes(
        _pod([{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]))
    assert dirs["d"] == str(tmp_path / "pv") and os.path.isdir(dirs["d"])
    client.add("persistentvolumeclaims", {"metadata": {"name": "pending", "namespace": "default"},
                                          "spec": {}, "status": {"phase": "Pending"}})
    with pytest.raises(VolumeError, match="is not bound"):
        await VolumeManager(client, str(tmp_path)).mount_pod_volumes(
            _pod([{"name": "d", "persistentVolumeClaim": {"claimName": "pending"}}]))
