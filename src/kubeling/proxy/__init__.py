"""The Service proxy: makes ClusterIPs, NodePorts, externalIPs and LoadBalancer ingresses answer on a node.

`ServiceProxy` (component.py) is what `kubeling up` and `kubeling agent` run;
`rules` plans what to serve from Services and EndpointSlices, `userspace` and
`relay` serve it without root, `servicelb` gives LoadBalancer Services an
ingress address (k3s's ServiceLB).
"""

from kubeling.proxy.component import ServiceProxy
from kubeling.proxy.rules import Frontend, Plan, plan_service
from kubeling.proxy.servicelb import ServiceLB
from kubeling.proxy.userspace import UserspaceProxy

__all__ = ["Frontend", "Plan", "ServiceLB", "ServiceProxy", "UserspaceProxy", "plan_service"]
