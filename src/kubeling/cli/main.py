"""The `kubeling` command."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from kubeling import __version__
from kubeling.cli import kubeconfig

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
    p.add_argument("--service-cidr", default="127.43.0.0/16",
                   help="range of Service ClusterIPs (default 127.43.0.0/16, a loopback range for the no-root mode)")
    p.add_argument("--service-node-port-range", default="30000-32767",
                   help="range of NodePorts (default 30000-32767)")


def _node_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--node-name", default="", help="node name (default: the host name)")
    p.add_argument("--node-address", default="127.0.0.1", help="address the node's kubelet serves on")
    p.add_argument("--kubelet-port", type=int, default=10250,
                   help="kubelet port (default 10250; a free port is chosen when it is taken)")
    p.add_argument("--pod-ip-range", default="", help="loopback range for pod IPs (no-root mode)")
    p.add_argument("--kubelet-option", action="append", default=[], metavar="KEY=VALUE",
                   help="set a kubelet option, e.g. backoff_base=1 (repeatable)")


def _node_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> NodeOptions:
    from kubeling.cli.node import DNSOptions, NodeOptions
    kubelet = _controller_options(parser, args.kubelet_option, flag="--kubelet-option")
    opts = NodeOptions(node_name=args.node_name, address=args.node_address, kubelet_port=args.kubelet_port,
                       pod_ip_range=args.pod_ip_range, kubelet=kubelet)
    service_cidr = getattr(args, "service_cidr", None)
    if service_cidr:
        # Cluster DNS lives at the .10 of the service range, and pods are told so.
        from kubeling.dns import dns_service_ip
        opts.dns = DNSOptions(service_cidr=service_cidr)
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
    _node_args(agent)
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
        node = _node_options(parser, args) if args.command == "up" else None
        return run(data_dir, args.bind, args.port, merge_kubeconfig=not args.no_merge_kubeconfig,
                   options=ServerOptions(scheduler_config=args.scheduler_config,
                                         controller_options=_controller_options(parser, args.controller_option),
                                         node=node, service_cidr=args.service_cidr,
                                         node_port_range=args.service_node_port_range))
    if args.command == "agent":
        from kubeling.cli import agent as agent_cli
        opts = _node_options(parser, args)
        data_dir = args.data_dir or kubeconfig.default_data_dir() / "agent" / opts.resolved_name()
        return agent_cli.run(args.server, args.token, data_dir, opts)
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
