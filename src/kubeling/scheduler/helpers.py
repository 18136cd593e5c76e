"""Matching rules shared by several plugins: tolerations, node selectors, label selectors.

These are the scheduler's copies of `v1helper.TolerationsTolerateTaint`,
`nodeaffinity.NodeSelector` and `metav1.LabelSelectorAsSelector`. They are compiled
once per pod into plain Python callables so that the per-node loop does no parsing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kubeling.api.errors import StatusError
from kubeling.api.labels import selector_from_label_selector
from kubeling.api.taints import tolerates

LabelMatcher = Callable[[dict[str, str]], bool]
NodeMatcher = Callable[[dict[str, Any]], bool]

NO_SCHEDULE, NO_EXECUTE, PREFER_NO_SCHEDULE = "NoSchedule", "NoExecute", "PreferNoSchedule"


def tolerated(tolerations: list[dict[str, Any]], taint: dict[str, Any]) -> bool:
    """True when any toleration tolerates the taint."""
    return any(tolerates(t, taint) for t in tolerations)


def node_labels(node: dict[str, Any]) -> dict[str, str]:
    return (node.get("metadata") or {}).get("labels") or {}


def compile_label_selector(ls: dict[str, Any] | None) -> LabelMatcher:
    """A LabelSelector as a predicate on labels: None matches nothing, `{}` everything.

    An invalid selector matches nothing: the API server validates selectors, so one that
    slips through should not make the scheduler place pods as if it were absent.
    """
    try:
        sel = selector_from_label_selector(ls)
    except StatusError:
        return lambda labels: False
    if sel.nothing:
        return lambda labels: False
    if not sel.requirements:
        return lambda labels: True
    reqs = sel.requirements
    if len(reqs) == 1:
        return reqs[0].matches
    return lambda labels: all(r.matches(labels) for r in reqs)


def _requirement(expr: dict[str, Any], fields: bool) -> Callable[[dict[str, str]], bool] | None:
    key = expr.get("key") or ""
    op = expr.get("operator") or ""
    values = list(expr.get("values") or [])
    if fields:
        # Only metadata.name with In/NotIn and exactly one value is valid for matchFields.
        if key != "metadata.name" or op not in ("In", "NotIn") or len(values) != 1:
            return None
    if op == "In":
        vs = frozenset(values)
        return lambda labels: key in labels and labels[key] in vs
    if op == "NotIn":
        vs = frozenset(values)
        return lambda labels: key not in labels or labels[key] not in vs
    if op == "Exists":
        return lambda labels: key in labels
    if op == "DoesNotExist":
        return lambda labels: key not in labels
    if op in ("Gt", "Lt"):
        if len(values) != 1:
            return None
        try:
            want = int(values[0])
        except ValueError:
            return None
        gt = op == "Gt"

        def compare(labels: dict[str, str]) -> bool:
            if key not in labels:
                return False
            try:
                have = int(labels[key])
            except ValueError:
                return False
            return have > want if gt else have < want

        return compare
    return None


def _compile_term(term: dict[str, Any]) -> NodeMatcher | None:
    """One NodeSelectorTerm (its expressions ANDed); None when the term can never match."""
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return None  # an empty term matches no objects
    label_reqs, field_reqs = [], []
    for e in exprs:
        r = _requirement(e, fields=False)
        if r is None:
            return None
        label_reqs.append(r)
    for e in fields:
        r = _requirement(e, fields=True)
        if r is None:
            return None
        field_reqs.append(r)

    def match(node: dict[str, Any]) -> bool:
        labels = node_labels(node)
        if not all(r(labels) for r in label_reqs):
            return False
        if field_reqs:
            f = {"metadata.name": (node.get("metadata") or {}).get("name", "")}
            return all(r(f) for r in field_reqs)
        return True

    return match


def compile_node_selector_terms(terms: list[dict[str, Any]]) -> NodeMatcher:
    """`nodeaffinity.NewNodeSelector`: terms ORed; no valid term means no node matches."""
    compiled = [m for m in (_compile_term(t) for t in terms or []) if m is not None]
    if not compiled:
        return lambda node: False
    if len(compiled) == 1:
        return compiled[0]
    return lambda node: any(m(node) for m in compiled)


def compile_node_selector_term(term: dict[str, Any]) -> NodeMatcher:
    """A single preferred term; a term that cannot match matches nothing."""
    m = _compile_term(term)
    return m if m is not None else (lambda node: False)


def required_node_matcher(pod: dict[str, Any]) -> NodeMatcher | None:
    """`nodeaffinity.GetRequiredNodeAffinity(pod)`: nodeSelector AND required node affinity, None if neither."""
    spec = pod.get("spec") or {}
    selector = spec.get("nodeSelector") or {}
    affinity = ((spec.get("affinity") or {}).get("nodeAffinity") or {})
    required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    if not selector and required is None:
        return None
    items = list(selector.items())
    terms = compile_node_selector_terms(required.get("nodeSelectorTerms") or []) if required is not None else None

    def match(node: dict[str, Any]) -> bool:
        if items:
            labels = node_labels(node)
            for k, v in items:
                if labels.get(k) != v:
                    return False
        return terms is None or terms(node)

    return match
