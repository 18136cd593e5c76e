"""`kubeling explain pod NAME [-n NS]`: why the scheduler put a pod where it is (or nowhere).

kube-scheduler only leaves the aggregated "0/N nodes are available: …" line behind.
kubeling's scheduler also records its last attempt per node in the pod annotation
`scheduler.kubeling.io/explanation`; this command reads the pod through the API (like
every other component, never the store) and prints that record as a table: each node's
verdict (fits, or the plugin that rejected it and why), the per-plugin scores and the
weighted total, the chosen node marked with `*`.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import orjson

from kubeling.api.errors import StatusError
from kubeling.client import KubeClient
from kubeling.client.errors import APIUnavailable
from kubeling.client.resources import PODS
from kubeling.scheduler.record import ANNOTATION, format_record


async def _explain(kubeconfig: Path, namespace: str, name: str) -> tuple[int, str]:
    async with KubeClient.from_kubeconfig(str(kubeconfig), user_agent="kubeling-explain") as client:
        try:
            pod = await client.get(PODS, name, namespace=namespace)
        except StatusError as err:
            if err.code == 404:
                return 1, f'Error: pod "{name}" not found in namespace "{namespace}"'
            return 1, f"Error: {err.message or err}"
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    header = [f"Pod:       {namespace}/{name}",
              f"Phase:     {status.get('phase') or 'Unknown'}",
              f"Node:      {spec.get('nodeName') or '<none>'}"]
    if status.get("nominatedNodeName"):
        header.append(f"Nominated: {status['nominatedNodeName']}")
    raw = ((pod.get("metadata") or {}).get("annotations") or {}).get(ANNOTATION)
    if not raw:
        who = spec.get("schedulerName") or "default-scheduler"
        note = ("it was bound without going through kubeling's scheduler" if spec.get("nodeName")
                else f"scheduler {who!r} has not tried to schedule it yet")
        return 0, "\n".join([*header, "", f"No scheduling explanation recorded: {note}."]) + "\n"
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return 1, f"Error: annotation {ANNOTATION} on {namespace}/{name} is not valid JSON"
    return 0, "\n".join(header) + "\n\n" + format_record(record)


def run(name: str, *, namespace: str, kubeconfig: Path) -> int:
    """Print the explanation; exit 1 with one line when the pod or the cluster can't be read."""
    if not kubeconfig.exists():
        print(f"kubeling: no kubeconfig at {kubeconfig}; pass --kubeconfig or start a cluster with `kubeling up`",
              file=sys.stderr)
        return 1
    try:
        code, text = asyncio.run(_explain(kubeconfig, namespace, name))
    except APIUnavailable as err:
        print(f"kubeling: cannot reach the API server: {err}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as err:
        print(f"kubeling: {err}", file=sys.stderr)
        return 1
    print(text, end="" if text.endswith("\n") else "\n", file=sys.stdout if code == 0 else sys.stderr)
    return code
