"""A CNI runtime (the caller side of the CNI 1.0 spec), in the manner of libcni.

Why our own: the standard plugins (`bridge`, `host-local`, `portmap`, `loopback`) are
executables with a tiny, stable protocol — environment variables in, network
configuration JSON on stdin, result or error JSON on stdout — so calling them directly
keeps kubeling free of a Go dependency while staying compatible with any CNI plugin a
user drops into the bin directory.

What the spec asks of a runtime, and where it is done here:

* `CNI_COMMAND`, `CNI_CONTAINERID`, `CNI_NETNS` (a path), `CNI_IFNAME`, `CNI_PATH`
  (and optional `CNI_ARGS`) in the environment: `_env`.
* Each plugin of a network configuration list gets its own config: the plugin object
  plus the list's `name` and `cniVersion`, `runtimeConfig` holding only the
  capabilities the plugin declared (`"capabilities": {"portMappings": true}`), and
  `prevResult`: `_plugin_config`.
* ADD runs the plugins in order, each getting the previous result; DEL runs them in
  reverse with the cached ADD result as `prevResult`; CHECK runs them in order with the
  cached result: `NetworkPlugin.add/delete/check`. The ADD result is cached (in memory,
  and on disk when `cache_dir` is given, like `/var/lib/cni/results`) because DEL and
  CHECK need it and the runtime, not the plugin, is responsible for keeping it.
* A non-zero exit carries `{"code", "msg", "details"}` on stdout: `CNIError`.

A failed ADD is rolled back with a best-effort DEL (as containerd does) so a half-wired
sandbox never leaks an IP address or a veth.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

CNI_VERSION = "1.0.0"
DEFAULT_BIN_DIRS = ["/opt/cni/bin", "/usr/lib/cni", "/usr/libexec/cni"]

# Well-known error codes of the spec (1-99 reserved); 999 is ours for "no JSON error".
ERR_INCOMPATIBLE_VERSION = 1
ERR_UNSUPPORTED_FIELD = 2
ERR_UNKNOWN_CONTAINER = 3
ERR_INVALID_ENV = 4
ERR_IO = 5
ERR_DECODE = 6
ERR_INVALID_CONFIG = 7
ERR_TRY_LATER = 11
ERR_RUNTIME = 999


class CNIError(Exception):
    """A plugin failure as the spec reports it: a numeric `code`, `msg` and optional `details`."""

    def __init__(self, code: int, msg: str, details: str = "", *, plugin: str = "", command: str = "") -> None:
        self.code = code
        self.msg = msg
        self.details = details
        self.plugin = plugin
        self.command = command
        where = f"{plugin} {command}: " if plugin else ""
        super().__init__(f"{where}[{code}] {msg}" + (f" ({details})" if details else ""))

    @classmethod
    def from_output(cls, stdout: bytes, stderr: bytes, returncode: int, *, plugin: str = "",
                    command: str = "") -> CNIError:
        """Map a failed plugin's output to an error; falls back to stderr when stdout is no JSON error."""
        try:
            doc = json.loads(stdout or b"{}")
        except ValueError:
            doc = {}
        if isinstance(doc, dict) and "code" in doc:
            return cls(int(doc.get("code") or ERR_RUNTIME), str(doc.get("msg", "")), str(doc.get("details", "")),
                       plugin=plugin, command=command)
        text = (stderr or stdout).decode(errors="replace").strip() or f"exit status {returncode}"
        return cls(ERR_RUNTIME, text, plugin=plugin, command=command)


@dataclass
class Interface:
    """An interface the plugins created; `sandbox` is the netns path when it lives in the pod."""

    name: str
    mac: str = ""
    sandbox: str = ""


@dataclass
class IPConfig:
    """One address: `address` in CIDR form, `interface` an index into `CNIResult.interfaces`."""

    address: str
    gateway: str = ""
    interface: int | None = None

    @property
    def ip(self) -> str:
        return self.address.split("/", 1)[0]


@dataclass
class Route:
    """A route installed in the sandbox (`gw` empty means the interface's default)."""

    dst: str
    gw: str = ""


@dataclass
class DNS:
    """DNS settings a plugin suggests; the kubelet's own resolv.conf policy wins."""

    nameservers: list[str] = field(default_factory=list)
    domain: str = ""
    search: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)


@dataclass
class CNIResult:
    """A parsed ADD result; `raw` is the exact JSON, passed on as `prevResult`."""

    cni_version: str
    interfaces: list[Interface]
    ips: list[IPConfig]
    routes: list[Route]
    dns: DNS
    raw: dict[str, Any]

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> CNIResult:
        dns = doc.get("dns") or {}
        return cls(
            cni_version=str(doc.get("cniVersion", "")),
            interfaces=[Interface(i.get("name", ""), i.get("mac", ""), i.get("sandbox", ""))
                        for i in doc.get("interfaces") or []],
            ips=[IPConfig(i["address"], i.get("gateway", ""), i.get("interface"))
                 for i in doc.get("ips") or []],
            routes=[Route(r["dst"], r.get("gw", "")) for r in doc.get("routes") or []],
            dns=DNS(list(dns.get("nameservers") or []), dns.get("domain", ""),
                    list(dns.get("search") or []), list(dns.get("options") or [])),
            raw=dict(doc),
        )

    def pod_ips(self) -> list[str]:
        """Addresses on interfaces inside the sandbox (all addresses when the plugin named none)."""
        out = []
        for ipc in self.ips:
            idx = ipc.interface
            if idx is not None and 0 <= idx < len(self.interfaces) and not self.interfaces[idx].sandbox:
                continue
            out.append(ipc.ip)
        return out

    def pod_ip(self) -> str:
        """The primary pod IP: the first IPv4 sandbox address, else the first address; '' if none."""
        ips = self.pod_ips()
        v4 = [ip for ip in ips if ":" not in ip]
        return (v4 or ips or [""])[0]


class NetworkPlugin:
    """Runs one CNI network configuration list (conflist) for containers.

    `bin_dirs` is `CNI_PATH`. `exec_netns` names a network namespace (as `ip netns` knows
    it) to run the plugins in: they create the host side of the wiring (bridge, veth,
    iptables) in their own namespace, so this is how a "node" that lives in a network
    namespace is simulated. `cache_dir` keeps ADD results across restarts.
    """

    def __init__(self, conf_list: dict[str, Any], bin_dirs: list[str] | None = None, *,
                 exec_netns: str | None = None, cache_dir: str | None = None,
                 timeout: float = 60.0) -> None:
        if not isinstance(conf_list.get("plugins"), list) or not conf_list["plugins"]:
            raise CNIError(ERR_INVALID_CONFIG, "network configuration list has no plugins")
        if not conf_list.get("name"):
            raise CNIError(ERR_INVALID_CONFIG, "network configuration list has no name")
        for p in conf_list["plugins"]:
            if not isinstance(p, dict) or not p.get("type"):
                raise CNIError(ERR_INVALID_CONFIG, f"plugin entry without type: {p!r}")
        self.conf_list = conf_list
        self.name: str = conf_list["name"]
        self.cni_version: str = conf_list.get("cniVersion", CNI_VERSION)
        self.bin_dirs = list(bin_dirs or DEFAULT_BIN_DIRS)
        self.exec_netns = exec_netns
        self.cache_dir = cache_dir
        self.timeout = timeout
        self._cache: dict[tuple[str, str], dict[str, Any]] = {}

    # -- public API -------------------------------------------------------------------------------

    async def add(self, container_id: str, netns_path: str, ifname: str = "eth0",
                  capability_args: dict[str, Any] | None = None,
                  cni_args: Mapping[str, str] | None = None) -> CNIResult:
        """ADD every plugin in order; returns the final result. Rolls back with DEL on failure."""
        prev: dict[str, Any] | None = None
        try:
            for plugin in self.conf_list["plugins"]:
                conf = self._plugin_config(plugin, capability_args, prev)
                out = await self._exec(plugin["type"], "ADD", conf, container_id, netns_path, ifname, cni_args)
                prev = out or prev  # a plugin may print nothing only if it changes nothing
        except BaseException:
            try:
                await self._run_del(container_id, netns_path, ifname, capability_args, prev, cni_args)
            except (CNIError, OSError) as e:
                log.warning("rollback DEL of %s/%s failed: %s", self.name, container_id, e)
            raise
        if prev is None:
            raise CNIError(ERR_RUNTIME, "no plugin returned a result", command="ADD")
        self._store(container_id, ifname, {"result": prev, "capabilityArgs": capability_args or {}})
        return CNIResult.from_dict(prev)

    async def delete(self, container_id: str, netns_path: str, ifname: str = "eth0",
                     capability_args: dict[str, Any] | None = None,
                     cni_args: Mapping[str, str] | None = None) -> None:
        """DEL every plugin in reverse order; idempotent (plugins must accept a repeated DEL).

        All plugins are attempted so one failure does not leak the others' resources; the
        first error is raised afterwards. `netns_path` may be '' when the sandbox is gone.
        """
        cached = self._load(container_id, ifname)
        caps = capability_args if capability_args is not None else (cached or {}).get("capabilityArgs")
        await self._run_del(container_id, netns_path, ifname, caps, (cached or {}).get("result"), cni_args)
        self._forget(container_id, ifname)

    async def check(self, container_id: str, netns_path: str, ifname: str = "eth0",
                    cni_args: Mapping[str, str] | None = None) -> None:
        """CHECK every plugin in order against the cached ADD result; raises CNIError when broken."""
        cached = self._load(container_id, ifname)
        if cached is None:
            raise CNIError(ERR_UNKNOWN_CONTAINER, f"no cached ADD result for {container_id}/{ifname}",
                           command="CHECK")
        for plugin in self.conf_list["plugins"]:
            conf = self._plugin_config(plugin, cached.get("capabilityArgs"), cached["result"])
            await self._exec(plugin["type"], "CHECK", conf, container_id, netns_path, ifname, cni_args)

    async def version(self, plugin_type: str) -> dict[str, Any]:
        """VERSION of one plugin: `{"cniVersion", "supportedVersions"}`."""
        out = await self._exec(plugin_type, "VERSION", {"cniVersion": self.cni_version}, "", "", "", None)
        return out or {}

    def cached_result(self, container_id: str, ifname: str = "eth0") -> CNIResult | None:
        """The ADD result kept for this attachment, if any."""
        cached = self._load(container_id, ifname)
        return CNIResult.from_dict(cached["result"]) if cached else None

    # -- internals --------------------------------------------------------------------------------

    async def _run_del(self, container_id: str, netns_path: str, ifname: str,
                       capability_args: dict[str, Any] | None, prev: dict[str, Any] | None,
                       cni_args: Mapping[str, str] | None) -> None:
        first: CNIError | None = None
        for plugin in reversed(self.conf_list["plugins"]):
            conf = self._plugin_config(plugin, capability_args, prev)
            try:
                await self._exec(plugin["type"], "DEL", conf, container_id, netns_path, ifname, cni_args)
            except CNIError as e:
                log.warning("CNI DEL %s failed: %s", plugin["type"], e)
                first = first or e
        if first is not None:
            raise first

    def _plugin_config(self, plugin: dict[str, Any], capability_args: dict[str, Any] | None,
                       prev: dict[str, Any] | None) -> dict[str, Any]:
        conf = dict(plugin)
        conf["name"] = self.name
        conf["cniVersion"] = self.cni_version
        caps = plugin.get("capabilities") or {}
        runtime = {k: v for k, v in (capability_args or {}).items() if caps.get(k)}
        conf.pop("runtimeConfig", None)
        if runtime:
            conf["runtimeConfig"] = runtime
        if prev is not None:
            conf["prevResult"] = prev
        return conf

    def find_plugin(self, plugin_type: str) -> str:
        """Path of the plugin executable, searched in `bin_dirs` like CNI_PATH."""
        if "/" in plugin_type or plugin_type in ("", ".", ".."):
            raise CNIError(ERR_INVALID_CONFIG, f"invalid plugin type {plugin_type!r}")
        for d in self.bin_dirs:
            path = os.path.join(d, plugin_type)
            if os.path.isfile(path) and os.access(path, os.X_OK):
                return path
        raise CNIError(ERR_INVALID_CONFIG, f"failed to find plugin {plugin_type!r} in path {self.bin_dirs}",
                       plugin=plugin_type)

    def _env(self, command: str, container_id: str, netns_path: str, ifname: str,
             cni_args: Mapping[str, str] | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
        env.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        env["CNI_COMMAND"] = command
        env["CNI_PATH"] = os.pathsep.join(self.bin_dirs)
        if command != "VERSION":
            env["CNI_CONTAINERID"] = container_id
            env["CNI_NETNS"] = netns_path
            env["CNI_IFNAME"] = ifname
        if cni_args:
            env["CNI_ARGS"] = ";".join(f"{k}={v}" for k, v in cni_args.items())
        return env

    async def _exec(self, plugin_type: str, command: str, conf: dict[str, Any], container_id: str,
                    netns_path: str, ifname: str, cni_args: Mapping[str, str] | None) -> dict[str, Any] | None:
        path = self.find_plugin(plugin_type)
        argv = ["ip", "netns", "exec", self.exec_netns, path] if self.exec_netns else [path]
        env = self._env(command, container_id, netns_path, ifname, cni_args)
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=env)
        try:
            stdout, stderr = await asyncio.wait_for(proc.communicate(json.dumps(conf).encode()), self.timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise CNIError(ERR_TRY_LATER, f"timed out after {self.timeout}s", plugin=plugin_type,
                           command=command) from None
        if proc.returncode != 0:
            raise CNIError.from_output(stdout, stderr, proc.returncode or 0, plugin=plugin_type, command=command)
        if stderr.strip():
            log.debug("CNI %s %s stderr: %s", plugin_type, command, stderr.decode(errors="replace").strip())
        if not stdout.strip():
            return None
        try:
            out = json.loads(stdout)
        except ValueError as e:
            raise CNIError(ERR_DECODE, f"invalid result JSON: {e}", plugin=plugin_type, command=command) from e
        return out if isinstance(out, dict) else None

    # -- result cache (the runtime's job in CNI) -------------------------------------------------

    def _cache_path(self, container_id: str, ifname: str) -> str | None:
        if not self.cache_dir:
            return None
        return os.path.join(self.cache_dir, f"{self.name}-{container_id}-{ifname}.json")

    def _store(self, container_id: str, ifname: str, entry: dict[str, Any]) -> None:
        self._cache[(container_id, ifname)] = entry
        path = self._cache_path(container_id, ifname)
        if path:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = path + ".tmp"
            with open(tmp, "w") as f:
                json.dump(entry, f)
            os.replace(tmp, path)

    def _load(self, container_id: str, ifname: str) -> dict[str, Any] | None:
        entry = self._cache.get((container_id, ifname))
        path = self._cache_path(container_id, ifname)
        if entry is None and path and os.path.exists(path):
            with open(path) as f:
                entry = json.load(f)
            self._cache[(container_id, ifname)] = entry
        return entry

    def _forget(self, container_id: str, ifname: str) -> None:
        self._cache.pop((container_id, ifname), None)
        path = self._cache_path(container_id, ifname)
        if path and os.path.exists(path):
            os.unlink(path)
