"""Kubernetes objects for the DNS tests (wire dicts, as the informers deliver them)."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def service(name: str, ns: str = "default", *, cluster_ip: str | None = "127.43.0.20",
            ports: list[Obj] | None = None, type_: str = "ClusterIP", external_name: str | None = None,
            publish_not_ready: bool = False) -> Obj:
    spec: Obj = {"type": type_, "ports": ports or []}
    if cluster_ip is not None:
        spec["clusterIP"] = cluster_ip
        spec["clusterIPs"] = [cluster_ip]
    if external_name is not None:
        spec["externalName"] = external_name
    if publish_not_ready:
        spec["publishNotReadyAddresses"] = True
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": spec}


def endpoint(ip: str, *, hostname: str | None = None, ready: bool | None = True,
             terminating: bool = False) -> Obj:
    ep: Obj = {"addresses": [ip], "conditions": {}}
    if ready is not None:
        ep["conditions"]["ready"] = ready
    if terminating:
        ep["conditions"]["terminating"] = True
    if hostname:
        ep["hostname"] = hostname
    return ep


def endpoint_slice(svc: str, endpoints: list[Obj], ns: str = "default", *, name: str | None = None,
                   ports: list[Obj] | None = None) -> Obj:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name or f"{svc}-abc12", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4", "endpoints": endpoints, "ports": ports or []}


def pod(name: str, ip: str, ns: str = "default", *, hostname: str | None = None,
        subdomain: str | None = None, ready: bool = True) -> Obj:
    spec: Obj = {"containers": [{"name": "c", "image": "x"}]}
    if hostname:
        spec["hostname"] = hostname
    if subdomain:
        spec["subdomain"] = subdomain
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns}, "spec": spec,
            "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}
