"""Pod and PodTemplateSpec defaulting (`pkg/apis/core/v1/defaults.go`).

`kubectl describe`, `rollout status` and the kubelet read fields users rarely
write (dnsPolicy, terminationMessagePath, imagePullPolicy, probe periods...),
so they are filled in on the way into storage exactly as a real API server
fills them. Templates get the PodSpec defaults only: the Pod-only ones
(enableServiceLinks, the service account, priority, default tolerations,
requests copied from limits) come from `SetDefaults_Pod` and admission
plugins, which never see templates — so a Deployment's template stays as
terse as the user wrote it, as on a real cluster.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]

_VOLUME_SOURCES = (
    "emptyDir", "hostPath", "secret", "configMap", "persistentVolumeClaim", "projected", "downwardAPI",
    "nfs", "csi", "ephemeral", "image", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "iscsi",
    "glusterfs", "rbd", "flexVolume", "cinder", "cephfs", "flocker", "fc", "azureFile", "azureDisk",
    "vsphereVolume", "quobyte", "photonPersistentDisk", "portworxVolume", "scaleIO", "storageos",
)
# The DefaultTolerationSeconds admission plugin: pods ride out a node outage for five minutes.
DEFAULT_TOLERATIONS = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
)
_DEFAULT_MODE = 420  # 0644, what secret/configMap/projected/downwardAPI volumes default to


def _dict(parent: Obj, key: str) -> Obj:
    """`parent[key]` as a dict, replacing a missing or non-dict value with a fresh one (shared by core/workloads)."""
    value = parent.get(key)
    if not isinstance(value, dict):
        value = {}
        parent[key] = value
    return value


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def image_pull_policy(image: str) -> str:
    """Always for `:latest` or an untagged image, IfNotPresent otherwise (digests count as tags).

    An empty image fails to parse and so gets IfNotPresent, as in Kubernetes (validation reports it).
    """
    if not image or "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    if ":" not in last or last.rsplit(":", 1)[1] == "latest":
        return "Always"
    return "IfNotPresent"


def _probe(probe: Any) -> None:
    if not isinstance(probe, dict):
        return
    probe.setdefault("timeoutSeconds", 1)
    probe.setdefault("periodSeconds", 10)
    probe.setdefault("successThreshold", 1)
    probe.setdefault("failureThreshold", 3)
    http = probe.get("httpGet")
    if isinstance(http, dict):
        http.setdefault("path", "/")
        http.setdefault("scheme", "HTTP")
    grpc = probe.get("grpc")
    if isinstance(grpc, dict):
        grpc.setdefault("service", "")


def _container(ctr: Any, *, host_network: bool) -> None:
    if not isinstance(ctr, dict):
        return
    ctr.setdefault("terminationMessagePath", "/dev/termination-log")
    ctr.setdefault("terminationMessagePolicy", "File")
    if not ctr.get("imagePullPolicy"):
        ctr["imagePullPolicy"] = image_pull_policy(str(ctr.get("image") or ""))
    if not isinstance(ctr.get("resources"), dict):
        ctr["resources"] = {}
    for port in _list(ctr.get("ports")):
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
            if host_network and not port.get("hostPort") and port.get("containerPort"):
                port["hostPort"] = port["containerPort"]
    for ev in _list(ctr.get("env")):
        ref = ev.get("valueFrom", {}).get("fieldRef") if isinstance(ev, dict) else None
        if isinstance(ref, dict):
            ref.setdefault("apiVersion", "v1")
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        _probe(ctr.get(key))


def _volume(vol: Any) -> None:
    if not isinstance(vol, dict):
        return
    if not any(vol.get(s) is not None for s in _VOLUME_SOURCES):
        vol["emptyDir"] = {}
    for key in ("secret", "configMap", "projected", "downwardAPI"):
        src = vol.get(key)
        if isinstance(src, dict):
            src.setdefault("defaultMode", _DEFAULT_MODE)
    host_path = vol.get("hostPath")
    if isinstance(host_path, dict):
        host_path.setdefault("type", "")
    for source in _list((vol.get("projected") or {}).get("sources") if isinstance(vol.get("projected"), dict) else []):
        token = source.get("serviceAccountToken") if isinstance(source, dict) else None
        if isinstance(token, dict):
            token.setdefault("expirationSeconds", 3600)


def default_pod_spec(spec: Obj) -> None:
    """SetDefaults_PodSpec and its nested defaulters (templates and pods alike)."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    if not isinstance(spec.get("securityContext"), dict):
        spec["securityContext"] = {}
    if spec.get("serviceAccountName") and not spec.get("serviceAccount"):
        spec["serviceAccount"] = spec["serviceAccountName"]
    host_network = spec.get("hostNetwork") is True
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for ctr in _list(spec.get(key)):
            _container(ctr, host_network=host_network)
    for vol in _list(spec.get("volumes")):
        _volume(vol)


def default_pod_template(template: Any) -> None:
    """A PodTemplateSpec inside a workload: PodSpec defaults under `spec`."""
    if isinstance(template, dict):
        default_pod_spec(_dict(template, "spec"))


def default_pod(obj: Obj) -> None:
    """A Pod: PodSpec defaults plus what SetDefaults_Pod and admission add."""
    spec = _dict(obj, "spec")
    default_pod_spec(spec)
    spec.setdefault("enableServiceLinks", True)
    if not spec.get("serviceAccountName"):
        spec["serviceAccountName"] = spec.get("serviceAccount") or "default"
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    if not spec.get("priorityClassName"):
        # The Priority admission plugin resolves a named class; without one the priority is 0.
        spec.setdefault("priority", 0)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    tolerations = spec.setdefault("tolerations", [])
    if isinstance(tolerations, list):
        for default in DEFAULT_TOLERATIONS:
            if not any(isinstance(t, dict) and t.get("key") == default["key"]
                       and t.get("effect") in (None, "", "NoExecute") for t in tolerations):
                tolerations.append(dict(default))
    # A container with limits but no requests requests what it limits.
    for key in ("initContainers", "containers"):
        for ctr in _list(spec.get(key)):
            resources = ctr.get("resources") if isinstance(ctr, dict) else None
            if isinstance(resources, dict) and isinstance(resources.get("limits"), dict):
                requests = resources.setdefault("requests", {})
                for name, value in resources["limits"].items():
                    requests.setdefault(name, value)
