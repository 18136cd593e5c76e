"""What kube-apiserver's apiextensions does to a custom resource with its CRD's schema.

Built-in kinds get their shape from Go structs; a custom resource gets it from the
CRD's structural `openAPIV3Schema`. On every write kube prunes fields the schema
does not specify (`prune`), fills `default`s (`apply_defaults`) and validates the
result (`validate`), wording failures exactly as kube-openapi does so that kubectl
output and client-side assertions match a real cluster.

Order, as in kube: prune, then default, then validate. `x-kubernetes-validations`
(CEL rules) are out of scope and ignored.
"""

from __future__ import annotations

from typing import Any

from kubeling.api.crdschema.defaults import apply_defaults
from kubeling.api.crdschema.prune import prune
from kubeling.api.crdschema.validate import validate


def schema_for_info(crd_field: dict[str, Any] | None) -> dict[str, Any] | None:
    """The openAPIV3Schema for a ResourceInfo.crd value, or None when the CRD has none.

    Accepts `{"crd": <CRD>, "version": <spec.versions[i]>}` as `infos_for` builds it,
    or a bare CRD, for which the first served version is used. A per-version schema
    wins; the CRD-wide `spec.validation` (the v1beta1 shape) is the fallback.
    """
    if not crd_field:
        return None
    if "crd" in crd_field and isinstance(crd_field.get("crd"), dict):
        crd: dict[str, Any] = crd_field["crd"]
        version = crd_field.get("version") or {}
    else:
        crd = crd_field
        versions = (crd.get("spec") or {}).get("versions") or []
        version = next((v for v in versions if isinstance(v, dict) and v.get("served", True)), {})
    schema = ((version.get("schema") or {}).get("openAPIV3Schema")
              or ((crd.get("spec") or {}).get("validation") or {}).get("openAPIV3Schema"))
    return schema if isinstance(schema, dict) else None


__all__ = ["apply_defaults", "prune", "schema_for_info", "validate"]
