"""Taint/toleration matching as the API types define it (`k8s.io/api/core/v1/toleration.go`).

The scheduler, the DaemonSet controller and the taint manager all ask the same question
of a toleration and a taint, so they share this one answer.
"""

from __future__ import annotations

from typing import Any


def tolerates(toleration: dict[str, Any], taint: dict[str, Any]) -> bool:
    """`Toleration.ToleratesTaint`: effect and key match when set; Equal compares values, Exists doesn't."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    op = toleration.get("operator") or "Equal"
    if op == "Exists":
        return True
    return op == "Equal" and (toleration.get("value") or "") == (taint.get("value") or "")
