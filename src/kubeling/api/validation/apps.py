"""apps/v1 validation: Deployment, ReplicaSet, StatefulSet, DaemonSet (`pkg/apis/apps/validation`).

The rules that matter most to controllers: a non-empty selector that matches
the template's labels (otherwise a controller would create Pods it cannot
see, forever), a template that is a valid Pod with restartPolicy Always, and
a selector that never changes after creation (apps/v1 made it immutable so
that controllers never orphan or adopt by surprise).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubeling.api.errors import Cause, forbidden, invalid, not_supported, required
from kubeling.api.validation.common import (
    as_map,
    go_int_or_string,
    immutable,
    int_or_percent_value,
    nonnegative,
    not_more_than_100_percent,
    positive_int_or_percent,
    selector_empty,
    selector_matches,
    validate_label_selector,
)
from kubeling.api.validation.core import validate_pvc_spec
from kubeling.api.validation.labels import GoValue, go_map, go_selector, required_detail
from kubeling.api.validation.pod import validate_pod_template


def _template_checks(template: Mapping[str, Any], kind: str, path: str, restart_always: bool) -> list[Cause]:
    causes = validate_pod_template(template, f"{path}.template")
    pod_spec = as_map(template.get("spec"))
    if restart_always:
        policy = pod_spec.get("restartPolicy")
        if policy and policy != "Always":
            causes.append(not_supported(f"{path}.template.spec.restartPolicy", policy, ["Always"]))
        if pod_spec.get("activeDeadlineSeconds") is not None:
            label = {"statefulset": "StatefulSet", "daemonset": "DaemonSet"}.get(kind, "ReplicaSet")
            causes.append(forbidden(f"{path}.template.spec.activeDeadlineSeconds",
                                    f"activeDeadlineSeconds in {label} is not Supported"))
    return causes


def _mismatch(selector: Any, template: Mapping[str, Any], path: str) -> list[Cause]:
    # A nil selector selects nothing (labels.Nothing()), so it never matches the template.
    labels = as_map(template.get("metadata")).get("labels")
    if selector is None or not selector_matches(selector, labels):
        return [invalid(f"{path}.template.metadata.labels", go_map(labels),
                        "`selector` does not match template `labels`")]
    return []


def validate_selector_and_template(spec: Mapping[str, Any], kind: str, *, path: str = "spec",
                                   restart_always: bool = True, selector_required: bool = True) -> list[Cause]:
    """The selector/template pair shared by every replicating controller, in Kubernetes' order.

    A missing selector is Required and (selecting nothing) also mismatches the template; an
    empty one is rejected but matches; a malformed one stops the template from being checked.
    DaemonSets and Jobs word and order this slightly differently, reproduced here by `kind`.
    """
    selector = spec.get("selector")
    template = as_map(spec.get("template"))  # a struct in Go: absent means empty
    causes: list[Cause] = []
    selector_causes = validate_label_selector(selector, f"{path}.selector") if selector is not None else []
    if kind == "daemonset":
        causes.extend(selector_causes)
        if not selector_causes:
            causes.extend(_mismatch(selector, template, path))
        if selector is not None and selector_empty(selector):
            causes.append(invalid(f"{path}.selector", go_selector(selector), "empty selector is invalid for daemonset"))
        return causes + _template_checks(template, kind, path, restart_always)
    if selector is None:
        if not selector_required:  # a Job's selector is generated after validation
            return causes + _template_checks(template, kind, path, restart_always)
        causes.append(required(f"{path}.selector"))
    else:
        causes.extend(selector_causes)
        if kind != "job" and selector_empty(selector):
            causes.append(invalid(f"{path}.selector", go_selector(selector), f"empty selector is invalid for {kind}"))
    if selector_causes:
        # Like Kubernetes: an unusable selector stops here, the template is not checked against it.
        detail = "" if kind == "statefulset" else "invalid label selector"
        return causes + [invalid(f"{path}.selector", go_selector(selector), detail)]
    if selector is None or not selector_empty(selector):
        causes.extend(_mismatch(selector, template, path))
    return causes + _template_checks(template, kind, path, restart_always)


def _strategy_repr(strategy: Mapping[str, Any]) -> GoValue:
    ru = "(*apps.RollingUpdateDeployment)(nil)" if strategy.get("rollingUpdate") is None \
        else "(*apps.RollingUpdateDeployment)(0xc000000000)"
    return GoValue(f'apps.DeploymentStrategy{{Type:"{strategy.get("type", "")}", RollingUpdate:{ru}}}')


def _rolling_update_deployment(ru: Mapping[str, Any], path: str) -> list[Cause]:
    max_unavailable, max_surge = ru.get("maxUnavailable"), ru.get("maxSurge")
    causes = positive_int_or_percent(max_unavailable, f"{path}.maxUnavailable")
    causes.extend(positive_int_or_percent(max_surge, f"{path}.maxSurge"))
    if int_or_percent_value(max_unavailable) == 0 and int_or_percent_value(max_surge) == 0:
        causes.append(invalid(f"{path}.maxUnavailable", go_int_or_string(max_unavailable),
                              "may not be 0 when `maxSurge` is 0"))
    causes.extend(not_more_than_100_percent(max_unavailable, f"{path}.maxUnavailable"))
    return causes


def _rolling_update_daemon_set(ru: Mapping[str, Any], path: str) -> list[Cause]:
    max_unavailable, max_surge = ru.get("maxUnavailable"), ru.get("maxSurge")
    causes = positive_int_or_percent(max_unavailable, f"{path}.maxUnavailable")
    causes.extend(positive_int_or_percent(max_surge, f"{path}.maxSurge"))
    causes.extend(not_more_than_100_percent(max_unavailable, f"{path}.maxUnavailable"))
    causes.extend(not_more_than_100_percent(max_surge, f"{path}.maxSurge"))
    # Exactly one of the two may be non-zero.
    has_unavailable = int_or_percent_value(max_unavailable) != 0
    has_surge = int_or_percent_value(max_surge) != 0
    if has_unavailable and has_surge:
        causes.append(invalid(f"{path}.maxSurge", go_int_or_string(max_surge),
                              "may not be set when maxUnavailable is non-zero"))
    elif not has_unavailable and not has_surge:
        causes.append(required_detail(f"{path}.maxUnavailable", "cannot be 0 when maxSurge is 0"))
    return causes


def validate_deployment(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    spec = as_map(obj.get("spec"))
    causes = nonnegative(spec, "replicas", "spec")
    causes.extend(validate_selector_and_template(spec, "deployment"))
    strategy = as_map(spec.get("strategy"))
    stype = strategy.get("type")
    if stype == "Recreate":
        if strategy.get("rollingUpdate") is not None:
            causes.append(forbidden("spec.strategy.rollingUpdate",
                                    "may not be specified when strategy `type` is 'Recreate'"))
    elif stype == "RollingUpdate":
        ru = strategy.get("rollingUpdate")
        if ru is None:
            causes.append(Cause("FieldValueRequired", "Required value: this should be defaulted and never be nil",
                                "spec.strategy.rollingUpdate"))
        else:
            causes.extend(_rolling_update_deployment(as_map(ru), "spec.strategy.rollingUpdate"))
    else:
        causes.append(not_supported("spec.strategy", _strategy_repr(strategy), ["Recreate", "RollingUpdate"]))
    for key in ("minReadySeconds", "revisionHistoryLimit", "progressDeadlineSeconds"):
        causes.extend(nonnegative(spec, key, "spec"))
    deadline, min_ready = spec.get("progressDeadlineSeconds"), spec.get("minReadySeconds") or 0
    if isinstance(deadline, int) and deadline >= 0 and deadline <= min_ready:
        causes.append(invalid("spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds"))
    if old is not None:
        causes.extend(_selector_immutable(spec, as_map(old.get("spec"))))
    return causes


def _selector_immutable(spec: Mapping[str, Any], old_spec: Mapping[str, Any]) -> list[Cause]:
    return immutable(spec.get("selector"), old_spec.get("selector"), "spec.selector",
                     shown=go_selector(spec.get("selector")))


def validate_replica_set(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    spec = as_map(obj.get("spec"))
    causes = nonnegative(spec, "replicas", "spec")
    causes.extend(nonnegative(spec, "minReadySeconds", "spec"))
    causes.extend(validate_selector_and_template(spec, "deployment"))
    if old is not None:
        causes.extend(_selector_immutable(spec, as_map(old.get("spec"))))
    return causes


_STS_MUTABLE = ("replicas", "ordinals", "template", "updateStrategy", "revisionHistoryLimit",
                "persistentVolumeClaimRetentionPolicy", "minReadySeconds")


def validate_stateful_set(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    spec = as_map(obj.get("spec"))
    policy = spec.get("podManagementPolicy")
    causes: list[Cause] = []
    if not policy:
        causes.append(required("spec.podManagementPolicy"))
    elif policy not in ("OrderedReady", "Parallel"):
        causes.append(invalid("spec.podManagementPolicy", policy, "must be 'OrderedReady' or 'Parallel'"))
    strategy = as_map(spec.get("updateStrategy"))
    stype = strategy.get("type")
    if not stype:
        causes.append(required("spec.updateStrategy"))
    elif stype == "OnDelete":
        if strategy.get("rollingUpdate") is not None:
            causes.append(invalid("spec.updateStrategy.rollingUpdate", GoValue("&apps.RollingUpdateStatefulSetStrategy{}"),
                                  "only allowed for updateStrategy 'RollingUpdate'"))
    elif stype == "RollingUpdate":
        ru = as_map(strategy.get("rollingUpdate"))
        causes.extend(nonnegative(ru, "partition", "spec.updateStrategy.rollingUpdate"))
        if ru.get("maxUnavailable") is not None:
            mu = ru["maxUnavailable"]
            mu_path = "spec.updateStrategy.rollingUpdate.maxUnavailable"
            causes.extend(positive_int_or_percent(mu, mu_path))
            if int_or_percent_value(mu) == 0:
                causes.append(invalid(mu_path, go_int_or_string(mu), "cannot be 0"))
            causes.extend(not_more_than_100_percent(mu, mu_path))
    else:
        causes.append(invalid("spec.updateStrategy", GoValue(f'apps.StatefulSetUpdateStrategy{{Type:"{stype}"}}'),
                              "must be 'RollingUpdate' or 'OnDelete'"))
    retention = as_map(spec.get("persistentVolumeClaimRetentionPolicy"))
    for key in ("whenDeleted", "whenScaled"):
        if retention.get(key):
            if retention[key] not in ("Retain", "Delete"):
                causes.append(not_supported(f"spec.persistentVolumeClaimRetentionPolicy.{key}", retention[key],
                                            ["Retain", "Delete"]))
    for key in ("replicas", "minReadySeconds", "revisionHistoryLimit"):
        causes.extend(nonnegative(spec, key, "spec"))
    causes.extend(validate_selector_and_template(spec, "statefulset"))
    for i, claim in enumerate(spec.get("volumeClaimTemplates") or []):
        causes.extend(validate_pvc_spec(as_map(claim).get("spec"), f"spec.volumeClaimTemplates[{i}].spec"))
    if old is not None:
        new_rest = {k: v for k, v in spec.items() if k not in _STS_MUTABLE}
        old_rest = {k: v for k, v in as_map(old.get("spec")).items() if k not in _STS_MUTABLE}
        if new_rest != old_rest:
            causes.append(forbidden("spec", "updates to statefulset spec for fields other than 'replicas', "
                                    "'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', "
                                    "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"))
    return causes


def validate_daemon_set(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    spec = as_map(obj.get("spec"))
    causes = validate_selector_and_template(spec, "daemonset")
    for key in ("minReadySeconds", "revisionHistoryLimit"):
        causes.extend(nonnegative(spec, key, "spec"))
    strategy = as_map(spec.get("updateStrategy"))
    stype = strategy.get("type")
    if stype == "RollingUpdate":
        ru = strategy.get("rollingUpdate")
        if ru is None:
            causes.append(required("spec.updateStrategy.rollingUpdate"))
        else:
            causes.extend(_rolling_update_daemon_set(as_map(ru), "spec.updateStrategy.rollingUpdate"))
    elif stype != "OnDelete":
        ru_text = "(*apps.RollingUpdateDaemonSet)(nil)" if strategy.get("rollingUpdate") is None \
            else "(*apps.RollingUpdateDaemonSet)(0xc000000000)"
        shown = GoValue(f'apps.DaemonSetUpdateStrategy{{Type:"{stype or ""}", RollingUpdate:{ru_text}}}')
        causes.append(not_supported("spec.updateStrategy", shown, ["RollingUpdate", "OnDelete"]))
    if old is not None:
        causes.extend(_selector_immutable(spec, as_map(old.get("spec"))))
    return causes


def validate_controller_revision(obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> list[Cause]:
    revision = obj.get("revision")
    causes: list[Cause] = []
    if isinstance(revision, int) and revision < 0:
        causes.append(invalid("revision", revision, "must be greater than or equal to 0"))
    if old is not None and obj.get("data") != old.get("data"):
        causes.append(invalid("data", GoValue("runtime.RawExtension{...}"), "field is immutable"))
    return causes
