"""Namespace deletion against the real API server: every discovered namespaced resource
(custom resources included) is emptied before the namespace is finalized; content that
cannot go yet keeps the namespace Terminating with conditions saying why. Also the
service account controller, which must recreate "default" but not in a dying namespace."""

from __future__ import annotations

from typing import Any

from kubeling.api.errors import StatusError
from kubeling.client.resources import CONFIGMAPS, DEPLOYMENTS, NAMESPACES, PODS, SECRETS, SERVICEACCOUNTS
from kubeling.controllers.namespace import NamespaceController
from kubeling.controllers.serviceaccount import ServiceAccountController
from tests.unit.controllers.conftest_workloads import Cluster, cluster_fixture, eventually  # noqa: F401
from tests.unit.controllers.gc_objects import WIDGETS, configmap, create_widget_crd, deployment, pod, widget

Obj = dict[str, Any]


async def gone(c: Cluster, name: str) -> bool:
    try:
        await c.client.get(NAMESPACES, name)
    except StatusError as err:
        if err.code == 404:
            return True
        raise
    return False


async def make_namespace(c: Cluster, name: str) -> None:
    await c.client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})


async def test_deleting_a_namespace_removes_everything_in_it(cluster: Cluster) -> None:
    await create_widget_crd(cluster.client)
    await make_namespace(cluster, "demo")
    await eventually(lambda: _try_create(cluster, WIDGETS, widget("w1", ns="demo")))
    await cluster.client.create(CONFIGMAPS, configmap("c1", ns="demo"))
    await cluster.client.create(SECRETS, {"apiVersion": "v1", "kind": "Secret",
                                          "metadata": {"name": "s1", "namespace": "demo"}})
    await cluster.client.create(DEPLOYMENTS, deployment("web", ns="demo"))
    await cluster.client.create(PODS, pod("p1", ns="demo"))
    await cluster.client.create(CONFIGMAPS, configmap("bystander"))
    await cluster.run(NamespaceController, content_recheck=0.1)
    await cluster.client.delete(NAMESPACES, "demo")
    await eventually(lambda: gone(cluster, "demo"))
    for res in (WIDGETS, CONFIGMAPS, SECRETS, DEPLOYMENTS, PODS, SERVICEACCOUNTS):
        assert (await cluster.client.list(res, namespace="demo"))["items"] == [], res.plural
    assert await cluster.client.get(CONFIGMAPS, "bystander", namespace="default")


async def _try_create(c: Cluster, res: Any, obj: Obj) -> bool:
    try:
        await c.client.create(res, obj)
    except StatusError as err:
        if err.code == 404:
            return False  # the CRD's resource is not served yet
        raise
    return True


async def test_namespace_waits_for_content_with_finalizers(cluster: Cluster) -> None:
    await make_namespace(cluster, "hold")
    await cluster.client.create(CONFIGMAPS, {**configmap("pinned", ns="hold"),
                                             "metadata": {"name": "pinned", "namespace": "hold",
                                                          "finalizers": ["example.com/keep"]}})
    await cluster.run(NamespaceController, content_recheck=0.1)
    await cluster.client.delete(NAMESPACES, "hold")

    async def reports_remaining() -> bool:
        ns = await cluster.client.get(NAMESPACES, "hold")
        conds = {c["type"]: c for c in ns.get("status", {}).get("conditions") or []}
        return (conds.get("NamespaceContentRemaining", {}).get("status") == "True"
                and "example.com/keep" in conds.get("NamespaceFinalizersRemaining", {}).get("message", ""))
    await eventually(reports_remaining)
    ns = await cluster.client.get(NAMESPACES, "hold")
    assert ns["status"]["phase"] == "Terminating" and ns["spec"]["finalizers"] == ["kubernetes"]
    await cluster.client.patch(CONFIGMAPS, "pinned", {"metadata": {"finalizers": None}}, namespace="hold")
    await eventually(lambda: gone(cluster, "hold"))


async def test_service_account_controller_recreates_default(cluster: Cluster) -> None:
    await make_namespace(cluster, "apps")
    ctrl = await cluster.run(ServiceAccountController)
    old_uid = ctrl.accounts.get("apps/default")["metadata"]["uid"]
    await cluster.client.delete(SERVICEACCOUNTS, "default", namespace="apps")
    await eventually(lambda: (ctrl.accounts.get("apps/default") or {"metadata": {"uid": old_uid}})
                     ["metadata"]["uid"] != old_uid)
    # A namespace being deleted gets nothing back.
    await cluster.client.delete(NAMESPACES, "apps")
    await cluster.client.delete(SERVICEACCOUNTS, "default", namespace="apps")
    await eventually(lambda: ctrl.accounts.get("apps/default") is None)
    await ctrl.reconcile("apps")
    assert ctrl.accounts.get("apps/default") is None
    assert (await cluster.client.list(SERVICEACCOUNTS, namespace="apps"))["items"] == []
