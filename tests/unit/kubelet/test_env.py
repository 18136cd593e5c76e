"""Container environment: Kubernetes' order, $(VAR) expansion, references and their errors."""

from __future__ import annotations

from typing import Any

import pytest

from kubeling.kubelet.env import EnvError, expand, expand_command, resolve_env, service_env

from .fakes import FakeClient


@pytest.mark.parametrize(("text", "env", "want"), [
    ("$(A)", {"A": "x"}, "x"),
    ("pre-$(A)-post", {"A": "x"}, "pre-x-post"),
    ("$(UNDEF)", {}, "$(UNDEF)"),
    ("$$(A)", {"A": "x"}, "$(A)"),
    ("$$$(A)", {"A": "x"}, "$x"),
    ("$$", {}, "$"),
    ("$", {}, "$"),
    ("$(A", {"A": "x"}, "$(A"),
    ("$A", {"A": "x"}, "$A"),
    ("$(A)$(B)", {"A": "1", "B": "2"}, "12"),
    ("$()", {}, "$()"),
    ("a$", {}, "a$"),
])
def test_expand(text: str, env: dict[str, str], want: str) -> None:
    assert expand(text, env) == want


def test_expand_command() -> None:
    c = {"command": ["sh", "-c", "echo $(MSG)"], "args": ["$(PORT)", "$$(PORT)"]}
    assert expand_command(c, {"MSG": "hi", "PORT": "80"}) == ["sh", "-c", "echo hi", "80", "$(PORT)"]


POD: dict[str, Any] = {
    "metadata": {"name": "web-1", "namespace": "default", "uid": "u-1",
                 "labels": {"app": "web", "tier": "fe"}, "annotations": {"note": "hello"}},
    "spec": {"nodeName": "n1", "serviceAccountName": "sa"},
}


async def _env(container: dict[str, Any], client: FakeClient | None = None, **kw: Any) -> dict[str, str]:
    out = await resolve_env(client or FakeClient(), POD, container, pod_ip="127.42.0.7", node_name="n1",
                            host_ip="10.0.0.1", **kw)
    return dict(out)


def _field(path: str) -> dict[str, Any]:
    return {"name": "V", "valueFrom": {"fieldRef": {"fieldPath": path}}}


@pytest.mark.parametrize(("path", "want"), [
    ("metadata.name", "web-1"),
    ("metadata.namespace", "default"),
    ("metadata.uid", "u-1"),
    ("metadata.labels['app']", "web"),
    ("metadata.annotations['note']", "hello"),
    ("metadata.labels", 'app="web"\ntier="fe"'),
    ("spec.nodeName", "n1"),
    ("spec.serviceAccountName", "sa"),
    ("status.podIP", "127.42.0.7"),
    ("status.podIPs", "127.42.0.7"),
    ("status.hostIP", "10.0.0.1"),
    ("status.hostIPs", "10.0.0.1"),
])
async def test_field_ref(path: str, want: str) -> None:
    assert (await _env({"env": [_field(path)]}))["V"] == want


async def test_field_ref_unsupported() -> None:
    with pytest.raises(EnvError, match="unsupported fieldPath"):
        await _env({"env": [_field("spec.bogus")]})


@pytest.mark.parametrize(("resources", "resource", "divisor", "want"), [
    ({"limits": {"cpu": "250m"}}, "limits.cpu", None, "1"),
    ({"limits": {"cpu": "250m"}}, "limits.cpu", "1m", "250"),
    ({"limits": {"cpu": "2"}}, "limits.cpu", None, "2"),
    ({"limits": {"memory": "64Mi"}}, "limits.memory", "1Mi", "64"),
    ({"limits": {"memory": "64Mi"}}, "limits.memory", None, str(64 * 1024 * 1024)),
    ({"requests": {"memory": "1G"}}, "requests.memory", "1Mi", "954"),
    ({}, "limits.cpu", None, "4"),  # defaults to node allocatable
    ({}, "limits.memory", "1Gi", "8"),
])
async def test_resource_field_ref(resources: dict[str, Any], resource: str, divisor: str | None, want: str) -> None:
    ref: dict[str, Any] = {"resource": resource}
    if divisor:
        ref["divisor"] = divisor
    c = {"name": "app", "resources": resources, "env": [{"name": "V", "valueFrom": {"resourceFieldRef": ref}}]}
    env = await _env(c, node_allocatable={"cpu": "4", "memory": "8Gi"})
    assert env["V"] == want


async def test_value_expansion_uses_earlier_vars_only() -> None:
    env = await _env({"env": [
        {"name": "A", "value": "a"},
        {"name": "B", "value": "$(A)-$(C)"},
        {"name": "C", "value": "c"},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "URL", "value": "http://$(POD_IP):8080"},
    ]})
    assert env["B"] == "a-$(C)"
    assert env["URL"] == "http://127.42.0.7:8080"


async def test_config_refs_and_env_from() -> None:
    client = FakeClient()
    client.configmap("cfg", {"mode": "prod", "bad key": "x", "LEVEL": "3"})
    client.secret("sec", {"password": "s3cret"})
    env = await _env({
        "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"},
                    {"secretRef": {"name": "sec"}},
                    {"configMapRef": {"name": "absent", "optional": True}}],
        "env": [
            {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}}},
            {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "nope", "optional": True}}},
            {"name": "OPT2", "valueFrom": {"configMapKeyRef": {"name": "gone", "key": "k", "optional": True}}},
            {"name": "LEVEL", "value": "$(CFG_LEVEL)!"},
        ]}, client)
    assert env["CFG_mode"] == "prod" and env["CFG_LEVEL"] == "3" and "CFG_bad key" not in env
    assert env["password"] == "s3cret" and env["PW"] == "s3cret" and env["MODE"] == "prod"
    assert "OPT" not in env and "OPT2" not in env
    assert env["LEVEL"] == "3!"


@pytest.mark.parametrize(("container", "message"), [
    ({"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "x", "key": "k"}}}]},
     'configmap "x" not found'),
    ({"env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}]},
     "couldn't find key k in ConfigMap default/cfg"),
    ({"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "k"}}}]},
     "couldn't find key k in Secret default/sec"),
    ({"envFrom": [{"secretRef": {"name": "missing"}}]}, 'secret "missing" not found'),
])
async def test_missing_references(container: dict[str, Any], message: str) -> None:
    client = FakeClient()
    client.configmap("cfg", {"a": "1"})
    client.secret("sec", {"a": "1"})
    with pytest.raises(EnvError) as exc:
        await _env(container, client)
    assert str(exc.value) == message


SERVICES = [
    {"metadata": {"name": "kubernetes", "namespace": "default"},
     "spec": {"clusterIP": "10.43.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]}},
    {"metadata": {"name": "redis-primary", "namespace": "demo"},
     "spec": {"clusterIP": "10.43.0.11", "ports": [{"port": 6379, "protocol": "TCP"},
                                                   {"name": "metrics", "port": 9121, "protocol": "TCP"}]}},
    {"metadata": {"name": "headless", "namespace": "demo"}, "spec": {"clusterIP": "None", "ports": [{"port": 80}]}},
    {"metadata": {"name": "other", "namespace": "elsewhere"}, "spec": {"clusterIP": "10.43.0.12", "ports": [{"port": 80}]}},
]


def test_service_env() -> None:
    env = service_env(SERVICES, "demo")
    assert env["KUBERNETES_SERVICE_HOST"] == "10.43.0.1"
    assert env["KUBERNETES_SERVICE_PORT"] == "443"
    assert env["KUBERNETES_SERVICE_PORT_HTTPS"] == "443"
    assert env["KUBERNETES_PORT"] == "tcp://10.43.0.1:443"
    assert env["KUBERNETES_PORT_443_TCP_ADDR"] == "10.43.0.1"
    assert env["REDIS_PRIMARY_SERVICE_HOST"] == "10.43.0.11"
    assert env["REDIS_PRIMARY_SERVICE_PORT"] == "6379"
    assert env["REDIS_PRIMARY_SERVICE_PORT_METRICS"] == "9121"
    assert env["REDIS_PRIMARY_PORT"] == "tcp://10.43.0.11:6379"
    assert env["REDIS_PRIMARY_PORT_9121_TCP"] == "tcp://10.43.0.11:9121"
    assert env["REDIS_PRIMARY_PORT_6379_TCP_PROTO"] == "tcp"
    assert env["REDIS_PRIMARY_PORT_6379_TCP_PORT"] == "6379"
    assert not any(k.startswith(("HEADLESS_", "OTHER_")) for k in env)
    links_off = service_env(SERVICES, "demo", enable_service_links=False)
    assert set(links_off) == {k for k in env if k.startswith("KUBERNETES_")}


async def test_service_env_first_and_overridable() -> None:
    svc = service_env(SERVICES, "default")
    out = await resolve_env(FakeClient(), POD, {"env": [
        {"name": "KUBERNETES_SERVICE_PORT", "value": "1"},
        {"name": "API", "value": "$(KUBERNETES_SERVICE_HOST):$(KUBERNETES_SERVICE_PORT)"}]},
        pod_ip="", node_name="n1", host_ip="", service_env=svc)
    names = [k for k, _ in out]
    assert names[0].startswith("KUBERNETES_") and names.count("KUBERNETES_SERVICE_PORT") == 1
    assert dict(out)["API"] == "10.43.0.1:1"
