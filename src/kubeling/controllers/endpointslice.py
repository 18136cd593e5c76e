"""The EndpointSlice controller (pkg/controller/endpointslice): the scalable form of Endpoints.

Why: proxies, DNS and `kubectl describe svc` (1.31+) read EndpointSlices, and
unlike Endpoints they carry per-endpoint conditions, so a terminating pod
can stay visible (`terminating: true`, `serving` per its readiness) while it
drains instead of vanishing. For every Service with a selector the matching
pods with an IP (not finished) become endpoints; `ready` is
publishNotReadyAddresses or (Ready and not terminating). Service ports are
resolved per pod, so pods whose named targetPort resolves differently (or not
at all) land in different slices, one port set per slice, at most 100
endpoints each. Slices carry `kubernetes.io/service-name`, the managed-by
label and an ownerReference to the Service; a Service without endpoints gets
one empty placeholder slice, as in Kubernetes.

The informer cache lags our own writes; writing again from a stale cache
would create duplicate slices, so after a write the controller remembers
what it expects to see (Kubernetes' endpointSliceTracker) and requeues the
Service until the cache has caught up.
"""

from __future__ import annotations

import logging
from typing import Any

from kubeling.api.errors import StatusError
from kubeling.client import resources, split_key
from kubeling.controllers.base import Controller, owner_reference
from kubeling.controllers.endpoints import (
    ServiceMapper,
    find_port,
    pod_finished,
    pod_hostname,
    pod_ip,
    pod_ready,
    pod_terminating,
    selector_of,
    service_labels,
    target_ref,
)

Obj = dict[str, Any]
log = logging.getLogger(__name__)

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
MAX_ENDPOINTS_PER_SLICE = 100
STALE_RETRY = 0.05


def slice_ports(svc: Obj, pod: Obj) -> list[Obj]:
    out: list[Obj] = []
    for svc_port in (svc.get("spec") or {}).get("ports") or []:
        number = find_port(pod, svc_port)
        if number is None:
            continue
        port: Obj = {"name": svc_port.get("name") or "", "port": number, "protocol": svc_port.get("protocol") or "TCP"}
        if svc_port.get("appProtocol"):
            port["appProtocol"] = svc_port["appProtocol"]
        out.append(port)
    return sorted(out, key=lambda p: (p["name"], p["port"], p["protocol"]))


def endpoint_for(svc: Obj, pod: Obj) -> Obj:
    serving = pod_ready(pod)
    terminating = pod_terminating(pod)
    ready = bool((svc.get("spec") or {}).get("publishNotReadyAddresses")) or (serving and not terminating)
    ep: Obj = {"addresses": [pod_ip(pod)],
               "conditions": {"ready": ready, "serving": serving, "terminating": terminating}}
    if pod_hostname(svc, pod):
        ep["hostname"] = pod_hostname(svc, pod)
    ep["targetRef"] = target_ref(pod)
    if (pod.get("spec") or {}).get("nodeName"):
        ep["nodeName"] = pod["spec"]["nodeName"]
    return ep


def desired_groups(svc: Obj, pods: list[Obj]) -> dict[str, tuple[list[Obj], list[Obj]]]:
    """Port-set key → (ports, endpoints sorted by address)."""
    groups: dict[str, tuple[list[Obj], list[Obj]]] = {}
    for pod in pods:
        if not pod_ip(pod) or pod_finished(pod):
            continue
        ports = slice_ports(svc, pod)
        if not ports and (svc.get("spec") or {}).get("ports"):
            continue
        groups.setdefault(_port_key(ports), (ports, []))[1].append(endpoint_for(svc, pod))
    for _, endpoints in groups.values():
        endpoints.sort(key=lambda e: (e["addresses"][0], e["targetRef"]["uid"]))
    return groups


def _port_key(ports: list[Obj]) -> str:
    return ",".join(f"{p['name']}/{p['port']}/{p['protocol']}/{p.get('appProtocol', '')}" for p in ports)


class EndpointSliceController(Controller):
    """Keeps the EndpointSlices of every selector Service (kube-controller-manager's "endpointslice")."""

    NAME = "endpointslice"
    WORKERS = 2

    def setup(self) -> None:
        self.mapper = ServiceMapper(self)
        self.services = self.mapper.services
        self.slices = self.watch(resources.ENDPOINTSLICES, on_add=self._slice_changed,
                                 on_update=lambda _o, n: self._slice_changed(n), on_delete=self._slice_changed)
        # service key → {slice name: resourceVersion we wrote, or None when we deleted it}
        self.expected: dict[str, dict[str, int | None]] = {}

    def _slice_changed(self, slc: Obj) -> None:
        labels = slc["metadata"].get("labels") or {}
        if labels.get(MANAGED_BY_LABEL) == CONTROLLER_NAME and labels.get(SERVICE_NAME_LABEL):
            self.enqueue_key(f"{slc['metadata'].get('namespace')}/{labels[SERVICE_NAME_LABEL]}")

    def owned_slices(self, namespace: str, name: str) -> list[Obj]:
        return sorted((s for s in self.slices.indexer.by_index("namespace", namespace)
                       if (s["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL) == name
                       and (s["metadata"].get("labels") or {}).get(MANAGED_BY_LABEL) == CONTROLLER_NAME),
                      key=lambda s: s["metadata"]["name"])

    def _stale(self, key: str, namespace: str) -> bool:
        expected = self.expected.get(key)
        if not expected:
            return False
        for name, rv in expected.items():
            cached = self.slices.get(f"{namespace}/{name}")
            if rv is None and cached is not None:
                return True
            if rv is not None and (cached is None or int(cached["metadata"].get("resourceVersion") or 0) < rv):
                return True
        self.expected.pop(key, None)
        return False

    async def reconcile(self, key: str) -> None:
        namespace, name = split_key(key)
        namespace = namespace or ""
        if self._stale(key, namespace):
            self.enqueue_after(key, STALE_RETRY)
            return
        svc = self.services.get(key)
        existing = self.owned_slices(namespace, name)
        written: dict[str, int | None] = {}
        try:
            if svc is None or not selector_of(svc) or svc["metadata"].get("deletionTimestamp"):
                for slc in existing:  # the garbage collector would too (ownerReference)
                    await self._delete(slc, written)
                return
            if (svc.get("spec") or {}).get("type") == "ExternalName":
                return  # no endpoints for ExternalName (kubernetes/kubernetes#105986)
            await self._sync(svc, existing, written)
        finally:
            if written:
                self.expected[key] = written

    async def _sync(self, svc: Obj, existing: list[Obj], written: dict[str, int | None]) -> None:
        groups = desired_groups(svc, self.mapper.selected_pods(svc))
        if not groups:
            groups = {"": ([], [])}  # the placeholder slice
        by_key: dict[str, list[Obj]] = {}
        for slc in existing:
            ports = sorted(slc.get("ports") or [], key=lambda p: (p.get("name", ""), p.get("port"), p.get("protocol")))
            by_key.setdefault(_port_key(ports), []).append(slc)
        leftovers: list[Obj] = []
        for port_key, slices in by_key.items():
            if port_key not in groups:
                leftovers.extend(slices)
        for port_key, (ports, endpoints) in sorted(groups.items()):
            reuse = by_key.get(port_key, [])
            chunks = [endpoints[i:i + MAX_ENDPOINTS_PER_SLICE]
                      for i in range(0, len(endpoints), MAX_ENDPOINTS_PER_SLICE)] or [[]]
            for i, chunk in enumerate(chunks):
                current = reuse[i] if i < len(reuse) else (leftovers.pop() if leftovers else None)
                await self._write(svc, current, ports, chunk, written)
            leftovers.extend(reuse[len(chunks):])
        for slc in leftovers:
            await self._delete(slc, written)

    def _desired(self, svc: Obj, ports: list[Obj], endpoints: list[Obj]) -> Obj:
        meta = svc["metadata"]
        labels = {**service_labels(svc), SERVICE_NAME_LABEL: meta["name"], MANAGED_BY_LABEL: CONTROLLER_NAME}
        return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"generateName": f"{meta['name']}-", "namespace": meta["namespace"], "labels": labels,
                             "ownerReferences": [owner_reference({"apiVersion": "v1", "kind": "Service", **svc})]},
                "addressType": "IPv4", "endpoints": endpoints, "ports": ports}

    async def _write(self, svc: Obj, current: Obj | None, ports: list[Obj], endpoints: list[Obj],
                     written: dict[str, int | None]) -> None:
        desired = self._desired(svc, ports, endpoints)
        if current is None:
            try:
                out = await self.client.create(resources.ENDPOINTSLICES, desired)
            except StatusError as err:
                if err.code in (403, 404):  # namespace terminating / gone
                    return
                raise
            written[out["metadata"]["name"]] = int(out["metadata"]["resourceVersion"])
            return
        cmeta = current["metadata"]
        if (current.get("endpoints") or []) == endpoints and (current.get("ports") or []) == ports and \
                (cmeta.get("labels") or {}) == desired["metadata"]["labels"] and \
                cmeta.get("ownerReferences") == desired["metadata"]["ownerReferences"]:
            return
        meta = {**cmeta, "labels": desired["metadata"]["labels"],
                "ownerReferences": desired["metadata"]["ownerReferences"]}
        out = await self.client.update(resources.ENDPOINTSLICES, {**desired, "metadata": meta})
        written[out["metadata"]["name"]] = int(out["metadata"]["resourceVersion"])

    async def _delete(self, slc: Obj, written: dict[str, int | None]) -> None:
        meta = slc["metadata"]
        try:
            await self.client.delete(resources.ENDPOINTSLICES, meta["name"], namespace=meta["namespace"])
        except StatusError as err:
            if err.code != 404:
                raise
        written[meta["name"]] = None
