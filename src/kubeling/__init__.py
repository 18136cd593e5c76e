"""kubeling: a Kubernetes-compatible container orchestrator in Python."""

__version__ = "0.1.0"

# The Kubernetes release whose API kubeling serves; /version reports it and the
# kubectl dispatcher on PATH picks its kubectl by this minor.
KUBERNETES_MAJOR = "1"
KUBERNETES_MINOR = "33"
KUBERNETES_GIT_VERSION = "v1.33.0-kubeling"
