"""Scheduling profiles from a KubeSchedulerConfiguration (kubescheduler.config.k8s.io/v1).

A profile is the configured framework: which plugins run at each extension point, in
which order, with which args and score weights. It is also the `Handle` plugins call
back into (preemption re-runs the filter chain through it).

Merging follows upstream's rules in their common form: start from the default
multiPoint plugin list; `multiPoint.disabled` removes entries ("*" removes all),
`multiPoint.enabled` adds or re-weights; then each specific extension point starts from
the multiPoint plugins that implement it, applies its own `disabled`, and appends its
own `enabled`. Any mistake is a ValueError with one line saying where and what.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from kubeling.scheduler.framework import CycleState, NodeInfo, PodInfo, Snapshot, Status
from kubeling.scheduler.registry import DEFAULT_PLUGINS, REGISTRY

DEFAULT_SCHEDULER_NAME = "default-scheduler"
API_VERSION = "kubescheduler.config.k8s.io/v1"
# extension point in the config → the method a plugin must have to implement it
EXTENSION_POINTS = {
    "preFilter": "pre_filter", "filter": "filter", "postFilter": "post_filter",
    "preScore": "pre_score", "score": "score",
}


class Profile:
    """One scheduler profile: plugin instances per extension point plus score weights."""

    def __init__(self, scheduler_name: str = DEFAULT_SCHEDULER_NAME, *, plugins: dict[str, Any] | None = None,
                 plugin_config: list[dict[str, Any]] | None = None, where: str = "profile",
                 percentage_of_nodes_to_score: int = 100) -> None:
        self.scheduler_name = scheduler_name
        # 100 = filter every node and score every feasible one; 0 = upstream's adaptive default.
        self.percentage_of_nodes_to_score = percentage_of_nodes_to_score
        self.next_start_index = 0  # where the next sampled search starts (upstream's nextStartNodeIndex)
        args_by_name: dict[str, dict[str, Any]] = {}
        for i, pc in enumerate(plugin_config or []):
            name = (pc or {}).get("name")
            if name not in REGISTRY:
                raise ValueError(f"{where}.pluginConfig[{i}]: plugin {name!r} does not exist")
            args_by_name[name] = pc.get("args") or {}
        plugins = plugins or {}
        multi = _merge(list(DEFAULT_PLUGINS), plugins.get("multiPoint"), f"{where}.plugins.multiPoint")
        self._instances: dict[str, object] = {}

        def instance(name: str) -> object:
            if name not in self._instances:
                try:
                    self._instances[name] = REGISTRY[name](args_by_name.get(name, {}), self)
                except (ValueError, TypeError, KeyError, AttributeError) as e:
                    raise ValueError(f"{where}.pluginConfig[{name}]: invalid args: {e}") from e
            return self._instances[name]

        self.points: dict[str, list[tuple[object, int]]] = {}
        for point, method in EXTENSION_POINTS.items():
            base = [(n, w) for n, w in multi if hasattr(instance(n), method)]
            cfg = plugins.get(point)
            merged = _merge(base, cfg, f"{where}.plugins.{point}")
            for n, _ in merged:
                if not hasattr(instance(n), method):
                    raise ValueError(f"{where}.plugins.{point}: plugin {n!r} does not extend {point}")
            self.points[point] = [(instance(n), w) for n, w in merged]
        self.pre_filter_plugins = [p for p, _ in self.points["preFilter"]]
        self.filter_plugins = [p for p, _ in self.points["filter"]]
        self.post_filter_plugins = [p for p, _ in self.points["postFilter"]]
        self.pre_score_plugins = [p for p, _ in self.points["preScore"]]
        # A score plugin configured without a weight gets 1, as upstream defaults it.
        self.score_plugins: list[tuple[Any, int]] = [(p, w or 1) for p, w in self.points["score"]]

    def plugin(self, name: str) -> Any:
        """The instance of a configured plugin (KeyError if the profile doesn't use it)."""
        return self._instances[name]

    @property
    def weights(self) -> dict[str, int]:
        return {p.name: w for p, w in self.score_plugins}

    # --- Handle ---------------------------------------------------------------------------

    def run_pre_filter_plugins(self, state: CycleState, pod: PodInfo, snapshot: Snapshot) -> Status | None:
        """All PreFilters; records Skips in `state`; returns the first rejection."""
        for p in self.pre_filter_plugins:
            st = p.pre_filter(state, pod, snapshot)
            if st is None:
                continue
            if st.is_skip():
                state.skip_filter.add(p.name)
                continue
            st.plugin = st.plugin or p.name
            return st
        return None

    def run_filter_plugins(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status | None:
        """Filters on one node, stopping at the first rejection (upstream's behaviour)."""
        for p in self.filter_plugins:
            if p.name in state.skip_filter:
                continue
            st = p.filter(state, pod, node)
            if st is not None:
                st.plugin = st.plugin or p.name
                return st
        return None

    def __repr__(self) -> str:
        return f"Profile({self.scheduler_name!r})"


def _merge(base: list[tuple[str, int]], cfg: dict[str, Any] | None, where: str) -> list[tuple[str, int]]:
    if not cfg:
        return base
    if not isinstance(cfg, dict):
        raise ValueError(f"{where}: must be a mapping with 'enabled'/'disabled' lists")
    out = list(base)
    for i, d in enumerate(cfg.get("disabled") or []):
        name = (d or {}).get("name")
        if name == "*":
            out = []
        elif name not in REGISTRY:
            raise ValueError(f"{where}.disabled[{i}]: plugin {name!r} does not exist")
        else:
            out = [(n, w) for n, w in out if n != name]
    for i, e in enumerate(cfg.get("enabled") or []):
        name, weight = (e or {}).get("name"), (e or {}).get("weight", 0)
        if name not in REGISTRY:
            raise ValueError(f"{where}.enabled[{i}]: plugin {name!r} does not exist")
        if not isinstance(weight, int) or weight < 0 or weight > 100:
            raise ValueError(f"{where}.enabled[{i}]: weight {weight!r} must be an integer in 0..100")
        idx = next((j for j, (n, _) in enumerate(out) if n == name), None)
        if idx is None:
            out.append((name, weight))
        elif weight:
            out[idx] = (name, weight)
    return out


def parse_config(config: dict[str, Any] | None) -> dict[str, Profile]:
    """Profiles keyed by schedulerName from a KubeSchedulerConfiguration dict; always has the default."""
    config = config or {}
    if not isinstance(config, dict):
        raise ValueError("scheduler config: expected a KubeSchedulerConfiguration mapping")
    api_version = config.get("apiVersion", API_VERSION)
    if api_version != API_VERSION:
        raise ValueError(f"scheduler config: apiVersion {api_version!r} is not supported (want {API_VERSION!r})")
    kind = config.get("kind", "KubeSchedulerConfiguration")
    if kind != "KubeSchedulerConfiguration":
        raise ValueError(f"scheduler config: kind {kind!r} is not KubeSchedulerConfiguration")
    percentage = _percentage(config.get("percentageOfNodesToScore"), "percentageOfNodesToScore", 100)
    profiles: dict[str, Profile] = {}
    for i, p in enumerate(config.get("profiles") or []):
        if not isinstance(p, dict):
            raise ValueError(f"profiles[{i}]: must be a mapping")
        name = p.get("schedulerName") or DEFAULT_SCHEDULER_NAME
        if name in profiles:
            raise ValueError(f"profiles[{i}].schedulerName: Duplicate value: {name!r}")
        pct = _percentage(p.get("percentageOfNodesToScore"), f"profiles[{i}].percentageOfNodesToScore", percentage)
        profiles[name] = Profile(name, plugins=p.get("plugins"), plugin_config=p.get("pluginConfig"),
                                 where=f"profiles[{i}]", percentage_of_nodes_to_score=pct)
    profiles.setdefault(DEFAULT_SCHEDULER_NAME, Profile(percentage_of_nodes_to_score=percentage))
    return profiles


def _percentage(value: Any, where: str, default: int) -> int:
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 100:
        raise ValueError(f"{where}: Invalid value: {value!r}: not in valid range [0-100]")
    return value


def load_profiles(path: str | Path | None = None) -> dict[str, Profile]:
    """Read a KubeSchedulerConfiguration YAML file (or use defaults when `path` is None)."""
    if path is None:
        return parse_config(None)
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ValueError(f"scheduler config {path}: {e.strerror or e}") from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValueError(f"scheduler config {path}: invalid YAML: {str(e).splitlines()[0]}") from e
    return parse_config(data)
