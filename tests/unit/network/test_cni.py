"""The CNI runtime against fake plugins (no root): environment, config list, chaining, errors, cache."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from kubeling.network.cni import CNIError, CNIResult, NetworkPlugin
from kubeling.network.podnetwork import PodNetwork

FAKE = r'''#!{python}
import json, os, sys
conf = json.load(sys.stdin)
env = {k: v for k, v in os.environ.items() if k.startswith("CNI_")}
with open(os.environ["FAKE_LOG"], "a") as f:
    f.write(json.dumps({"plugin": os.path.basename(sys.argv[0]), "env": env, "conf": conf}) + "\n")
cmd = env["CNI_COMMAND"]
if cmd == "VERSION":
    print(json.dumps({"cniVersion": "1.0.0", "supportedVersions": ["0.4.0", "1.0.0"]}))
    sys.exit(0)
fail = conf.get("fail", {}).get(cmd)
if fail == "garbage":
    sys.stderr.write("plugin exploded\n")
    sys.exit(2)
if fail:
    print(json.dumps(fail))
    sys.exit(1)
if cmd == "ADD":
    res = conf.get("prevResult") or {"cniVersion": conf["cniVersion"], "interfaces": [], "ips": []}
    res["interfaces"] = res.get("interfaces", []) + conf.get("addInterfaces", [])
    res["ips"] = res.get("ips", []) + conf.get("addIps", [])
    print(json.dumps(res))
'''


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "bin"
    d.mkdir()
    for name in ("first", "second", "third"):
        p = d / name
        p.write_text(FAKE.replace("{python}", sys.executable))
        p.chmod(p.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("FAKE_LOG", str(tmp_path / "log.jsonl"))
    return d


def calls(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "log.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def conf_list(**extra: Any) -> dict[str, Any]:
    return {"cniVersion": "1.0.0", "name": "testnet", "plugins": [
        {"type": "first", "addInterfaces": [{"name": "eth0", "mac": "aa:bb", "sandbox": "/run/netns/x"}],
         "addIps": [{"address": "10.42.0.5/24", "gateway": "10.42.0.1", "interface": 0}],
         **extra.get("first", {})},
        {"type": "second", "capabilities": {"portMappings": True}, **extra.get("second", {})},
        {"type": "third", "runtimeConfig": {"stale": True}, **extra.get("third", {})},
    ]}


async def test_add_chains_prev_result_and_sets_env(bin_dir: Path, tmp_path: Path) -> None:
    plugin = NetworkPlugin(conf_list(), [str(bin_dir)], cache_dir=str(tmp_path / "cache"))
    pm = [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]
    res = await plugin.add("cid1", "/run/netns/x", "eth0", {"portMappings": pm, "bandwidth": {}},
                           cni_args={"K8S_POD_NAME": "web"})
    assert res.pod_ip() == "10.42.0.5" and res.ips[0].gateway == "10.42.0.1"
    assert res.interfaces[0].sandbox == "/run/netns/x"
    log = calls(tmp_path)
    assert [c["plugin"] for c in log] == ["first", "second", "third"]
    env = log[0]["env"]
    assert env["CNI_COMMAND"] == "ADD" and env["CNI_CONTAINERID"] == "cid1"
    assert env["CNI_NETNS"] == "/run/netns/x" and env["CNI_IFNAME"] == "eth0"
    assert env["CNI_PATH"] == str(bin_dir) and env["CNI_ARGS"] == "K8S_POD_NAME=web"
    first, second, third = (c["conf"] for c in log)
    assert first["name"] == "testnet" and first["cniVersion"] == "1.0.0"
    assert "prevResult" not in first and "runtimeConfig" not in first
    # Only the declared capability reaches runtimeConfig; stale static runtimeConfig is dropped.
    assert second["runtimeConfig"] == {"portMappings": pm}
    assert "runtimeConfig" not in third
    assert second["prevResult"]["ips"][0]["address"] == "10.42.0.5/24"
    assert (tmp_path / "cache" / "testnet-cid1-eth0.json").exists()


async def test_del_reverse_order_with_cached_result(bin_dir: Path, tmp_path: Path) -> None:
    plugin = NetworkPlugin(conf_list(), [str(bin_dir)], cache_dir=str(tmp_path / "cache"))
    await plugin.add("cid", "/run/netns/x", "eth0", {"portMappings": [{"hostPort": 1}]})
    # A fresh runtime instance (kubelet restart) still finds the result on disk.
    again = NetworkPlugin(conf_list(), [str(bin_dir)], cache_dir=str(tmp_path / "cache"))
    await again.check("cid", "/run/netns/x")
    await again.delete("cid", "/run/netns/x")
    log = calls(tmp_path)
    dels = [c for c in log if c["env"]["CNI_COMMAND"] == "DEL"]
    checks = [c for c in log if c["env"]["CNI_COMMAND"] == "CHECK"]
    assert [c["plugin"] for c in checks] == ["first", "second", "third"]
    assert [c["plugin"] for c in dels] == ["third", "second", "first"]
    assert all(c["conf"]["prevResult"]["ips"][0]["address"] == "10.42.0.5/24" for c in dels + checks)
    assert dels[1]["conf"]["runtimeConfig"] == {"portMappings": [{"hostPort": 1}]}
    assert again.cached_result("cid") is None
    assert not (tmp_path / "cache" / "testnet-cid-eth0.json").exists()
    with pytest.raises(CNIError) as ei:
        await again.check("cid", "/run/netns/x")
    assert ei.value.code == 3


async def test_error_json_maps_to_cnierror_and_add_rolls_back(bin_dir: Path, tmp_path: Path) -> None:
    err = {"cniVersion": "1.0.0", "code": 11, "msg": "try again", "details": "ipam busy"}
    plugin = NetworkPlugin(conf_list(second={"fail": {"ADD": err}}), [str(bin_dir)])
    with pytest.raises(CNIError) as ei:
        await plugin.add("cid", "/run/netns/x")
    e = ei.value
    assert (e.code, e.msg, e.details, e.plugin, e.command) == (11, "try again", "ipam busy", "second", "ADD")
    cmds = [(c["plugin"], c["env"]["CNI_COMMAND"]) for c in calls(tmp_path)]
    assert cmds == [("first", "ADD"), ("second", "ADD"),
                    ("third", "DEL"), ("second", "DEL"), ("first", "DEL")]
    assert plugin.cached_result("cid") is None


async def test_non_json_failure_and_missing_plugin(bin_dir: Path) -> None:
    plugin = NetworkPlugin(conf_list(first={"fail": {"ADD": "garbage"}}), [str(bin_dir)])
    with pytest.raises(CNIError, match="plugin exploded") as ei:
        await plugin.add("cid", "/run/netns/x")
    assert ei.value.code == 999
    missing = NetworkPlugin({"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "nope"}]}, [str(bin_dir)])
    with pytest.raises(CNIError, match="failed to find plugin"):
        await missing.add("cid", "/run/netns/x")
    with pytest.raises(CNIError):
        NetworkPlugin({"cniVersion": "1.0.0", "name": "n", "plugins": []})


async def test_delete_tries_every_plugin_and_version(bin_dir: Path, tmp_path: Path) -> None:
    plugin = NetworkPlugin(conf_list(third={"fail": {"DEL": {"code": 5, "msg": "io"}}}), [str(bin_dir)])
    with pytest.raises(CNIError, match="io"):
        await plugin.delete("cid", "")
    assert [c["plugin"] for c in calls(tmp_path)] == ["third", "second", "first"]
    assert (await plugin.version("first"))["supportedVersions"] == ["0.4.0", "1.0.0"]
    env = calls(tmp_path)[-1]["env"]
    assert env["CNI_COMMAND"] == "VERSION" and "CNI_CONTAINERID" not in env


def test_result_parsing_picks_sandbox_ipv4() -> None:
    res = CNIResult.from_dict({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "kubeling0", "mac": "m0"}, {"name": "veth1", "mac": "m1"},
                       {"name": "eth0", "mac": "m2", "sandbox": "/run/netns/p"}],
        "ips": [{"address": "fd00::5/64", "interface": 2}, {"address": "10.0.0.1/24", "interface": 0},
                {"address": "10.42.3.9/24", "gateway": "10.42.3.1", "interface": 2}],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dns": {"nameservers": ["10.43.0.10"], "search": ["svc.cluster.local"]},
    })
    assert res.pod_ips() == ["fd00::5", "10.42.3.9"] and res.pod_ip() == "10.42.3.9"
    assert res.routes[0].dst == "0.0.0.0/0" and res.dns.nameservers == ["10.43.0.10"]
    assert res.raw["cniVersion"] == "1.0.0"


def test_pod_network_conf_list(tmp_path: Path) -> None:
    net = PodNetwork("10.42.5.0/24", conf_dir=str(tmp_path), bin_dirs=["/nowhere"])
    conf = net.conf_list
    assert conf["cniVersion"] == "1.0.0" and net.gateway == "10.42.5.1"
    bridge, portmap = conf["plugins"]
    assert bridge["type"] == "bridge" and bridge["bridge"] == "kubeling0"
    assert bridge["isGateway"] and bridge["ipMasq"] and bridge["hairpinMode"]
    assert bridge["ipam"]["type"] == "host-local"
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.42.5.0/24", "gateway": "10.42.5.1"}]]
    assert bridge["ipam"]["dataDir"] == os.path.join(str(tmp_path), "ipam")
    assert portmap == {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}
    assert net.loopback.conf_list["plugins"] == [{"type": "loopback"}]
    # With the cluster CIDR known, masquerading moves to one node rule (pod-to-pod without NAT).
    assert not PodNetwork("10.42.5.0/24", conf_dir=str(tmp_path), cluster_cidr="10.42.0.0/16"
                          ).conf_list["plugins"][0]["ipMasq"]
    with pytest.raises(ValueError):
        PodNetwork("10.42.5.1/24", conf_dir=str(tmp_path))
    with pytest.raises(ValueError):
        PodNetwork("fd00::/64", conf_dir=str(tmp_path))
