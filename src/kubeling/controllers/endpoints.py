"""The Endpoints controller (pkg/controller/endpoint): which pods back a Service.

Why it exists next to the EndpointSlice controller: `kubectl describe svc`
up to 1.30 reads its "Endpoints:" line from the Endpoints object, and older
clients and proxies still read it. For every Service with a selector it
writes an Endpoints of the same name: the pods matching the selector that
have an IP, Ready ones as `addresses` and the others as `notReadyAddresses`
(all of them as addresses with publishNotReadyAddresses), each service port
resolved per pod — a named targetPort is looked up in that pod's container
ports, and a pod without it is left out for that port. Terminating pods are
left out (unless publishNotReadyAddresses), as are finished ones. Services
without a selector are user-managed and left alone. Kubernetes sets no
ownerReference on Endpoints; the object is removed when its Service goes.

The helpers here (readiness, port resolution, pod → services) are shared
with the EndpointSlice controller.
"""

from __future__ import annotations

import logging
from typing import Any

from kubeling.api.errors import StatusError
from kubeling.client import resources, split_key
from kubeling.controllers.base import Controller

Obj = dict[str, Any]
log = logging.getLogger(__name__)

HEADLESS_LABEL = "service.kubernetes.io/headless"


# ---- shared helpers --------------------------------------------------------------------


def pod_ready(pod: Obj) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def pod_terminating(pod: Obj) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def pod_finished(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def pod_ip(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("podIP") or "")


def selector_of(svc: Obj) -> dict[str, str]:
    return dict((svc.get("spec") or {}).get("selector") or {})


def selects(svc: Obj, pod: Obj) -> bool:
    """Whether a Service with a selector selects the pod (same namespace, every label pair present)."""
    sel = selector_of(svc)
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return bool(sel) and svc["metadata"].get("namespace") == pod["metadata"].get("namespace") and \
        all(labels.get(k) == v for k, v in sel.items())


def find_port(pod: Obj, svc_port: Obj) -> int | None:
    """The pod's port for a service port: a number as is, a name from the pod's container ports."""
    target = svc_port.get("targetPort")
    if target in (None, "", 0):
        return int(svc_port["port"])
    if isinstance(target, int) or str(target).isdigit():
        return int(target)
    protocol = svc_port.get("protocol") or "TCP"
    for container in (pod.get("spec") or {}).get("containers") or []:
        for port in container.get("ports") or []:
            if port.get("name") == target and (port.get("protocol") or "TCP") == protocol:
                return int(port["containerPort"])
    return None


def target_ref(pod: Obj) -> Obj:
    meta = pod["metadata"]
    return {"kind": "Pod", "namespace": meta["namespace"], "name": meta["name"], "uid": meta.get("uid", "")}


def pod_hostname(svc: Obj, pod: Obj) -> str:
    """A pod's hostname is published when its subdomain is the Service's name (StatefulSet pods)."""
    spec = pod.get("spec") or {}
    if spec.get("hostname") and spec.get("subdomain") == svc["metadata"]["name"]:
        return str(spec["hostname"])
    return ""


def service_labels(svc: Obj) -> dict[str, str]:
    """The Service's labels, plus the headless marker Kubernetes adds."""
    labels = dict((svc.get("metadata") or {}).get("labels") or {})
    if (svc.get("spec") or {}).get("clusterIP") == "None":
        labels[HEADLESS_LABEL] = ""
    return labels


class ServiceMapper:
    """Enqueues the Services selecting a pod when the pod changes (before and after the change)."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller
        self.services = controller.watch(resources.SERVICES, on_add=controller.enqueue,
                                         on_update=lambda _o, n: controller.enqueue(n),
                                         on_delete=controller.enqueue)
        self.pods = controller.watch(resources.PODS, on_add=self._pod, on_update=self._pod_update,
                                     on_delete=self._pod)

    def _pod(self, pod: Obj) -> None:
        for svc in self.services.indexer.by_index("namespace", pod["metadata"].get("namespace", "")):
            if selects(svc, pod):
                self.controller.enqueue(svc)

    def _pod_update(self, old: Obj, new: Obj) -> None:
        if old.get("metadata", {}).get("resourceVersion") == new.get("metadata", {}).get("resourceVersion"):
            return
        keys = {f"{s['metadata']['namespace']}/{s['metadata']['name']}"
                for s in self.services.indexer.by_index("namespace", new["metadata"].get("namespace", ""))
                if selects(s, old) or selects(s, new)}
        for key in keys:
            self.controller.enqueue_key(key)

    def selected_pods(self, svc: Obj) -> list[Obj]:
        return [p for p in self.pods.indexer.by_index("namespace", svc["metadata"]["namespace"])
                if selects(svc, p)]


# ---- the controller ----------------------------------------------------------------------


def desired_subsets(svc: Obj, pods: list[Obj]) -> list[Obj]:
    """Endpoints subsets as pkg/controller/endpoint builds and repacks them."""
    spec = svc.get("spec") or {}
    publish = bool(spec.get("publishNotReadyAddresses"))
    groups: dict[tuple[tuple[Any, ...], ...], dict[str, list[Obj]]] = {}
    for pod in pods:
        if not pod_ip(pod) or pod_finished(pod) or (pod_terminating(pod) and not publish):
            continue
        address: Obj = {"ip": pod_ip(pod)}
        if pod_hostname(svc, pod):
            address["hostname"] = pod_hostname(svc, pod)
        if (pod.get("spec") or {}).get("nodeName"):
            address["nodeName"] = pod["spec"]["nodeName"]
        address["targetRef"] = target_ref(pod)
        ports: list[Obj] = []
        for svc_port in spec.get("ports") or []:
            number = find_port(pod, svc_port)
            if number is None:
                continue
            port: Obj = {"port": number, "protocol": svc_port.get("protocol") or "TCP"}
            if svc_port.get("name"):
                port["name"] = svc_port["name"]
            if svc_port.get("appProtocol"):
                port["appProtocol"] = svc_port["appProtocol"]
            ports.append(port)
        if not ports and (spec.get("ports") or spec.get("clusterIP") != "None"):
            continue
        ports.sort(key=lambda p: (p.get("name", ""), p["port"], p["protocol"]))
        group = groups.setdefault(tuple(tuple(sorted(p.items())) for p in ports), {"addresses": [], "notReady": []})
        group["addresses" if publish or pod_ready(pod) else "notReady"].append(address)
    subsets: list[Obj] = []
    for port_key, group in sorted(groups.items()):
        subset: Obj = {}
        if group["addresses"]:
            subset["addresses"] = sorted(group["addresses"], key=lambda a: (a["ip"], a["targetRef"]["uid"]))
        if group["notReady"]:
            subset["notReadyAddresses"] = sorted(group["notReady"], key=lambda a: (a["ip"], a["targetRef"]["uid"]))
        if port_key:
            subset["ports"] = [dict(p) for p in port_key]
        subsets.append(subset)
    return subsets


class EndpointsController(Controller):
    """Keeps an Endpoints object per selector Service (kube-controller-manager's "endpoint")."""

    NAME = "endpoint"
    WORKERS = 2

    def setup(self) -> None:
        self.mapper = ServiceMapper(self)
        self.services = self.mapper.services
        self.endpoints = self.watch(resources.ENDPOINTS, on_update=lambda _o, n: self._endpoints_changed(n),
                                    on_delete=self._endpoints_changed)

    def _endpoints_changed(self, ep: Obj) -> None:
        key = f"{ep['metadata'].get('namespace')}/{ep['metadata'].get('name')}"
        if self.services.get(key) is not None:
            self.enqueue_key(key)

    async def reconcile(self, key: str) -> None:
        namespace, name = split_key(key)
        svc = self.services.get(key)
        current = self.endpoints.get(key)
        if svc is None:
            if current is not None:
                await self._delete(namespace or "", name)
            return
        if not selector_of(svc) or (svc.get("spec") or {}).get("type") == "ExternalName":
            return  # user-managed; ExternalName gets no endpoints (kubernetes/kubernetes#105986)
        subsets = desired_subsets(svc, self.mapper.selected_pods(svc))
        labels = service_labels(svc)
        if current is not None and (current.get("subsets") or []) == subsets and \
                (current["metadata"].get("labels") or {}) == labels:
            return
        desired: Obj = {"apiVersion": "v1", "kind": "Endpoints",
                        "metadata": {"name": name, "namespace": namespace, "labels": labels}}
        if subsets:
            desired["subsets"] = subsets
        if current is None:
            try:
                await self.client.create(resources.ENDPOINTS, desired)
                return
            except StatusError as err:
                if err.code == 403:  # namespace terminating
                    return
                if err.code != 409:
                    raise
                current = await self.client.get(resources.ENDPOINTS, name, namespace=namespace)
        meta = dict(current["metadata"])
        meta["labels"] = labels
        desired["metadata"] = meta
        await self.client.update(resources.ENDPOINTS, desired)

    async def _delete(self, namespace: str, name: str) -> None:
        try:
            await self.client.delete(resources.ENDPOINTS, name, namespace=namespace)
        except StatusError as err:
            if err.code != 404:
                raise
