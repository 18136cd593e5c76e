"""Profiles from KubeSchedulerConfiguration: defaults, merging, plugin args and errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeling.scheduler.profile import load_profiles, parse_config


def _names(points: list) -> list[str]:
    return [p.name for p, _ in points]


def test_default_profile_matches_kubernetes_defaults() -> None:
    prof = load_profiles(None)["default-scheduler"]
    assert _names(prof.points["filter"]) == [
        "NodeUnschedulable", "NodeName", "TaintToleration", "NodeAffinity", "NodePorts", "NodeResourcesFit",
        "PodTopologySpread", "InterPodAffinity"]
    assert prof.weights == {"TaintToleration": 3, "NodeAffinity": 2, "NodeResourcesFit": 1, "PodTopologySpread": 2,
                            "InterPodAffinity": 2, "NodeResourcesBalancedAllocation": 1}
    assert _names(prof.points["postFilter"]) == ["DefaultPreemption"]


def test_profiles_keyed_by_scheduler_name_default_always_present(tmp_path: Path) -> None:
    cfg = tmp_path / "sched.yaml"
    cfg.write_text("""
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- schedulerName: packer
  plugins:
    score:
      disabled:
      - name: NodeResourcesBalancedAllocation
      enabled:
      - name: NodeResourcesFit
        weight: 5
  pluginConfig:
  - name: NodeResourcesFit
    args:
      scoringStrategy:
        type: MostAllocated
        resources:
        - {name: cpu, weight: 2}
        - {name: memory, weight: 1}
""")
    profiles = load_profiles(cfg)
    assert set(profiles) == {"packer", "default-scheduler"}
    packer = profiles["packer"]
    assert packer.weights["NodeResourcesFit"] == 5
    assert "NodeResourcesBalancedAllocation" not in packer.weights
    fit = packer.plugin("NodeResourcesFit")
    assert (fit.strategy, fit.resources) == ("MostAllocated", [("cpu", 2), ("memory", 1)])


def test_multipoint_disable_all_and_enable() -> None:
    cfg = {"profiles": [{"schedulerName": "minimal", "plugins": {"multiPoint": {
        "disabled": [{"name": "*"}], "enabled": [{"name": "NodeResourcesFit", "weight": 4}]}}}]}
    prof = parse_config(cfg)["minimal"]
    assert _names(prof.points["filter"]) == ["NodeResourcesFit"]
    assert prof.weights == {"NodeResourcesFit": 4}
    assert prof.post_filter_plugins == []


def test_filter_disabled_at_one_point() -> None:
    cfg = {"profiles": [{"plugins": {"filter": {"disabled": [{"name": "TaintToleration"}]}}}]}
    prof = parse_config(cfg)["default-scheduler"]
    assert "TaintToleration" not in _names(prof.points["filter"])
    assert "TaintToleration" in prof.weights  # still scores


@pytest.mark.parametrize(("cfg", "message"), [
    ({"apiVersion": "kubescheduler.config.k8s.io/v1beta3"}, "apiVersion 'kubescheduler.config.k8s.io/v1beta3' is not"),
    ({"kind": "Pod"}, "kind 'Pod' is not KubeSchedulerConfiguration"),
    ({"profiles": [{"plugins": {"filter": {"enabled": [{"name": "Nope"}]}}}]},
     "profiles[0].plugins.filter.enabled[0]: plugin 'Nope' does not exist"),
    ({"profiles": [{"plugins": {"filter": {"enabled": [{"name": "NodeResourcesBalancedAllocation"}]}}}]},
     "profiles[0].plugins.filter: plugin 'NodeResourcesBalancedAllocation' does not extend filter"),
    ({"profiles": [{"schedulerName": "a"}, {"schedulerName": "a"}]}, "profiles[1].schedulerName: Duplicate value"),
    ({"profiles": [{"pluginConfig": [{"name": "NodeResourcesFit", "args": {"scoringStrategy": {"type": "Random"}}}]}]},
     "scoringStrategy.type: Unsupported value: 'Random'"),
    ({"profiles": [{"pluginConfig": [{"name": "NodeResourcesFit", "args": {"scoringStrategy": {
        "type": "RequestedToCapacityRatio"}}}]}]}, "requestedToCapacityRatio.shape: Required value"),
    ({"profiles": [{"pluginConfig": [{"name": "NodeResourcesFit", "args": {"scoringStrategy": {
        "resources": [{"name": "cpu", "weight": 0}]}}}]}]}, "integer weight in 1..100"),
    ({"profiles": [{"plugins": {"score": {"enabled": [{"name": "NodeAffinity", "weight": -1}]}}}]},
     "weight -1 must be an integer in 0..100"),
    ({"profiles": [{"pluginConfig": [{"name": "Bogus"}]}]}, "profiles[0].pluginConfig[0]: plugin 'Bogus' does not exist"),
], ids=["api-version", "kind", "unknown-plugin", "wrong-extension-point", "duplicate-name", "bad-strategy",
        "ratio-without-shape", "zero-resource-weight", "negative-weight", "unknown-plugin-config"])
def test_invalid_config(cfg: dict, message: str) -> None:
    with pytest.raises(ValueError) as e:
        parse_config(cfg)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="scheduler config .*missing"):
        load_profiles(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("profiles: [\n")
    with pytest.raises(ValueError, match="invalid YAML"):
        load_profiles(bad)
