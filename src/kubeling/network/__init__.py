"""Root-mode pod networking: CNI runtime, network namespaces, the node's pod network, host-gw routes.

Opt-in building blocks (see docs/networking.md); nothing in the default (no-root, host
network) path imports this package.
"""

from kubeling.network.cni import CNIError, CNIResult, NetworkPlugin
from kubeling.network.podnetwork import PodNetwork, port_mappings_for_pod
from kubeling.network.preflight import cni_available
from kubeling.network.routes import NodeRoutes

__all__ = ["CNIError", "CNIResult", "NetworkPlugin", "NodeRoutes", "PodNetwork", "cni_available",
           "port_mappings_for_pod"]
