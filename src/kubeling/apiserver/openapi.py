"""OpenAPI documents: the /openapi/v3 index, per-group-version v3 docs, and /openapi/v2.

kubectl cannot `apply`/`create -f` without OpenAPI (wire-protocol reference §1.1, §4):

* 1.29+ read `/openapi/v3`, then `/openapi/v3/<gv>?hash=…`. The fieldValidation
  verifier looks for a `patch` operation whose `x-kubernetes-group-version-kind`
  is the object's GVK and whose parameters hold `{name: fieldValidation, in: query}`;
  apply computes strategic merge patches from `components.schemas` (refs
  `#/components/schemas/…`, wrapped in `allOf` as kube does), and `kubectl
  explain` finds the GVK on the resource's paths and then the component schema
  carrying the same `x-kubernetes-group-version-kind`.
* 1.27/1.28 first fetch `/openapi/v2` as protobuf; an empty 200 body is a valid
  empty Document, so the server answers that (we never encode protobuf).

Docs are built from the Registry plus the 1.33 schemas of `kubeling.api.schema`, keeping
only schemas reachable from the group-version's kinds, and cached per `registry_fingerprint`:
CRDs added at run time produce new documents (and hashes); unchanged ones keep theirs.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from kubeling import KUBERNETES_GIT_VERSION
from kubeling.api.registry import Registry, ResourceInfo
from kubeling.apiserver.discovery import registry_fingerprint

log = logging.getLogger(__name__)

V3_CONTENT_TYPE = "application/json"
V2_PROTOBUF_CONTENT_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
SCHEMA_PREFIX = "#/components/schemas/"
META = "io.k8s.apimachinery.pkg.apis.meta.v1."
_INFO = {"title": "Kubernetes", "version": KUBERNETES_GIT_VERSION.split("-", 1)[0]}
_OUT_TYPES = ("application/json", "application/yaml")
_PATCH_TYPES = ("application/apply-patch+yaml", "application/json-patch+json", "application/merge-patch+json")

Doc = dict[str, Any]


def _param(name: str, typ: str, desc: str, where: str = "query") -> Doc:
    p: Doc = {"description": desc, "in": where, "name": name, "schema": {"type": typ, "uniqueItems": True}}
    if where == "path":
        p["required"] = True
    return p


_P = {n: _param(n, t, d) for n, t, d in (
    ("pretty", "string", "If 'true', then the output is pretty printed."),
    ("dryRun", "string", "When present, indicates that modifications should not be persisted. Valid values are: - All"),
    ("fieldManager", "string", "fieldManager is a name associated with the actor or entity that is making these changes."),
    ("fieldValidation", "string", "How to handle unknown or duplicate fields: Ignore, Warn or Strict."),
    ("force", "boolean", "Force is going to \"force\" Apply requests."),
    ("gracePeriodSeconds", "integer", "The duration in seconds before the object should be deleted."),
    ("orphanDependents", "boolean", "Deprecated: please use the PropagationPolicy."),
    ("propagationPolicy", "string", "Whether and how garbage collection will be performed: Orphan, Background or Foreground."),
    ("allowWatchBookmarks", "boolean", "allowWatchBookmarks requests watch events with type \"BOOKMARK\"."),
    ("continue", "string", "The continue option should be set when retrieving more results from the server."),
    ("fieldSelector", "string", "A selector to restrict the list of returned objects by their fields."),
    ("labelSelector", "string", "A selector to restrict the list of returned objects by their labels."),
    ("limit", "integer", "limit is a maximum number of responses to return for a list call."),
    ("resourceVersion", "string", "resourceVersion sets a constraint on what resource versions a request may be served from."),
    ("resourceVersionMatch", "string", "resourceVersionMatch determines how resourceVersion is applied to list calls."),
    ("sendInitialEvents", "boolean", "`sendInitialEvents=true` may be set together with `watch=true`."),
    ("timeoutSeconds", "integer", "Timeout for the list/watch call."),
    ("watch", "boolean", "Watch for changes to the described resources."),
)}
_LIST = ("allowWatchBookmarks", "continue", "fieldSelector", "labelSelector", "limit", "resourceVersion",
         "resourceVersionMatch", "sendInitialEvents", "timeoutSeconds", "watch")
_WRITE = ("dryRun", "fieldManager", "fieldValidation")
_DELETE = ("dryRun", "gracePeriodSeconds", "orphanDependents", "propagationPolicy")
_PARAMS = {"list": _LIST, "post": _WRITE, "put": _WRITE, "patch": (*_WRITE, "force"),
           "delete": _DELETE, "deletecollection": tuple(sorted({*_DELETE, *_LIST})), "get": ()}
_ITEM_VERBS = (("get", "get", "read"), ("create", "post", "create"), ("update", "put", "replace"),
               ("patch", "patch", "patch"), ("delete", "delete", "delete"))
_OP_VERB = {"list": "list", "get": "read", "post": "create", "put": "replace", "patch": "patch",
            "delete": "delete", "deletecollection": "delete"}


def _schema_source() -> tuple[dict[str, Doc], Callable[[str, str, str], str | None]]:
    """The 1.33 component schemas from api/schema.py (imported lazily: it is large)."""
    try:
        from kubeling.api import schema
    except ImportError:  # degrade to schema-less docs: the verifier still works
        log.warning("kubeling.api.schema unavailable; OpenAPI documents carry no schemas")
        return {}, lambda g, v, k: None
    return schema.openapi_schemas(), schema.definition_name_for


def gv_path(group: str, version: str) -> str:
    """`api/v1` or `apis/<group>/<version>`, the keys of the v3 index."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _parse_gv_path(path: str) -> tuple[str, str] | None:
    parts = path.strip("/").split("/")
    ok = (len(parts), parts[0]) in ((2, "api"), (3, "apis"))
    return (parts[1] if len(parts) == 3 else "", parts[-1]) if ok else None


def crd_definition_name(group: str, version: str, kind: str) -> str:
    """kube's name for a custom resource schema: `com.example.stable.v1.CronTab`."""
    return ".".join([*reversed(group.split(".")), version, kind])


def _camel(group: str, version: str) -> str:
    words = group.removesuffix(".k8s.io").split(".") if group else ["core"]
    return "".join(w[:1].upper() + w[1:] for w in words) + version[:1].upper() + version[1:]


def _gvk(group: str, version: str, kind: str) -> Doc:
    return {"group": group, "kind": kind, "version": version}  # kubectl compares these maps exactly


class _Builder:
    """Builds one group-version document; collects the schema names it references."""

    def __init__(self, group: str, version: str, schemas: dict[str, Doc],
                 name_for: Callable[[str, str, str], str | None]) -> None:
        self.group, self.version = group, version
        self.schemas, self.name_for = schemas, name_for
        self.roots: set[str] = set()
        self.paths: dict[str, Doc] = {}

    def ref(self, name: str | None) -> Doc:
        if name is None or name not in self.schemas:
            return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        self.roots.add(name)
        return {"$ref": SCHEMA_PREFIX + name}

    def kind_name(self, group: str, version: str, kind: str) -> str | None:
        name = crd_definition_name(group, version, kind)
        return name if name in self.schemas else self.name_for(group, version, kind)

    def op(self, action: str, op_id: str, gvk: Doc, out: Doc, *, body: Doc | None = None,
           patch_types: Iterable[str] = ()) -> Doc:
        codes = {"post": ("200", "201", "202"), "put": ("200", "201"), "patch": ("200", "201"),
                 "delete": ("200", "202")}.get(action, ("200",))
        op: Doc = {"description": f"{_OP_VERB[action]} {gvk['kind']}", "operationId": op_id}
        if _PARAMS[action]:
            op["parameters"] = [_P[p] for p in _PARAMS[action]]
        if action == "patch":
            op["requestBody"] = {"content": {t: {"schema": self.ref(META + "Patch")} for t in patch_types},
                                 "required": True}
        elif body is not None and action in ("post", "put", "delete", "deletecollection"):
            op["requestBody"] = {"content": {"*/*": {"schema": body}}, "required": action != "delete"}
        op["responses"] = {**{c: {"content": {t: {"schema": out} for t in _OUT_TYPES}, "description": "OK"}
                              for c in codes}, "401": {"description": "Unauthorized"}}
        op["tags"] = [f"{self.group.split('.')[0] or 'core'}_{self.version}"]
        op["x-kubernetes-action"] = action
        op["x-kubernetes-group-version-kind"] = gvk
        return op

    def add_resource(self, info: ResourceInfo) -> None:
        prefix = f"/apis/{info.group}/{info.version}" if info.group else f"/api/{info.version}"
        ns = "/namespaces/{namespace}" if info.namespaced else ""
        scope = "Namespaced" if info.namespaced else ""
        gv = _camel(info.group, info.version)
        gvk = _gvk(info.group, info.version, info.kind)
        obj = self.ref(self.kind_name(info.group, info.version, info.kind))
        lst = self.ref(self.kind_name(info.group, info.version, info.list_kind))
        status = self.ref(META + "Status")
        # kube offers strategic merge patch for built-in kinds only; kubectl checks this.
        patch_types = (*_PATCH_TYPES, "application/strategic-merge-patch+json") if info.crd is None else _PATCH_TYPES
        verbs = set(info.verbs)
        path_params = [_P["pretty"]]
        if info.namespaced:
            path_params.insert(0, _param("namespace", "string", "object name and auth scope", "path"))
        coll: Doc = {}
        if "list" in verbs:
            coll["get"] = self.op("list", f"list{gv}{scope}{info.kind}", gvk, lst)
        if "create" in verbs:
            coll["post"] = self.op("post", f"create{gv}{scope}{info.kind}", gvk, obj, body=obj)
        if "deletecollection" in verbs:
            coll["delete"] = self.op("deletecollection", f"delete{gv}Collection{scope}{info.kind}", gvk, status,
                                     body=self.ref(META + "DeleteOptions"))
        if coll:
            self.paths[f"{prefix}{ns}/{info.resource}"] = {**coll, "parameters": path_params}
        if info.namespaced and "list" in verbs:
            self.paths[f"{prefix}/{info.resource}"] = {
                "get": self.op("list", f"list{gv}{info.kind}ForAllNamespaces", gvk, lst),
                "parameters": [_P["pretty"]],
            }
        name_param = _param("name", "string", f"name of the {info.kind}", "path")
        item = self.item_ops(verbs - {"create"}, f"{gv}{scope}{info.kind}", gvk, obj, patch_types)
        if item:
            self.paths[f"{prefix}{ns}/{info.resource}/{{name}}"] = {**item, "parameters": [name_param, *path_params]}
        for sub in info.subresources:
            group = sub.group if (sub.group or sub.version) else info.group
            version = sub.version or info.version
            sub_ops = self.item_ops(set(sub.verbs), f"{gv}{scope}{info.kind}{sub.name[:1].upper()}{sub.name[1:]}",
                                    _gvk(group, version, sub.kind),
                                    self.ref(self.kind_name(group, version, sub.kind)), patch_types)
            if sub_ops:
                self.paths[f"{prefix}{ns}/{info.resource}/{{name}}/{sub.name}"] = {
                    **sub_ops, "parameters": [name_param, *path_params]}

    def item_ops(self, verbs: set[str], op_name: str, gvk: Doc, obj: Doc, patch_types: tuple[str, ...]) -> Doc:
        """Operations on one object's path; `op_name` is e.g. `AppsV1NamespacedDeploymentScale`."""
        ops: Doc = {}
        for verb, action, op_verb in _ITEM_VERBS:
            if verb in verbs:
                deleting = action == "delete"
                ops[action] = self.op(action, f"{op_verb}{op_name}", gvk,
                                      self.ref(META + "Status") if deleting else obj,
                                      body=self.ref(META + "DeleteOptions") if deleting else obj,
                                      patch_types=patch_types)
        return ops

    def add_root(self) -> None:
        prefix = f"/apis/{self.group}/{self.version}/" if self.group else f"/api/{self.version}/"
        out = self.ref(META + "APIResourceList")
        self.ref(META + "WatchEvent")  # kube ships it with every group-version
        self.paths[prefix] = {"get": {
            "description": "get available resources",
            "operationId": f"get{_camel(self.group, self.version)}APIResources",
            "responses": {"200": {"content": {t: {"schema": out} for t in _OUT_TYPES}, "description": "OK"},
                          "401": {"description": "Unauthorized"}},
            "tags": [f"{self.group.split('.')[0] or 'core'}_{self.version}"],
        }}


_REF = re.compile(rb'"\$ref":"#/components/schemas/([^"]+)"')


def reachable_schemas(roots: Iterable[str], schemas: dict[str, Doc]) -> dict[str, Doc]:
    """The named schemas plus every schema they reference, transitively, sorted by name."""
    seen: set[str] = set()
    todo = [r for r in roots if r in schemas]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        found = {m.decode() for m in _REF.findall(orjson.dumps(schemas[name]))}
        todo.extend(n for n in found if n in schemas and n not in seen)
    return {n: schemas[n] for n in sorted(seen)}


def _crd_version_schema(crd: Doc, version: str) -> Doc | None:
    """The openAPIV3Schema of one CRD version; `crd` is the CRD, or {"crd": CRD, "version": entry}."""
    if isinstance(crd.get("crd"), dict) and isinstance(crd.get("version"), dict):
        entries = [crd["version"]]
    else:
        entries = (crd.get("spec") or {}).get("versions") or []
    for v in entries:
        if v.get("name") == version and (v.get("schema") or {}).get("openAPIV3Schema"):
            return v["schema"]["openAPIV3Schema"]
    return None


def crd_component_schemas(info: ResourceInfo) -> dict[str, Doc]:
    """Component schemas for one served version of a custom resource: the kind and its List."""
    raw = _crd_version_schema(info.crd or {}, info.version) or {
        "type": "object", "x-kubernetes-preserve-unknown-fields": True}
    schema: Doc = orjson.loads(orjson.dumps(raw))  # a private copy: we add fields below
    props = schema.setdefault("properties", {})
    props["apiVersion"] = {"description": "APIVersion defines the versioned schema of this object.", "type": "string"}
    props["kind"] = {"description": "Kind is a string value representing the REST resource.", "type": "string"}
    props["metadata"] = {"allOf": [{"$ref": SCHEMA_PREFIX + META + "ObjectMeta"}],
                         "description": "Standard object's metadata."}
    schema.setdefault("type", "object")
    schema["x-kubernetes-group-version-kind"] = [_gvk(info.group, info.version, info.kind)]
    name = crd_definition_name(info.group, info.version, info.kind)
    list_schema: Doc = {
        "description": f"{info.list_kind} is a list of {info.kind}",
        "properties": {"apiVersion": props["apiVersion"], "kind": props["kind"],
                       "items": {"items": {"$ref": SCHEMA_PREFIX + name}, "type": "array"},
                       "metadata": {"allOf": [{"$ref": SCHEMA_PREFIX + META + "ListMeta"}]}},
        "required": ["items"], "type": "object",
        "x-kubernetes-group-version-kind": [_gvk(info.group, info.version, info.list_kind)],
    }
    return {name: schema, crd_definition_name(info.group, info.version, info.list_kind): list_schema}


def _all_schemas(registry: Registry) -> tuple[dict[str, Doc], Callable[[str, str, str], str | None]]:
    schemas, name_for = _schema_source()
    crds = [i for i in registry.all() if i.crd is not None]
    if crds:
        schemas = dict(schemas)
        for info in crds:
            schemas.update(crd_component_schemas(info))
    return schemas, name_for


def _build(registry: Registry, group: str, version: str) -> Doc | None:
    infos = sorted(registry.resources_in(group, version), key=lambda i: i.resource)
    if not infos:
        return None
    schemas, name_for = _all_schemas(registry)
    b = _Builder(group, version, schemas, name_for)
    b.add_root()
    for info in infos:
        b.add_resource(info)
    return {"openapi": "3.0.0", "info": dict(_INFO), "paths": dict(sorted(b.paths.items())),
            "components": {"schemas": reachable_schemas(b.roots, schemas)}}


def _dumps(doc: Doc) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


def openapi_v3_hash(doc: Doc) -> str:
    """Uppercase hex sha512 of the document's JSON, the `hash=` kube puts in the index."""
    return hashlib.sha512(_dumps(doc)).hexdigest().upper()


class _Cache:
    """Per-registry-state memo: everything is dropped when the fingerprint changes."""

    key: tuple[int, bytes] | None = None
    docs: dict[str, tuple[Doc, bytes, str] | None] = {}
    v2: Doc | None = None

    def check(self, registry: Registry) -> None:
        key = (id(registry), registry_fingerprint(registry))
        if key != self.key:
            self.key, self.docs, self.v2 = key, {}, None


_cache = _Cache()


def openapi_v3_document_bytes(registry: Registry, gv: str) -> tuple[bytes, str] | None:
    """(JSON body, hash) for `api/v1` or `apis/<g>/<v>`; None when not served (→ 404)."""
    _cache.check(registry)
    gv = gv.strip("/")
    if gv not in _cache.docs:
        parsed = _parse_gv_path(gv)
        doc = _build(registry, *parsed) if parsed else None
        body = _dumps(doc) if doc is not None else b""
        _cache.docs[gv] = (doc, body, hashlib.sha512(body).hexdigest().upper()) if doc is not None else None
    entry = _cache.docs[gv]
    return None if entry is None else (entry[1], entry[2])


def openapi_v3_document(registry: Registry, gv: str) -> Doc | None:
    """The OpenAPI 3.0 document for one group-version (cached; do not mutate)."""
    found = openapi_v3_document_bytes(registry, gv)
    return _cache.docs[gv.strip("/")][0] if found else None  # type: ignore[index]


def openapi_v3_index(registry: Registry) -> Doc:
    """The /openapi/v3 body: every served group-version with a content-hashed URL."""
    paths: Doc = {}
    for group, versions in registry.group_versions().items():
        for version in versions:
            path = gv_path(group, version)
            built = openapi_v3_document_bytes(registry, path)
            if built is not None:
                paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={built[1]}"}
    return {"paths": dict(sorted(paths.items()))}


def openapi_v2_protobuf_empty() -> bytes:
    """The /openapi/v2 protobuf body (`V2_PROTOBUF_CONTENT_TYPE`): zero bytes are an empty, valid Document."""
    return b""


def _to_v2(node: Any, *, names: bool = False) -> Any:
    """Convert a v3 schema to swagger 2.0; `names` marks a `properties` map (keys are field names)."""
    if isinstance(node, list):
        return [_to_v2(v) for v in node]
    if not isinstance(node, dict):
        return node
    if names:
        return {k: _to_v2(v) for k, v in node.items()}
    all_of = node.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1 and "$ref" in all_of[0] and "properties" not in node:
        # v3 wraps `$ref` in allOf to attach a description; v2 puts them side by side.
        return {"$ref": _to_v2(all_of[0])["$ref"], **({"description": node["description"]} if "description" in node else {})}
    out = {}
    for key, value in node.items():
        if key in ("nullable", "anyOf", "oneOf", "not"):
            continue  # not expressible in swagger 2.0; kube drops them too
        if key == "$ref" and isinstance(value, str):
            out[key] = value.replace(SCHEMA_PREFIX, "#/definitions/")
        else:
            out[key] = _to_v2(value, names=key in ("properties", "patternProperties", "definitions"))
    return out


def openapi_v2_json(registry: Registry) -> Doc:
    """A swagger 2.0 document (definitions only) for clients that ask /openapi/v2 as JSON."""
    _cache.check(registry)
    if _cache.v2 is None:
        schemas, _ = _all_schemas(registry)
        _cache.v2 = {"swagger": "2.0", "info": dict(_INFO), "paths": {},
                     "definitions": {n: _to_v2(s) for n, s in sorted(schemas.items())}}
    return _cache.v2
