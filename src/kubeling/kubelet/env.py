"""Container environment and `$(VAR)` expansion, as the Kubernetes kubelet computes them.

Why a module of its own: workloads depend on the exact rules of
`kubelet_pods.go:makeEnvironmentVariables` — which source wins, which
references expand, which missing references are fatal — and on the exact
error text, because a non-optional missing ConfigMap or key must surface as
`CreateContainerConfigError` with Kubernetes' message. The order is:

1. Service environment (`<SVC>_SERVICE_HOST`, docker-link `<SVC>_PORT_...`) for the
   services of the pod's namespace (when `enableServiceLinks`) plus the master
   service `kubernetes` from `default`. These are visible to `$(VAR)` expansion
   but any `envFrom`/`env` entry of the same name overrides them.
2. `envFrom` (ConfigMap/Secret, optional prefix), in order.
3. `env`, in order; `value` is expanded against everything defined before it.

Expansion follows `third_party/forked/golang/expansion`: `$$` is a literal `$`,
`$(NAME)` is replaced when NAME is defined, and is left verbatim otherwise.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping
from typing import Any, Protocol

from kubeling.api.errors import StatusError
from kubeling.api.quantity import parse_quantity
from kubeling.client import resources

Obj = dict[str, Any]

_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_SUBSCRIPT = re.compile(r"^(metadata\.(?:labels|annotations))\['(.*)'\]$")


class EnvError(Exception):
    """A container's environment cannot be built; the kubelet reports CreateContainerConfigError."""


class ObjectGetter(Protocol):
    """The slice of `KubeClient` this module needs (a fake with `get` is enough in tests)."""

    async def get(self, res: Any, name: str, *, namespace: str | None = None) -> Obj: ...


# -- $(VAR) expansion -------------------------------------------------------------------------------


def expand(s: str, env: Mapping[str, str], *extra: Mapping[str, str]) -> str:
    """Expand `$(VAR)` in `s` from `env` (then `extra` mappings); `$$` escapes; undefined stays `$(VAR)`."""
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    n = len(s)
    while cursor < n:
        if s[cursor] == "$" and cursor + 1 < n:
            out.append(s[checkpoint:cursor])
            nxt = s[cursor + 1]
            if nxt == "$":
                out.append("$")
                advance = 1
            elif nxt == "(":
                close = s.find(")", cursor + 2)
                if close == -1:
                    out.append("$(")
                    advance = 1
                else:
                    name = s[cursor + 2:close]
                    out.append(_lookup(name, env, extra))
                    advance = close - cursor
            else:
                out.append("$" + nxt)
                advance = 1
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    return "".join(out) + s[checkpoint:]


def _lookup(name: str, env: Mapping[str, str], extra: tuple[Mapping[str, str], ...]) -> str:
    for mapping in (env, *extra):
        if name in mapping:
            return mapping[name]
    return f"$({name})"


def expand_command(container: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
    """The argv Kubernetes runs: `command` + `args`, each element `$(VAR)`-expanded."""
    return [expand(str(a), env) for a in (container.get("command") or [])] + \
        [expand(str(a), env) for a in (container.get("args") or [])]


# -- service links ----------------------------------------------------------------------------------


def _env_name(name: str) -> str:
    return name.upper().replace("-", "_")


def _service_vars(svc: Obj) -> dict[str, str]:
    spec = svc.get("spec") or {}
    ip = spec.get("clusterIP") or ""
    ports = spec.get("ports") or []
    name = _env_name(svc["metadata"]["name"])
    out: dict[str, str] = {f"{name}_SERVICE_HOST": ip}
    if ports:
        out[f"{name}_SERVICE_PORT"] = str(ports[0].get("port"))
    for p in ports:
        if p.get("name"):
            out[f"{name}_SERVICE_PORT_{_env_name(p['name'])}"] = str(p.get("port"))
    host = f"[{ip}]" if ":" in ip else ip
    for i, p in enumerate(ports):
        proto = str(p.get("protocol") or "TCP")
        port = str(p.get("port"))
        url = f"{proto.lower()}://{host}:{port}"
        prefix = f"{name}_PORT_{port}_{proto.upper()}"
        if i == 0:
            out[f"{name}_PORT"] = url
        out[prefix] = url
        out[f"{prefix}_PROTO"] = proto.lower()
        out[f"{prefix}_PORT"] = port
        out[f"{prefix}_ADDR"] = ip
    return out


def service_env(services: list[Obj], namespace: str, *, enable_service_links: bool = True) -> dict[str, str]:
    """Kubernetes' service environment for a pod in `namespace` (kubelet getServiceEnvVarMap + FromServices).

    `services` may hold every Service the kubelet knows; only those with a ClusterIP
    count: the master service `default/kubernetes` always, the pod's own namespace's
    services when service links are enabled (a same-named one there takes precedence).
    """
    chosen: dict[str, Obj] = {}
    for svc in services:
        meta = svc.get("metadata") or {}
        ip = (svc.get("spec") or {}).get("clusterIP") or ""
        if ip in ("", "None"):
            continue
        name, ns = meta.get("name", ""), meta.get("namespace", "")
        if ns == "default" and name == "kubernetes":
            chosen.setdefault(name, svc)
        elif ns == namespace and enable_service_links:
            chosen[name] = svc
    out: dict[str, str] = {}
    for name in sorted(chosen):
        out.update(_service_vars(chosen[name]))
    return out


# -- field and resource references ------------------------------------------------------------------


def _format_map(m: Mapping[str, str]) -> str:
    return "\n".join(f'{k}="{v}"' for k, v in sorted(m.items()))


def field_ref_value(pod: Obj, field_path: str, *, pod_ip: str = "", host_ip: str = "",
                    node_name: str = "", pod_ips: list[str] | None = None,
                    host_ips: list[str] | None = None) -> str:
    """The value of a downward-API `fieldRef` (env or downwardAPI volume); EnvError when unsupported."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    m = _SUBSCRIPT.match(field_path)
    if m:
        return str((meta.get(m.group(1).split(".")[1]) or {}).get(m.group(2), ""))
    simple: dict[str, Any] = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName") or node_name,
        "spec.serviceAccountName": spec.get("serviceAccountName") or "",
        "status.podIP": pod_ip,
        "status.podIPs": ",".join(pod_ips if pod_ips is not None else ([pod_ip] if pod_ip else [])),
        "status.hostIP": host_ip,
        "status.hostIPs": ",".join(host_ips if host_ips is not None else ([host_ip] if host_ip else [])),
    }
    if field_path in simple:
        return str(simple[field_path])
    if field_path in ("metadata.labels", "metadata.annotations"):
        return _format_map(meta.get(field_path.split(".")[1]) or {})
    raise EnvError(f"unsupported fieldPath: {field_path}")


def resource_field_value(container: Mapping[str, Any], ref: Mapping[str, Any],
                         node_allocatable: Mapping[str, Any] | None = None) -> str:
    """A `resourceFieldRef` value (ceil(quantity / divisor)); limits default to node allocatable."""
    resource = str(ref.get("resource", ""))
    divisor = parse_quantity(ref.get("divisor") or "1")
    if divisor <= 0:
        divisor = parse_quantity("1")
    res = container.get("resources") or {}
    kind, _, name = resource.partition(".")
    if kind not in ("limits", "requests") or name not in ("cpu", "memory", "ephemeral-storage") \
            and not name.startswith("hugepages-"):
        raise EnvError(f"unsupported container resource : {resource}")
    raw = (res.get(kind) or {}).get(name)
    if raw is None and kind == "limits":
        raw = (node_allocatable or {}).get(name)
    value = parse_quantity(raw) if raw is not None else parse_quantity("0")
    if name == "cpu":
        # convertResourceCPUToString: millis / divisor millis, rounded up.
        return str(math.ceil(math.ceil(value * 1000) / math.ceil(divisor * 1000)))
    return str(math.ceil(math.ceil(value) / math.ceil(divisor)))


def find_container(pod: Obj, name: str) -> Obj | None:
    """A container (regular, init or ephemeral) of `pod` by name."""
    spec = pod.get("spec") or {}
    for key in ("containers", "initContainers", "ephemeralContainers"):
        for c in spec.get(key) or []:
            if c.get("name") == name:
                return c
    return None


# -- ConfigMap / Secret lookups ---------------------------------------------------------------------


class _Sources:
    """Per-call cache of ConfigMaps and Secrets, with Kubernetes' not-found messages."""

    def __init__(self, client: ObjectGetter, namespace: str) -> None:
        self.client = client
        self.namespace = namespace
        self._cache: dict[tuple[str, str], Obj | None] = {}

    async def get(self, kind: str, name: str) -> Obj | None:
        key = (kind, name)
        if key not in self._cache:
            res = resources.CONFIGMAPS if kind == "configmap" else resources.SECRETS
            try:
                self._cache[key] = await self.client.get(res, name, namespace=self.namespace)
            except StatusError as err:
                if err.code != 404:
                    raise EnvError(f"couldn't get {kind} {self.namespace}/{name}: {err}") from err
                self._cache[key] = None
        return self._cache[key]

    async def data(self, kind: str, name: str, optional: bool) -> dict[str, str] | None:
        obj = await self.get(kind, name)
        if obj is None:
            if optional:
                return None
            raise EnvError(f'{kind} "{name}" not found')
        return object_data(kind, obj)


def object_data(kind: str, obj: Mapping[str, Any]) -> dict[str, str]:
    """String data of a ConfigMap (`data`) or Secret (`data` base64-decoded, plus `stringData`)."""
    if kind == "configmap":
        return {k: str(v) for k, v in (obj.get("data") or {}).items()}
    out = {k: base64.b64decode(v).decode("utf-8", "replace") for k, v in (obj.get("data") or {}).items()}
    out.update({k: str(v) for k, v in (obj.get("stringData") or {}).items()})
    return out


# -- the whole environment --------------------------------------------------------------------------


async def resolve_env(client: ObjectGetter, pod: Obj, container: Mapping[str, Any], *, pod_ip: str,
                      node_name: str, host_ip: str, service_env: dict[str, str] | None = None,
                      node_allocatable: Mapping[str, Any] | None = None,
                      pod_ips: list[str] | None = None) -> list[tuple[str, str]]:
    """The container's environment as ordered (name, value) pairs; EnvError on a fatal missing reference.

    Service variables come first (minus the ones `envFrom`/`env` redefine), then the
    container's own variables in Kubernetes' order, each name once at its last value.
    """
    ns = (pod.get("metadata") or {}).get("namespace") or "default"
    svc = dict(service_env or {})
    sources = _Sources(client, ns)
    tmp: dict[str, str] = {}

    for ef in container.get("envFrom") or []:
        prefix = ef.get("prefix") or ""
        for kind, key in (("configmap", "configMapRef"), ("secret", "secretRef")):
            ref = ef.get(key)
            if not ref:
                continue
            data = await sources.data(kind, ref.get("name", ""), bool(ref.get("optional")))
            for k, v in (data or {}).items():
                name = prefix + k
                if _ENV_NAME.match(name):  # invalid keys are skipped (Kubernetes emits an event)
                    tmp[name] = v

    for ev in container.get("env") or []:
        name = ev.get("name", "")
        value_from = ev.get("valueFrom")
        if not value_from:
            tmp[name] = expand(str(ev.get("value") or ""), tmp, svc)
            continue
        if "fieldRef" in value_from:
            tmp[name] = field_ref_value(pod, value_from["fieldRef"].get("fieldPath", ""), pod_ip=pod_ip,
                                        host_ip=host_ip, node_name=node_name, pod_ips=pod_ips)
        elif "resourceFieldRef" in value_from:
            ref = value_from["resourceFieldRef"]
            target = container
            if ref.get("containerName"):
                target = find_container(pod, ref["containerName"]) or container
            tmp[name] = resource_field_value(target, ref, node_allocatable)
        else:
            for kind, key, label in (("configmap", "configMapKeyRef", "ConfigMap"),
                                     ("secret", "secretKeyRef", "Secret")):
                ref = value_from.get(key)
                if not ref:
                    continue
                optional = bool(ref.get("optional"))
                data = await sources.data(kind, ref.get("name", ""), optional)
                if data is None:
                    break
                if ref.get("key") not in data:
                    if optional:
                        break
                    raise EnvError(f"couldn't find key {ref.get('key')} in {label} {ns}/{ref.get('name')}")
                tmp[name] = data[ref["key"]]
                break

    out = [(k, v) for k, v in svc.items() if k not in tmp]
    out.extend(tmp.items())
    return out
