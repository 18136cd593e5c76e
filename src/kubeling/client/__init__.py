"""The client layer: how every component talks to the API server.

`KubeClient` (REST), `Informer` (list + watch into an indexed cache),
`WorkQueue` (deduplicated, rate-limited keys), `LeaderElector` (Lease-based)
and `EventRecorder`. This package knows nothing of controllers, the scheduler
or the kubelet; they build on it.
"""

from kubeling.api.errors import StatusError
from kubeling.client.cache import Indexer, label_index, meta_key, split_key
from kubeling.client.errors import APIUnavailable, errors_from_status
from kubeling.client.events import EventRecorder
from kubeling.client.informer import Informer
from kubeling.client.leaderelection import LeaderElector, LostLeadership
from kubeling.client.resources import Resource, resource_for_kind
from kubeling.client.rest import KubeClient
from kubeling.client.workqueue import ShutDown, WorkQueue, run_workers

__all__ = [
    "APIUnavailable", "EventRecorder", "Indexer", "Informer", "KubeClient", "LeaderElector", "LostLeadership",
    "Resource", "ShutDown", "StatusError", "WorkQueue", "errors_from_status", "label_index", "meta_key",
    "resource_for_kind", "run_workers", "split_key",
]
