"""Pod volumes on the node: materialise each volume as a host directory (or file) and map mounts.

Why: containers see volumes at their `mountPath` (the runtime bind-mounts the host
paths this module returns). Kubernetes semantics that workloads rely on and that
are kept here:

* configMap / secret / downwardAPI / projected volumes are written like Kubernetes'
  AtomicWriter: the payload goes into a fresh hidden `..<timestamp>` directory, a
  `..data` symlink is swapped to it with one rename, and each visible top-level
  name is a symlink through `..data`. Readers never see a half-updated volume, and
  apps that watch `..data` (or re-read files) pick up `kubectl apply` changes —
  `refresh(pod)` re-fetches sources and rewrites only when the payload changed.
* Errors carry Kubernetes' text (`configmap "x" not found`) so the kubelet's
  FailedMount event reads as users expect.
* Layout: `<root>/pods/<uid>/volumes/<plugin>/<volume>` — per pod, so `cleanup`
  removes exactly the pod's data and never follows a hostPath.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import stat
import time
from collections.abc import Mapping
from typing import Any

from kubeling.api.errors import StatusError
from kubeling.client import resources
from kubeling.kubelet.env import (
    EnvError,
    ObjectGetter,
    expand,
    field_ref_value,
    find_container,
    object_data,
    resource_field_value,
)
from kubeling.runtime.interface import Mount

Obj = dict[str, Any]
log = logging.getLogger(__name__)

DEFAULT_MODE = 0o644
_API_VOLUMES = ("configMap", "secret", "downwardAPI", "projected")


class VolumeError(Exception):
    """A volume cannot be set up; the kubelet reports a FailedMount event with this message."""


# -- AtomicWriter -----------------------------------------------------------------------------------


def _read_current(target: str) -> dict[str, tuple[bytes, int]] | None:
    data_dir = os.path.join(target, "..data")
    if not os.path.isdir(data_dir):
        return None
    out: dict[str, tuple[bytes, int]] = {}
    for dirpath, _dirs, files in os.walk(data_dir, followlinks=True):
        for f in files:
            full = os.path.join(dirpath, f)
            with open(full, "rb") as fh:
                out[os.path.relpath(full, data_dir)] = (fh.read(), stat.S_IMODE(os.stat(full).st_mode))
    return out


def atomic_write(target: str, payload: Mapping[str, tuple[bytes, int]]) -> bool:
    """Write `payload` (relative path → (content, mode)) into `target` atomically; False when unchanged."""
    os.makedirs(target, exist_ok=True)
    if _read_current(target) == dict(payload):
        return False
    ts_dir = os.path.join(target, f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{time.monotonic_ns()}")
    os.mkdir(ts_dir)
    os.chmod(ts_dir, 0o755)
    for rel, (content, mode) in payload.items():
        full = os.path.join(ts_dir, rel)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as fh:
            fh.write(content)
        os.chmod(full, mode)
    data_link = os.path.join(target, "..data")
    old = os.readlink(data_link) if os.path.islink(data_link) else None
    tmp_link = os.path.join(target, "..data_tmp")
    if os.path.lexists(tmp_link):
        os.unlink(tmp_link)
    os.symlink(os.path.basename(ts_dir), tmp_link)
    os.rename(tmp_link, data_link)
    # Visible names: one symlink per top-level entry, through ..data.
    tops = {rel.split(os.sep, 1)[0] for rel in payload}
    for name in tops:
        link = os.path.join(target, name)
        if not os.path.lexists(link):
            os.symlink(os.path.join("..data", name), link)
    for name in os.listdir(target):
        if not name.startswith("..") and name not in tops:
            path = os.path.join(target, name)
            if os.path.islink(path):
                os.unlink(path)
    if old and old != os.path.basename(ts_dir):
        shutil.rmtree(os.path.join(target, old), ignore_errors=True)
    return True


# -- payload builders -------------------------------------------------------------------------------


def _check_rel(path: str) -> None:
    if os.path.isabs(path) or ".." in path.split("/"):
        raise VolumeError(f"invalid path {path!r}: must be relative and may not contain '..'")


def _items_payload(data: Mapping[str, bytes], items: list[Obj] | None, mode: int, optional: bool,
                   what: str) -> dict[str, tuple[bytes, int]]:
    out: dict[str, tuple[bytes, int]] = {}
    if not items:
        return {k: (v, mode) for k, v in data.items()}
    for it in items:
        key, path = it.get("key", ""), it.get("path") or it.get("key", "")
        _check_rel(path)
        if key not in data:
            if optional:
                continue
            raise VolumeError(f"{what} references non-existent config key: {key}" if what == "configmap"
                              else f"references non-existent secret key: {key}")
        out[path] = (data[key], it.get("mode") if it.get("mode") is not None else mode)
    return out


class VolumeManager:
    """Sets up, refreshes and removes the volumes of the pods on this node."""

    def __init__(self, client: ObjectGetter, root_dir: str, *, node_allocatable: Mapping[str, Any] | None = None,
                 node_name: str = "", host_ip: str = "") -> None:
        self.client = client
        self.root_dir = root_dir
        self.node_allocatable = dict(node_allocatable or {})
        self.node_name = node_name
        self.host_ip = host_ip
        self._pod_ips: dict[str, str] = {}

    def pod_volumes_dir(self, pod_uid: str) -> str:
        return os.path.join(self.root_dir, "pods", pod_uid, "volumes")

    def _dir(self, pod: Obj, plugin: str, name: str) -> str:
        return os.path.join(self.pod_volumes_dir(pod["metadata"]["uid"]), plugin, name)

    async def _source(self, kind: str, ns: str, name: str, optional: bool) -> dict[str, bytes] | None:
        res = resources.CONFIGMAPS if kind == "configmap" else resources.SECRETS
        try:
            obj = await self.client.get(res, name, namespace=ns)
        except StatusError as err:
            if err.code == 404:
                if optional:
                    return None
                raise VolumeError(f'{kind} "{name}" not found') from err
            raise VolumeError(f"couldn't get {kind} {ns}/{name}: {err}") from err
        if kind == "configmap":
            data = {k: v.encode() for k, v in object_data(kind, obj).items()}
            data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
            return data
        data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
        data.update({k: str(v).encode() for k, v in (obj.get("stringData") or {}).items()})
        return data

    def _downward(self, pod: Obj, items: list[Obj], mode: int) -> dict[str, tuple[bytes, int]]:
        out: dict[str, tuple[bytes, int]] = {}
        uid = pod["metadata"]["uid"]
        for it in items or []:
            path = it.get("path", "")
            _check_rel(path)
            try:
                if it.get("fieldRef"):
                    value = field_ref_value(pod, it["fieldRef"].get("fieldPath", ""),
                                            pod_ip=self._pod_ips.get(uid, ""), host_ip=self.host_ip,
                                            node_name=self.node_name)
                elif it.get("resourceFieldRef"):
                    ref = it["resourceFieldRef"]
                    container = find_container(pod, ref.get("containerName", ""))
                    if container is None:
                        raise VolumeError(f"container {ref.get('containerName')!r} not found in pod")
                    value = resource_field_value(container, ref, self.node_allocatable)
                else:
                    continue
            except EnvError as err:
                raise VolumeError(str(err)) from err
            out[path] = (value.encode(), it.get("mode") if it.get("mode") is not None else mode)
        return out

    async def _api_payload(self, pod: Obj, vol: Obj) -> dict[str, tuple[bytes, int]]:
        ns = pod["metadata"].get("namespace") or "default"
        if "configMap" in vol or "secret" in vol:
            kind = "configmap" if "configMap" in vol else "secret"
            src = vol.get("configMap") or vol.get("secret") or {}
            name = src.get("name") if kind == "configmap" else src.get("secretName")
            mode = src.get("defaultMode") if src.get("defaultMode") is not None else DEFAULT_MODE
            optional = bool(src.get("optional"))
            data = await self._source(kind, ns, name or "", optional)
            return _items_payload(data or {}, src.get("items"), mode, optional, kind)
        if "downwardAPI" in vol:
            src = vol["downwardAPI"] or {}
            mode = src.get("defaultMode") if src.get("defaultMode") is not None else DEFAULT_MODE
            return self._downward(pod, src.get("items") or [], mode)
        src = vol.get("projected") or {}
        mode = src.get("defaultMode") if src.get("defaultMode") is not None else DEFAULT_MODE
        out: dict[str, tuple[bytes, int]] = {}
        for source in src.get("sources") or []:
            if "configMap" in source or "secret" in source:
                kind = "configmap" if "configMap" in source else "secret"
                ref = source.get("configMap") or source.get("secret") or {}
                optional = bool(ref.get("optional"))
                data = await self._source(kind, ns, ref.get("name", ""), optional)
                out.update(_items_payload(data or {}, ref.get("items"), mode, optional, kind))
            elif "downwardAPI" in source:
                out.update(self._downward(pod, (source["downwardAPI"] or {}).get("items") or [], mode))
            elif "serviceAccountToken" in source:
                # No TokenRequest API yet: a fake token would mislead clients, so leave it out.
                log.warning("pod %s/%s: projected serviceAccountToken skipped (TokenRequest not served)",
                            ns, pod["metadata"].get("name"))
            elif "clusterTrustBundle" in source:
                log.warning("pod %s/%s: projected clusterTrustBundle not supported", ns, pod["metadata"].get("name"))
        return out

    async def _pvc_path(self, ns: str, claim: str) -> str:
        try:
            pvc = await self.client.get(resources.PERSISTENTVOLUMECLAIMS, claim, namespace=ns)
        except StatusError as err:
            raise VolumeError(f'persistentvolumeclaim "{claim}" not found' if err.code == 404 else str(err)) from err
        pv_name = (pvc.get("spec") or {}).get("volumeName")
        if not pv_name or (pvc.get("status") or {}).get("phase") not in (None, "Bound"):
            raise VolumeError(f'persistentvolumeclaim "{claim}" is not bound')
        try:
            pv = await self.client.get(resources.PERSISTENTVOLUMES, pv_name)
        except StatusError as err:
            raise VolumeError(f'persistentvolume "{pv_name}" not found') from err
        spec = pv.get("spec") or {}
        path = (spec.get("hostPath") or {}).get("path") or (spec.get("local") or {}).get("path")
        if not path:
            raise VolumeError(f'persistentvolume "{pv_name}": only hostPath and local volumes are supported')
        os.makedirs(path, exist_ok=True)
        return path

    async def mount_pod_volumes(self, pod: Obj, *, pod_ip: str = "") -> dict[str, str]:
        """Set up every volume of `pod`; returns volume name → host path. Raises VolumeError."""
        meta = pod["metadata"]
        ns = meta.get("namespace") or "default"
        if pod_ip:
            self._pod_ips[meta["uid"]] = pod_ip
        out: dict[str, str] = {}
        for vol in (pod.get("spec") or {}).get("volumes") or []:
            name = vol["name"]
            if "emptyDir" in vol:
                path = self._dir(pod, "empty-dir", name)
                os.makedirs(path, exist_ok=True)
                os.chmod(path, 0o777)
            elif "hostPath" in vol:
                path = vol["hostPath"].get("path", "")
                check_host_path(path, vol["hostPath"].get("type") or "")
            elif any(k in vol for k in _API_VOLUMES):
                plugin = next(k for k in _API_VOLUMES if k in vol).lower()
                path = self._dir(pod, plugin, name)
                atomic_write(path, await self._api_payload(pod, vol))
            elif "persistentVolumeClaim" in vol:
                path = await self._pvc_path(ns, vol["persistentVolumeClaim"].get("claimName", ""))
            else:
                kind = next((k for k in vol if k != "name"), "unknown")
                raise VolumeError(f'volume "{name}": volume type {kind} is not supported on this node')
            out[name] = path
        return out

    async def refresh(self, pod: Obj) -> list[str]:
        """Rewrite configMap/secret/downwardAPI/projected volumes whose content changed; returns their names.

        A source that disappeared leaves the last content in place (as Kubernetes does).
        """
        changed: list[str] = []
        for vol in (pod.get("spec") or {}).get("volumes") or []:
            kinds = [k for k in _API_VOLUMES if k in vol]
            if not kinds:
                continue
            path = self._dir(pod, kinds[0].lower(), vol["name"])
            try:
                payload = await self._api_payload(pod, vol)
            except VolumeError as err:
                log.debug("refresh of volume %s skipped: %s", vol["name"], err)
                continue
            if atomic_write(path, payload):
                changed.append(vol["name"])
        return changed

    def container_mounts(self, pod: Obj, container: Mapping[str, Any], volume_dirs: Mapping[str, str],
                         env: Mapping[str, str] | None = None) -> list[Mount]:
        """The runtime mounts of `container`: subPath / subPathExpr resolved, readOnly honoured."""
        return container_mounts(pod, container, volume_dirs, env)

    async def cleanup(self, pod_uid: str) -> None:
        """Remove the pod's volume data (emptyDir, API volumes); hostPath/PV data is left alone."""
        self._pod_ips.pop(pod_uid, None)
        shutil.rmtree(os.path.join(self.root_dir, "pods", pod_uid), ignore_errors=True)


_HOST_PATH_CHECKS = {
    "Directory": (stat.S_ISDIR, "a directory"),
    "File": (stat.S_ISREG, "a file"),
    "Socket": (stat.S_ISSOCK, "a socket"),
    "CharDevice": (stat.S_ISCHR, "a character device"),
    "BlockDevice": (stat.S_ISBLK, "a block device"),
}


def check_host_path(path: str, type_: str) -> None:
    """Apply hostPath `type` semantics (creating for *OrCreate); VolumeError as Kubernetes words it."""
    if type_ == "DirectoryOrCreate":
        if not os.path.exists(path):
            os.makedirs(path, mode=0o755, exist_ok=True)
        type_ = "Directory"
    elif type_ == "FileOrCreate":
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path) or "/", exist_ok=True)
            with open(path, "a"):
                pass
            os.chmod(path, 0o644)
        type_ = "File"
    if type_ in ("", "Unset"):
        return
    if type_ not in _HOST_PATH_CHECKS:
        raise VolumeError(f"hostPath type {type_} is not supported")
    check, what = _HOST_PATH_CHECKS[type_]
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = 0
    if not mode or not check(mode):
        raise VolumeError(f"hostPath type check failed: {path} is not {what}")


def _safe_subpath(sub: str) -> str:
    if os.path.isabs(sub):
        raise VolumeError(f"subPath {sub!r}: must not be an absolute path")
    if ".." in sub.split("/"):
        raise VolumeError(f"subPath {sub!r}: must not contain '..'")
    return sub


def container_mounts(pod: Obj, container: Mapping[str, Any], volume_dirs: Mapping[str, str],
                     env: Mapping[str, str] | None = None) -> list[Mount]:
    """Map `container.volumeMounts` onto host paths; VolumeError for unknown volumes or bad subPaths."""
    vols = {v["name"]: v for v in (pod.get("spec") or {}).get("volumes") or []}
    out: list[Mount] = []
    for vm in container.get("volumeMounts") or []:
        name = vm.get("name", "")
        if name not in volume_dirs:
            raise VolumeError(f'volume "{name}" not found for mount {vm.get("mountPath")!r}')
        host = volume_dirs[name]
        sub = vm.get("subPath") or ""
        if vm.get("subPathExpr"):
            env = env or {}
            missing = sorted({k for k in _refs(vm["subPathExpr"]) if not env.get(k)})
            if missing:
                raise VolumeError(f"missing value for {', '.join(missing)}")
            sub = expand(vm["subPathExpr"], env)
        vol = vols.get(name, {})
        if sub:
            host = os.path.join(host, _safe_subpath(sub))
            if ("emptyDir" in vol or "hostPath" in vol or "persistentVolumeClaim" in vol) \
                    and not os.path.lexists(host):
                os.makedirs(host, mode=0o750, exist_ok=True)
        read_only = bool(vm.get("readOnly")) or any(k in vol for k in _API_VOLUMES) \
            or bool((vol.get("persistentVolumeClaim") or {}).get("readOnly"))
        out.append(Mount(host_path=host, container_path=vm.get("mountPath", ""), read_only=read_only))
    return out


def _refs(s: str) -> set[str]:
    names: set[str] = set()
    expand(s, _Recorder(names))
    return names


class _Recorder(dict[str, str]):
    """A mapping that records every name looked up, to find undefined `$(VAR)` references."""

    def __init__(self, names: set[str]) -> None:
        super().__init__()
        self._names = names

    def __contains__(self, key: object) -> bool:
        self._names.add(str(key))
        return False
