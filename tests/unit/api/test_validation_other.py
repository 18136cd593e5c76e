"""Validation of Lease, EndpointSlice, Ingress, IngressClass, HPA, StorageClass, PriorityClass, CRD."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubeling.api.defaults import apply_defaults
from kubeling.api.registry import Registry
from kubeling.api.validation import validate

REG = Registry()


def _info(key: str, version: str | None = None) -> Any:
    return next(i for i in REG.all() if i.key == key and (version is None or i.version == version))


def causes(key: str, obj: dict[str, Any], old: dict[str, Any] | None = None) -> list[str]:
    """Default then validate, as the server does; "field: message" per cause."""
    info = _info(key)
    obj = copy.deepcopy(obj)
    meta = obj.setdefault("metadata", {})
    meta.setdefault("name", "x")
    if info.namespaced:
        meta.setdefault("namespace", "default")
    apply_defaults(info, obj)
    return [f"{c.field}: {c.message}" for c in validate(info, obj, old)]


def ingress_path(**backend: Any) -> dict[str, Any]:
    return {"spec": {"rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}]}}


HPA_REF = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}
P0 = "spec.rules[0].http.paths[0]"

CASES = [
    ("leases.coordination.k8s.io", "lease-valid", {"spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}}, []),
    ("leases.coordination.k8s.io", "lease-duration", {"spec": {"leaseDurationSeconds": 0}},
     ["spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"]),
    ("endpointslices.discovery.k8s.io", "slice-address-type", {"endpoints": []},
     ["addressType: Required value"]),
    ("endpointslices.discovery.k8s.io", "slice-address-type-enum", {"addressType": "IPv5"},
     ['addressType: Unsupported value: "IPv5": supported values: "FQDN", "IPv4", "IPv6"']),
    ("endpointslices.discovery.k8s.io", "slice-addresses", {"addressType": "IPv4", "endpoints": [{}]},
     ["endpoints[0].addresses: Required value: must contain at least 1 address"]),
    ("ingresses.networking.k8s.io", "ingress-empty", {"spec": {}},
     ["spec.rules: Invalid value: []networking.IngressRule(nil): either `defaultBackend` or `rules` must be "
      "specified"]),
    ("ingresses.networking.k8s.io", "ingress-valid", ingress_path(service={"name": "web", "port": {"number": 80}}),
     []),
    ("ingresses.networking.k8s.io", "ingress-port", ingress_path(service={"name": "web", "port": {}}),
     [f"{P0}.backend.service.port: Required value: port name or number is required"]),
    ("ingresses.networking.k8s.io", "ingress-backend", ingress_path(),
     [f'{P0}.backend: Invalid value: "": resource or service backend is required']),
    ("ingresses.networking.k8s.io", "ingress-path-type",
     {"spec": {"rules": [{"http": {"paths": [{"path": "/", "backend": {"service": {"name": "a", "port": {
         "number": 80}}}}]}}]}},
     [f"{P0}.pathType: Required value: pathType must be specified"]),
    ("ingressclasses.networking.k8s.io", "ingressclass-controller", {"spec": {}},
     ["spec.controller: Required value"]),
    ("ingressclasses.networking.k8s.io", "ingressclass-domain", {"spec": {"controller": "nginx"}},
     ['spec.controller: Invalid value: "nginx": must be a domain-prefixed path (such as "acme.io/foo")']),
    ("horizontalpodautoscalers.autoscaling", "hpa-valid", {"spec": {"scaleTargetRef": HPA_REF, "maxReplicas": 3}},
     []),
    ("horizontalpodautoscalers.autoscaling", "hpa-max", {"spec": {"scaleTargetRef": HPA_REF, "maxReplicas": 0}},
     ["spec.maxReplicas: Invalid value: 0: must be greater than 0"]),
    ("horizontalpodautoscalers.autoscaling", "hpa-min-over-max",
     {"spec": {"scaleTargetRef": HPA_REF, "minReplicas": 5, "maxReplicas": 3}},
     ["spec.maxReplicas: Invalid value: 3: must be greater than or equal to `minReplicas`"]),
    ("horizontalpodautoscalers.autoscaling", "hpa-ref", {"spec": {"scaleTargetRef": {"name": "a/b"}, "maxReplicas": 1}},
     ["spec.scaleTargetRef.kind: Required value", "spec.scaleTargetRef.name: Invalid value: \"a/b\": may not "
      "contain '/'"]),
    ("storageclasses.storage.k8s.io", "sc-provisioner", {}, ["provisioner: Required value"]),
    ("storageclasses.storage.k8s.io", "sc-reclaim", {"provisioner": "example.com/x", "reclaimPolicy": "Recycle"},
     ['reclaimPolicy: Unsupported value: "Recycle": supported values: "Delete", "Retain"']),
    ("priorityclasses.scheduling.k8s.io", "pc-system-prefix", {"metadata": {"name": "system-mine"}, "value": 1},
     ["metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only"]),
    ("priorityclasses.scheduling.k8s.io", "pc-value", {"value": 2000000000},
     ["value: Forbidden: maximum allowed value of a user defined priority is 1000000000"]),
    ("priorityclasses.scheduling.k8s.io", "pc-preemption", {"value": 1, "preemptionPolicy": "Always"},
     ['preemptionPolicy: Unsupported value: "Always": supported values: "PreemptLowerPriority", "Never"']),
]


@pytest.mark.parametrize(("key", "obj", "expected"), [(c[0], c[2], c[3]) for c in CASES], ids=[c[1] for c in CASES])
def test_other(key: str, obj: dict[str, Any], expected: list[str]) -> None:
    assert causes(key, obj) == expected


def test_storage_class_update_rules() -> None:
    old = {"metadata": {"name": "x"}, "provisioner": "example.com/a", "reclaimPolicy": "Delete",
           "volumeBindingMode": "Immediate"}
    new = dict(old, provisioner="example.com/b", volumeBindingMode="WaitForFirstConsumer")
    assert causes("storageclasses.storage.k8s.io", new, old) == [
        "provisioner: Forbidden: updates to provisioner are forbidden.",
        'volumeBindingMode: Invalid value: "WaitForFirstConsumer": field is immutable',
    ]


def crd(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "group": "example.com", "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
        "versions": [{"name": "v1", "served": True, "storage": True}],
    }
    base.update(spec)
    return {"metadata": {"name": "widgets.example.com"}, "spec": base}


CRD = "customresourcedefinitions.apiextensions.k8s.io"
VERSIONS = "[]apiextensions.CustomResourceDefinitionVersion{...}"
CRD_CASES = [
    ("valid", crd(), []),
    ("name-mismatch", crd(group="other.io"),
     ['metadata.name: Invalid value: "widgets.example.com": must be spec.names.plural+"."+spec.group']),
    ("group-dot", dict(crd(group="example"), metadata={"name": "widgets.example"}),
     ['spec.group: Invalid value: "example": should be a domain with at least one dot']),
    ("scope", crd(scope="Global"),
     ['spec.scope: Unsupported value: "Global": supported values: "Cluster", "Namespaced"']),
    ("kind-required", crd(names={"plural": "widgets"}), ["spec.names.kind: Required value"]),
    ("kind-syntax", crd(names={"plural": "widgets", "kind": "Wid_get"}),
     ['spec.names.kind: Invalid value: "Wid_get": may have mixed case, but should otherwise match: a DNS-1035 '
      "label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and "
      "end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is "
      "'[a-z]([-a-z0-9]*[a-z0-9])?')"]),
    ("versions-required", crd(versions=[]), ["spec.versions: Required value: must have at least one version"]),
    ("one-storage", crd(versions=[{"name": "v1", "storage": True}, {"name": "v2", "storage": True}]),
     [f"spec.versions: Invalid value: {VERSIONS}: must have exactly one version marked as storage version"]),
    ("unique-versions", crd(versions=[{"name": "v1", "storage": True}, {"name": "v1"}]),
     [f"spec.versions: Invalid value: {VERSIONS}: must contain unique version names"]),
]


@pytest.mark.parametrize(("obj", "expected"), [c[1:] for c in CRD_CASES], ids=[c[0] for c in CRD_CASES])
def test_crd(obj: dict[str, Any], expected: list[str]) -> None:
    assert causes(CRD, obj) == expected
