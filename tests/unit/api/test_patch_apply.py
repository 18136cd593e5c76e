"""Server-side apply and managedFields: the behaviour kubectl and lightkube observe."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubeling.api.errors import StatusError
from kubeling.api.patch import server_side_apply, update_managed_fields
from kubeling.api.patch.fieldpath import decode_fields_v1, encode_fields_v1, path_string
from kubeling.api.schema import schema_for

DEPLOYMENT = schema_for("apps", "v1", "Deployment")
CONFIGMAP = schema_for("", "v1", "ConfigMap")


def deployment(replicas: int = 1, image: str = "nginx:1.25", **labels: str) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": labels or {"app": "web"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "nginx", "image": image}]}}}}


def fields_of(obj: dict[str, Any], manager: str) -> dict[str, Any]:
    entry = next(e for e in obj["metadata"]["managedFields"] if e["manager"] == manager)
    return entry["fieldsV1"]


def apply(live: dict[str, Any] | None, config: dict[str, Any], *, manager: str = "kubectl",
          force: bool = False, now: str = "2025-01-01T00:00:00Z") -> dict[str, Any]:
    return server_side_apply(live, config, manager=manager, force=force, schema=DEPLOYMENT, now=now)


def test_create_from_nothing_records_apply_entry() -> None:
    out = apply(None, deployment())
    assert out["spec"]["replicas"] == 1
    [entry] = out["metadata"]["managedFields"]
    assert list(entry) == ["manager", "operation", "apiVersion", "time", "fieldsType", "fieldsV1"]
    assert entry["manager"] == "kubectl" and entry["operation"] == "Apply" and entry["apiVersion"] == "apps/v1"
    assert entry["fieldsV1"] == {
        "f:metadata": {"f:labels": {"f:app": {}}},
        "f:spec": {"f:replicas": {}, "f:selector": {},
                   "f:template": {"f:metadata": {"f:labels": {"f:app": {}}},
                                  "f:spec": {"f:containers": {'k:{"name":"nginx"}': {".": {}, "f:image": {},
                                                                                       "f:name": {}}}}}}}


def test_reapply_without_a_field_removes_it() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "1"}},
          "data": {"k": "v", "gone": "x"}}
    live = server_side_apply(None, cm, manager="lightkube", force=False, schema=CONFIGMAP, now="t1")
    again = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}}
    out = server_side_apply(live, again, manager="lightkube", force=False, schema=CONFIGMAP, now="t2")
    assert out["data"] == {"k": "v"}
    assert "labels" not in out["metadata"]
    assert fields_of(out, "lightkube") == {"f:data": {"f:k": {}}}


def test_field_kept_when_another_manager_owns_it() -> None:
    live = apply(None, deployment())
    live = apply(live, deployment(), manager="other")  # same values: shared ownership, no conflict
    out = apply(live, {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}})
    assert out["spec"]["replicas"] == 1


def test_conflict_with_client_side_apply_manager() -> None:
    created = deployment(replicas=1)
    update_managed_fields(None, created, manager="kubectl-client-side-apply", api_version="apps/v1", now="t0")
    with pytest.raises(StatusError) as err:
        apply(created, deployment(replicas=3))
    status = err.value.status()
    assert status["code"] == 409 and status["reason"] == "Conflict"
    assert status["message"] == ('Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" '
                                 "using apps/v1: .spec.replicas")
    assert status["details"] == {"causes": [{"reason": "FieldManagerConflict",
                                             "message": 'conflict with "kubectl-client-side-apply" using apps/v1',
                                             "field": ".spec.replicas"}]}


def test_conflicts_message_lists_every_path() -> None:
    created = deployment()
    update_managed_fields(None, created, manager="kubectl-create", api_version="apps/v1", now="t0")
    with pytest.raises(StatusError) as err:
        apply(created, deployment(replicas=2, image="nginx:1.26"))
    assert err.value.message == (
        'Apply failed with 2 conflicts: conflicts with "kubectl-create" using apps/v1:\n'
        "- .spec.replicas\n"
        '- .spec.template.spec.containers[name="nginx"].image')


def test_force_moves_ownership() -> None:
    created = deployment(replicas=1)
    update_managed_fields(None, created, manager="kubectl-client-side-apply", api_version="apps/v1", now="t0")
    out = apply(created, deployment(replicas=3), force=True, now="t1")
    assert out["spec"]["replicas"] == 3
    assert "f:replicas" in fields_of(out, "kubectl")["f:spec"]
    assert "f:replicas" not in fields_of(out, "kubectl-client-side-apply")["f:spec"]
    assert [e["operation"] for e in out["metadata"]["managedFields"]] == ["Apply", "Update"]


def test_same_value_is_not_a_conflict() -> None:
    created = deployment(replicas=1)
    update_managed_fields(None, created, manager="kubectl-client-side-apply", api_version="apps/v1", now="t0")
    out = apply(created, deployment(replicas=1))
    assert {e["manager"] for e in out["metadata"]["managedFields"]} == {"kubectl", "kubectl-client-side-apply"}


def test_apply_merges_containers_by_name_and_keeps_others() -> None:
    live = deployment()
    live["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "busybox"})
    update_managed_fields(None, live, manager="kubectl-create", api_version="apps/v1", now="t0")
    config = deployment()
    out = apply(live, config, force=False)
    assert [c["name"] for c in out["spec"]["template"]["spec"]["containers"]] == ["nginx", "sidecar"]


def test_update_records_changes_and_strips_others() -> None:
    old = deployment(replicas=1)
    update_managed_fields(None, old, manager="kubectl-create", api_version="apps/v1", now="t0")
    new = copy.deepcopy(old)
    new["spec"]["replicas"] = 5
    update_managed_fields(old, new, manager="kubectl-scale", api_version="apps/v1", now="t1")
    assert fields_of(new, "kubectl-scale") == {"f:spec": {"f:replicas": {}}}
    assert "f:replicas" not in fields_of(new, "kubectl-create")["f:spec"]
    assert old["spec"]["replicas"] == 1  # old untouched


def test_update_ignores_server_managed_metadata_and_status() -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "c", "uid": "u", "resourceVersion": "1", "creationTimestamp": "t",
                        "annotations": {"a": "b"}}, "data": {"k": "v"}, "status": {"x": 1}}
    update_managed_fields(None, obj, manager="kubectl-create", api_version="v1", now="t0")
    assert fields_of(obj, "kubectl-create") == {"f:data": {".": {}, "f:k": {}},
                                                "f:metadata": {"f:annotations": {".": {}, "f:a": {}}}}


def test_noop_update_adds_no_entry() -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    update_managed_fields(None, obj, manager="m", api_version="v1", now="t0")
    assert "managedFields" not in obj["metadata"]


@pytest.mark.parametrize(("trie", "text"), [
    pytest.param({"f:spec": {"f:replicas": {}}}, [".spec.replicas"], id="field"),
    pytest.param({"f:spec": {"f:ports": {'k:{"port":80,"protocol":"TCP"}': {".": {}, "f:port": {}}}}},
                 ['.spec.ports[port=80,protocol="TCP"]', '.spec.ports[port=80,protocol="TCP"].port'], id="key"),
    pytest.param({"f:metadata": {"f:finalizers": {'v:"a"': {}}}}, ['.metadata.finalizers[="a"]'], id="value"),
])
def test_fields_v1_round_trip(trie: dict[str, Any], text: list[str]) -> None:
    paths = decode_fields_v1(trie)
    assert encode_fields_v1(paths) == trie
    assert sorted(path_string(p) for p in paths) == sorted(text)
