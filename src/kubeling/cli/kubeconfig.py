"""Kubeconfig files: the cluster's own, and the `kubeling` context merged into
the user's ($KUBECONFIG or ~/.kube/config) without disturbing other contexts."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import yaml

CONTEXT = "kubeling"


def default_data_dir() -> Path:
    if os.environ.get("KUBELING_HOME"):
        return Path(os.environ["KUBELING_HOME"])
    if os.geteuid() == 0:
        return Path("/var/lib/kubeling")
    return Path.home() / ".local" / "share" / "kubeling"


def ensure_token(data_dir: Path) -> str:
    """The node join token, made once per data dir (mode 0600)."""
    path = data_dir / "token"
    if path.exists():
        return path.read_text().strip()
    token = secrets.token_hex(24)
    _write_private(path, token + "\n")
    return token


def kubeconfig(server: str, token: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CONTEXT, "cluster": {"server": server}}],
        "users": [{"name": CONTEXT, "user": {"token": token}}],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": CONTEXT}}],
        "current-context": CONTEXT,
        "preferences": {},
    }


def write_kubeconfig(data_dir: Path, server: str, token: str) -> Path:
    path = data_dir / "kubeconfig.yaml"
    _write_private(path, yaml.safe_dump(kubeconfig(server, token), sort_keys=False))
    return path


def user_kubeconfig_path() -> Path:
    env = os.environ.get("KUBECONFIG", "")
    first = env.split(os.pathsep)[0] if env else ""
    return Path(first) if first else Path.home() / ".kube" / "config"


def merge_into_user_config(server: str, token: str, path: Path | None = None,
                           make_current: bool = True) -> Path:
    """Add or replace the kubeling cluster/user/context entries, keeping every other entry."""
    path = path or user_kubeconfig_path()
    config: dict[str, Any] = {}
    if path.exists():
        loaded = yaml.safe_load(path.read_text()) or {}
        if isinstance(loaded, dict):
            config = loaded
    config.setdefault("apiVersion", "v1")
    config.setdefault("kind", "Config")
    ours = kubeconfig(server, token)
    for section in ("clusters", "users", "contexts"):
        entries = [e for e in (config.get(section) or []) if e.get("name") != CONTEXT]
        entries.extend(ours[section])
        config[section] = entries
    if make_current or not config.get("current-context"):
        config["current-context"] = CONTEXT
    config.setdefault("preferences", {})
    _write_private(path, yaml.safe_dump(config, sort_keys=False))
    return path


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
