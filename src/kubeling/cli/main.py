"""The `kubeling` command."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from kubeling import __version__
from kubeling.cli import kubeconfig, network
from kubeling.cli.network import DEFAULT_CLUSTER_CIDR, POD_NETWORKS, PROXY_MODES, NetworkMode

if TYPE_CHECKING:
    from kubeling.cli.node import NodeOptions


def _server_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, default=None, help="state directory (default: $KUBELING_HOME, "
                   "~/.local/share/kubeling, or /var/lib/kubeling as root)")
    p.add_argument("--port", type=int, default=6443, help="API server port (default 6443)")
    p.add_argument("--bind", default="127.0.0.1", help="API server address (default 127.0.0.1)")
    p.add_argument("--no-merge-kubeconfig", action="store_true",
                   help="do not merge the kubeling context into $KUBECONFIG or ~/.kube/config")
    p.add_argument("--controller-option", action="append", default=[], metavar="KEY=VALUE",
                   help="set a controller-manager option, e.g. node_monitor_grace_period=5 or "
                        "pod_eviction_timeout=5 (repeatable; numeric values become numbers)")
    p.add_argument("--service-cidr", default=None,
                   help="range of Service ClusterIPs (default 10.43.0.0/16 with the CNI pod network, "
                        "127.43.0.0/16, a loopback range, in the no-root mode)")
    p.add_argument("--cluster-cidr", default=DEFAULT_CLUSTER_CIDR,
                   help=f"range of pod IPs; each node gets a /24 of it (default {DEFAULT_CLUSTER_CIDR})")
    p.add_argument("--service-node-port-range", default="30000-32767",
                   help="range of NodePorts (default 30000-32767)")


def _node_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--node-name", default="", help="node name (default: the host name)")
    p.add_argument("--node-address", default="",
                   help="the node's InternalIP, where its kubelet serves (default: 127.0.0.1 without the CNI "
                        "pod network, else the address of the default-route interface)")
    p.add_argument("--pod-network", default="auto", choices=POD_NETWORKS,
                   help="cni: a network namespace per pod wired by CNI (needs root); host: the host network "
                        "with a loopback address per pod; auto (default): cni when this host allows it")
    p.add_argument("--proxy-mode", default="auto", choices=PROXY_MODES,
                   help="Service proxy: nftables (with the CNI pod network) or userspace; auto (default) "
                        "follows the pod network")
    p.add_argument("--disable", action="append", default=[], choices=["proxy", "dns"],
                   help="do not run this node component (repeatable), e.g. to run `kubeling proxy` apart")
    p.add_argument("--kubelet-port", type=int, default=10250,
                   help="kubelet port (default 10250; a free port is chosen when it is taken)")
    p.add_argument("--pod-ip-range", default="", help="loopback range for pod IPs (no-root mode)")
    p.add_argument("--kubelet-option", action="append", default=[], metavar="KEY=VALUE",
                   help="set a kubelet option, e.g. backoff_base=1 (repeatable)")


def _network_mode(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[NetworkMode, str]:
    """(network mode, node address) from --pod-network, --proxy-mode and --node-address."""
    try:
        return network.resolve_node(args.pod_network, args.proxy_mode, args.node_address)
    except network.NetworkModeError as exc:
        parser.exit(2, f"kubeling: {exc}\n")


def _node_options(parser: argparse.ArgumentParser, args: argparse.Namespace, mode: NetworkMode, address: str,
                  service_cidr: str | None) -> NodeOptions:
    from kubeling.cli.node import DNSOptions, NodeOptions
    kubelet = _controller_options(parser, args.kubelet_option, flag="--kubelet-option")
    opts = NodeOptions(node_name=args.node_name, address=address, kubelet_port=args.kubelet_port,
                       pod_ip_range=args.pod_ip_range, kubelet=kubelet, pod_network=mode.pod_network,
                       proxy_mode=mode.proxy_mode, cluster_cidr=getattr(args, "cluster_cidr", DEFAULT_CLUSTER_CIDR),
                       disable=set(args.disable), mode_reason=mode.reason)
    if service_cidr:
        # Cluster DNS lives at the .10 of the service range, and pods are told so.
        from kubeling.dns import dns_service_ip
        opts.dns = DNSOptions(service_cidr=service_cidr, local_address=mode.root,
                              fallback_port=None if mode.root else 10053)
        kubelet.setdefault("cluster_dns", [dns_service_ip(service_cidr)])
    return opts


def _option_value(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _controller_options(parser: argparse.ArgumentParser, pairs: list[str],
                        flag: str = "--controller-option") -> dict[str, int | float | str]:
    options: dict[str, int | float | str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            parser.error(f"{flag} expects KEY=VALUE, got {pair!r}")
        options[key.strip()] = _option_value(value.strip())
    return options


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kubeling", description="A Kubernetes-compatible orchestrator.")
    parser.add_argument("--version", action="version", version=f"kubeling {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run everything on this machine: control plane and a local node")
    _server_args(up)
    _node_args(up)
    server = sub.add_parser("server", help="run the control plane: API server, scheduler, controller manager")
    _server_args(server)
    for p in (up, server):
        p.add_argument("--scheduler-config", default=None,
                       help="KubeSchedulerConfiguration file (profiles, plugins, scoring strategy)")
    agent = sub.add_parser("agent", help="join this machine to a cluster as a node")
    agent.add_argument("--server", required=True, help="the API server URL, e.g. http://127.0.0.1:6443")
    agent.add_argument("--token", required=True, help="the join token (the server's <data-dir>/token)")
    agent.add_argument("--data-dir", type=Path, default=None, help="this node's state directory")
    agent.add_argument("--cluster-cidr", default=DEFAULT_CLUSTER_CIDR,
                       help=f"the cluster's pod range (not masqueraded between nodes; default {DEFAULT_CLUSTER_CIDR})")
    _node_args(agent)
    proxy = sub.add_parser("proxy", help="run only the Service proxy of a node (like kube-proxy)")
    proxy.add_argument("--server", default="", help="the API server URL (required unless --cleanup)")
    proxy.add_argument("--token", default="", help="the join token (the server's <data-dir>/token)")
    proxy.add_argument("--node-name", default="", help="node name (default: the host name)")
    proxy.add_argument("--node-address", default="", help="the node's address (as for `kubeling agent`)")
    proxy.add_argument("--pod-network", default="auto", choices=POD_NETWORKS,
                       help="the node's pod network, which decides the proxy mode under auto")
    proxy.add_argument("--proxy-mode", default="auto", choices=PROXY_MODES)
    proxy.add_argument("--cluster-cidr", default=DEFAULT_CLUSTER_CIDR)
    proxy.add_argument("--no-service-lb", action="store_true", help="do not run ServiceLB beside the proxy")
    proxy.add_argument("--cleanup", action="store_true",
                       help="remove the rules a previous nftables proxy left, then exit")
    sim = sub.add_parser("simulate", help="register N simulated nodes whose pods run instantly",
                         description="Register N simulated nodes whose bound pods run at once. Pods with "
                                     "restartPolicy Never or OnFailure (Job pods) run for --complete-after "
                                     "seconds, then succeed (exit code 0, reason Completed).")
    sim.add_argument("--kubeconfig", required=True)
    sim.add_argument("--nodes", type=int, required=True)
    sim.add_argument("--cpu", default="4")
    sim.add_argument("--memory", default="8Gi")
    sim.add_argument("--pods", type=int, default=110)
    sim.add_argument("--name-prefix", default="sim")
    sim.add_argument("--complete-after", type=float, default=1.0, metavar="SECONDS",
                     help="seconds a pod with restartPolicy Never or OnFailure runs before it succeeds "
                          "(default 1.0)")
    ex = sub.add_parser("explain", help="explain the scheduler's last decision for a pod")
    ex.add_argument("kind", choices=["pod", "pods", "po"], help="what to explain (pods only)")
    ex.add_argument("name")
    ex.add_argument("-n", "--namespace", default="default")
    ex.add_argument("--kubeconfig", type=Path, default=None,
                    help="kubeconfig (default: <data dir>/kubeconfig.yaml, as `kubeling kubectl` uses)")
    kc = sub.add_parser("kubectl", help="run kubectl against this cluster", add_help=False)
    kc.add_argument("args", nargs=argparse.REMAINDER)
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "kubectl":
        return run_kubectl(argv[1:])
    args = parser.parse_args(argv)
    if args.command in ("up", "server"):
        from kubeling.cli.server import ServerOptions, run
        data_dir = args.data_dir or kubeconfig.default_data_dir()
        node = None
        if args.command == "up":
            mode, address = _network_mode(parser, args)
            service_cidr = args.service_cidr or mode.default_service_cidr()
            node = _node_options(parser, args, mode, address, service_cidr)
        else:  # the control plane alone: the range follows what this host's nodes would choose
            service_cidr = args.service_cidr or network.host_default_service_cidr()
        controller_options = _controller_options(parser, args.controller_option)
        controller_options.setdefault("cluster_cidr", args.cluster_cidr)
        return run(data_dir, args.bind, args.port, merge_kubeconfig=not args.no_merge_kubeconfig,
                   options=ServerOptions(scheduler_config=args.scheduler_config,
                                         controller_options=controller_options,
                                         node=node, service_cidr=service_cidr,
                                         node_port_range=args.service_node_port_range))
    if args.command == "agent":
        from kubeling.cli import agent as agent_cli
        mode, address = _network_mode(parser, args)
        opts = _node_options(parser, args, mode, address, None)
        data_dir = args.data_dir or kubeconfig.default_data_dir() / "agent" / opts.resolved_name()
        return agent_cli.run(args.server, args.token, data_dir, opts)
    if args.command == "proxy":
        from kubeling.cli import proxy as proxy_cli
        if args.cleanup:
            return proxy_cli.cleanup()
        if not args.server or not args.token:
            parser.error("kubeling proxy needs --server and --token (or --cleanup)")
        mode, address = _network_mode(parser, args)
        return proxy_cli.run(args.server, args.token, node_name=args.node_name, address=address, mode=mode,
                             cluster_cidr=args.cluster_cidr, service_lb=not args.no_service_lb)
    if args.command == "simulate":
        from kubeling.cli import simulate
        if args.nodes < 1:
            parser.error("--nodes must be at least 1")
        if args.complete_after < 0:
            parser.error("--complete-after must not be negative")
        return simulate.run(args.kubeconfig, args.nodes, cpu=args.cpu, memory=args.memory, pods=args.pods,
                            prefix=args.name_prefix, complete_after=args.complete_after)
    if args.command == "explain":
        from kubeling.cli import explain
        path = args.kubeconfig or kubeconfig.default_data_dir() / "kubeconfig.yaml"
        return explain.run(args.name, namespace=args.namespace, kubeconfig=path)
    parser.error(f"unknown command {args.command}")
    return 2


def run_kubectl(args: list[str]) -> int:
    binary = shutil.which("kubectl")
    if binary is None:
        print("kubeling: kubectl is not installed or not on PATH; install it from "
              "https://kubernetes.io/docs/tasks/tools/", file=sys.stderr)
        return 127
    path = kubeconfig.default_data_dir() / "kubeconfig.yaml"
    if not path.exists():
        print(f"kubeling: no cluster kubeconfig at {path}; start one with `kubeling up`", file=sys.stderr)
        return 1
    os.execvp(binary, [binary, "--kubeconfig", str(path), *args])
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
