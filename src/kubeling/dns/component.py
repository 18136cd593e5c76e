"""ClusterDNS: the cluster DNS add-on as one supervised component (CoreDNS + its Service).

Hub and spoke: like CoreDNS's `kubernetes` plugin it only watches the API
server — Services, EndpointSlices and Pods through informers — and keeps the
record store current from their events. It also owns its front door: the
`kube-dns` Service in kube-system with the well-known cluster DNS address (the
.10 of the service range), created at start if absent, so `kubectl get svc -n
kube-system` shows what a Kubernetes user expects and pods' resolv.conf has a
stable nameserver. The Service carries `service.kubernetes.io/service-proxy-name`
because the DNS server binds that address itself: service proxies must leave it
alone (kube-proxy skips Services with that label).

Port 53 needs root or CAP_NET_BIND_SERVICE. Without it (the no-root network
mode) the server falls back to a high port with a warning; pods then cannot
reach it through resolv.conf — a documented limitation of that mode — but
`dig -p 10053 @127.43.0.10 web.demo.svc.cluster.local` works from the host.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import random
from typing import Any

from kubeling.api.errors import StatusError
from kubeling.client import Informer, KubeClient
from kubeling.client.errors import APIUnavailable
from kubeling.client.resources import ENDPOINTSLICES, PODS, SERVICES
from kubeling.dns.forward import Forwarder, Upstream, host_resolvers
from kubeling.dns.localaddr import add_local_address, remove_local_address
from kubeling.dns.records import RecordStore
from kubeling.dns.server import DNSServer

log = logging.getLogger(__name__)

DNS_SERVICE_NAME = "kube-dns"
DNS_SERVICE_NAMESPACE = "kube-system"
PROXY_NAME_LABEL = "service.kubernetes.io/service-proxy-name"


def dns_service_ip(service_cidr: str) -> str:
    """The conventional cluster DNS address: the tenth address of the service range."""
    return str(ipaddress.ip_network(service_cidr, strict=False).network_address + 10)


def kube_dns_service(cluster_ip: str) -> dict[str, Any]:
    """The `kube-dns` Service object, as kubeadm and k3s name it."""
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": DNS_SERVICE_NAME, "namespace": DNS_SERVICE_NAMESPACE,
                     "labels": {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true",
                                "kubernetes.io/name": "KubeDNS", PROXY_NAME_LABEL: "kubeling-dns"}},
        "spec": {"clusterIP": cluster_ip, "clusterIPs": [cluster_ip],
                 "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                           {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}]},
    }


class ClusterDNS:
    """Serves the cluster's DNS from informers on the API server; `run()` until `stop()`."""

    retry_initial = 0.5
    retry_max = 30.0

    def __init__(self, client: KubeClient, *, listen_ip: str = "127.43.0.10", port: int = 53,
                 domain: str = "cluster.local", upstreams: list[Upstream] | None = None,
                 fallback_port: int | None = 10053, service_cidr: str = "127.43.0.0/16",
                 manage_service: bool = True, resolv_conf_path: str = "/etc/resolv.conf",
                 local_address: bool = False) -> None:
        self.client = client
        self.local_address = local_address  # root mode: put listen_ip on the node's lo (localaddr.py)
        self._added_address = False
        self.listen_ip = listen_ip
        self.port = port
        self.fallback_port = fallback_port
        self.domain = domain
        self.manage_service = manage_service
        self.store = RecordStore(domain, service_cidr=service_cidr, dns_ip=listen_ip)
        if upstreams is None:
            upstreams = host_resolvers(resolv_conf_path, exclude=(listen_ip,))
        self.forwarder = Forwarder(upstreams)
        self.server: DNSServer | None = None
        self.ready = asyncio.Event()  # bound and informers synced
        self._stop = asyncio.Event()
        self._informers: list[Informer] = []

    async def run(self) -> None:
        """Bind, sync the informers, publish the kube-dns Service and serve until `stop()`."""
        self._stop.clear()
        service_task: asyncio.Task[None] | None = None
        stopping: asyncio.Task[bool] | None = None
        try:
            if self.local_address:
                self._added_address = await add_local_address(self.listen_ip)
            self.server = await self._bind()
            self._informers = [self._informer(SERVICES, self.store.upsert_service, self.store.delete_service),
                               self._informer(ENDPOINTSLICES, self.store.upsert_slice, self.store.delete_slice),
                               self._informer(PODS, self.store.upsert_pod, self.store.delete_pod)]
            for informer in self._informers:
                await informer.start()
            if self.manage_service:
                service_task = asyncio.create_task(self._ensure_service(), name="dns:kube-dns-service")
                service_task.add_done_callback(_log_failure)
            synced = asyncio.gather(*(i.wait_synced() for i in self._informers))
            stopping = asyncio.create_task(self._stop.wait())
            await asyncio.wait([synced, stopping], return_when=asyncio.FIRST_COMPLETED)
            if synced.done():
                self.ready.set()
                log.info("cluster DNS serving %s on %s:%d (udp+tcp)", self.domain, self.listen_ip,
                         self.server.port)
            else:
                synced.cancel()
            await stopping
        finally:
            self.ready.clear()
            if stopping is not None:
                stopping.cancel()
            if service_task is not None:
                service_task.cancel()
                with contextlib.suppress(BaseException):
                    await service_task
            for informer in self._informers:
                await informer.stop()
            self._informers = []
            if self.server is not None:
                await self.server.close()
            if self._added_address:
                await remove_local_address(self.listen_ip)
                self._added_address = False

    async def stop(self) -> None:
        """Ask `run()` to end; it closes the sockets and informers on its way out."""
        self._stop.set()

    # -- parts --------------------------------------------------------------------------------

    def _informer(self, res: Any, upsert: Any, delete: Any) -> Informer:
        informer = Informer(self.client, res)
        informer.add_handler(on_add=upsert, on_update=lambda _old, new: upsert(new), on_delete=delete)
        return informer

    async def _bind(self) -> DNSServer:
        server = DNSServer(self.store, self.forwarder, host=self.listen_ip, port=self.port)
        try:
            await server.start()
            return server
        except OSError as exc:
            if self.fallback_port is None or self.fallback_port == self.port:
                raise
            reason = ("binding port 53 needs root or CAP_NET_BIND_SERVICE" if exc.errno == errno.EACCES
                      else exc.strerror)
            log.warning("cluster DNS cannot listen on %s:%d (%s); serving on port %d instead — pods cannot "
                        "use it through resolv.conf in this mode (no-root limitation)",
                        self.listen_ip, self.port, reason, self.fallback_port)
        server = DNSServer(self.store, self.forwarder, host=self.listen_ip, port=self.fallback_port)
        try:
            await server.start()
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            log.warning("port %d on %s is taken too; cluster DNS takes a free port", self.fallback_port,
                        self.listen_ip)
            server = DNSServer(self.store, self.forwarder, host=self.listen_ip, port=0)
            await server.start()
        return server

    async def _ensure_service(self) -> None:
        """Create kube-system/kube-dns with our address if absent; retry while the API refuses."""
        backoff = self.retry_initial
        while True:
            try:
                current = await self.client.get(SERVICES, DNS_SERVICE_NAME, namespace=DNS_SERVICE_NAMESPACE)
                ip = (current.get("spec") or {}).get("clusterIP")
                if ip != self.listen_ip:
                    log.warning("service %s/%s has clusterIP %s, not the DNS address %s", DNS_SERVICE_NAMESPACE,
                                DNS_SERVICE_NAME, ip, self.listen_ip)
                return
            except StatusError as err:
                if err.code != 404:
                    log.warning("cannot read service %s/%s: %s", DNS_SERVICE_NAMESPACE, DNS_SERVICE_NAME, err)
                else:
                    try:
                        await self.client.create(SERVICES, kube_dns_service(self.listen_ip),
                                                 namespace=DNS_SERVICE_NAMESPACE)
                        log.info("created service %s/%s at %s", DNS_SERVICE_NAMESPACE, DNS_SERVICE_NAME,
                                 self.listen_ip)
                        return
                    except StatusError as create_err:
                        if create_err.code == 409:
                            continue  # someone else created it meanwhile: check it on the next pass
                        # e.g. 422 while the ClusterIP allocator does not know the address yet
                        log.warning("creating service %s/%s failed (%s), retrying in %.1fs",
                                    DNS_SERVICE_NAMESPACE, DNS_SERVICE_NAME, create_err, backoff)
            except APIUnavailable as err:
                log.warning("API server unreachable (%s); retrying kube-dns service in %.1fs", err, backoff)
            await asyncio.sleep(backoff * random.uniform(1.0, 1.2))
            backoff = min(backoff * 2, self.retry_max)


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s died", task.get_name(), exc_info=task.exception())
