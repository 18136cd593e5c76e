"""Cluster DNS (the CoreDNS `kubernetes` plugin's role): Kubernetes' DNS-based service discovery.

`RecordStore` turns Services, EndpointSlices and Pods into the records of the
Kubernetes DNS specification; `DNSServer` serves them over UDP and TCP and
hands every other name to `Forwarder` (the host's resolvers); `ClusterDNS`
wires the three to informers as one supervised component (one per node in
the root mode, on the kube-dns address: `localaddr`). A pod's resolv.conf is
written by the kubelet (kubelet/poddns.py).
"""

from kubeling.dns.component import ClusterDNS, dns_service_ip, kube_dns_service
from kubeling.dns.forward import Forwarder, host_resolvers
from kubeling.dns.records import Answer, RecordStore
from kubeling.dns.server import DNSServer

__all__ = ["Answer", "ClusterDNS", "DNSServer", "Forwarder", "RecordStore", "dns_service_ip", "host_resolvers",
           "kube_dns_service"]
