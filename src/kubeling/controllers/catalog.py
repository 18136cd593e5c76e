"""Every controller, by the name kube-controller-manager uses for it."""

from __future__ import annotations

from kubeling.controllers.base import Controller

CONTROLLERS: dict[str, type[Controller]] = {}
