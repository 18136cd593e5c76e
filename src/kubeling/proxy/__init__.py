"""The Service proxy: makes ClusterIPs, NodePorts, externalIPs and LoadBalancer ingresses answer on a node.

`ServiceProxy` (component.py) is what `kubeling up` and `kubeling agent` run;
`rules` plans what to serve from Services and EndpointSlices, `userspace` and
`relay` serve it without root, `nftables` (with `nftables_rules`, the ruleset
renderer, `nftables_transactions`, which turns renderings into nft batches, and
`nftables_exec`, which runs nft) programs it into the kernel as root,
`servicelb` gives LoadBalancer Services an ingress address (k3s's ServiceLB).
"""

from kubeling.proxy.component import ServiceProxy
from kubeling.proxy.nftables import NftablesProxy
from kubeling.proxy.nftables_exec import cleanup as nftables_cleanup
from kubeling.proxy.nftables_exec import nftables_available
from kubeling.proxy.rules import Frontend, Plan, plan_service
from kubeling.proxy.servicelb import ServiceLB
from kubeling.proxy.userspace import UserspaceProxy

__all__ = ["Frontend", "NftablesProxy", "Plan", "ServiceLB", "ServiceProxy", "UserspaceProxy",
           "nftables_available", "nftables_cleanup", "plan_service"]
