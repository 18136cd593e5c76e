"""The `kubernetes` Service in `default`: how pods find the API server.

Every Kubernetes cluster has it (pkg/controlplane/controller/kubernetesservice):
the first address of the service range, port 443 (`https`) → the API server,
with an Endpoints and an EndpointSlice naming the API server's advertise
address. Clients in pods (client-go's in-cluster config, the
KUBERNETES_SERVICE_HOST variables) depend on it. The Service has no selector,
so the endpoints controllers leave it to us; we reconcile it on every start
so a changed port or address is picked up.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from kubeling.api import errors
from kubeling.api.registry import Registry
from kubeling.apiserver.rest import ResourceStore, WriteOptions

Obj = dict[str, Any]
log = logging.getLogger(__name__)

MANAGER = WriteOptions(field_manager="kube-apiserver")
NAMESPACE = "default"
NAME = "kubernetes"


def split_advertise_address(address: str) -> tuple[str, int]:
    """"127.0.0.1:6443" → ("127.0.0.1", 6443); a host name becomes 127.0.0.1 (endpoints need an IP)."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        host = "127.0.0.1"
    return host, int(port or 6443)


def desired_objects(cluster_ip: str, host: str, port: int) -> tuple[Obj, Obj, Obj]:
    """(Service, Endpoints, EndpointSlice) as kube-apiserver writes them."""
    service = {"metadata": {"name": NAME, "namespace": NAMESPACE,
                            "labels": {"component": "apiserver", "provider": "kubernetes"}},
               "spec": {"type": "ClusterIP", "clusterIP": cluster_ip, "sessionAffinity": "None",
                        "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]}}
    endpoints = {"metadata": {"name": NAME, "namespace": NAMESPACE,
                              "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
                 "subsets": [{"addresses": [{"ip": host}],
                              "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]}
    family = "IPv6" if ipaddress.ip_address(host).version == 6 else "IPv4"
    slice_ = {"metadata": {"name": NAME, "namespace": NAMESPACE,
                           "labels": {"kubernetes.io/service-name": NAME}},
              "addressType": family,
              "endpoints": [{"addresses": [host], "conditions": {"ready": True}}],
              "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}
    return service, endpoints, slice_


async def ensure_kubernetes_service(rest: ResourceStore, registry: Registry, cluster_ip: str,
                                    advertise_address: str) -> None:
    """Create or correct the `kubernetes` Service, Endpoints and EndpointSlice."""
    host, port = split_advertise_address(advertise_address)
    service, endpoints, slice_ = desired_objects(cluster_ip, host, port)

    async def svc_mutate(current: Obj | None) -> Obj:
        if current is None:
            return service
        current.setdefault("spec", {})["ports"] = service["spec"]["ports"]
        return current

    def replace(fields: tuple[str, ...], desired: Obj):  # noqa: ANN202
        async def mutate(current: Obj | None) -> Obj:
            if current is None:
                return desired
            for key in fields:
                current[key] = desired[key]
            current["metadata"].setdefault("labels", {}).update(desired["metadata"]["labels"])
            return current
        return mutate

    writes = (("services", "", svc_mutate),
              ("endpoints", "", replace(("subsets",), endpoints)),
              ("endpointslices", "discovery.k8s.io", replace(("addressType", "endpoints", "ports"), slice_)))
    for resource, group, mutate in writes:
        info = registry.get(group, "v1", resource)
        assert info is not None
        try:
            await rest.guaranteed_update(info, NAMESPACE, NAME, mutate, MANAGER, create_if_missing=True)
        except errors.StatusError as exc:
            log.error("cannot reconcile %s %s/%s: %s", resource, NAMESPACE, NAME, exc.message)
