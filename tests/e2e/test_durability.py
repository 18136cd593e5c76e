"""kill -9 the server during a burst of creates: every create answered 201 survives."""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from .conftest import Server

pytestmark = pytest.mark.e2e


def _create(url: str, name: str) -> int:
    body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name},
                       "data": {"n": name}}).encode()
    req = urllib.request.Request(f"{url}/api/v1/namespaces/default/configmaps", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0


def test_kill9_during_creates_loses_nothing_acknowledged(tmp_path: Path) -> None:
    srv = Server(tmp_path / "data")
    acknowledged: list[str] = []
    try:
        for round_ in range(3):
            srv.start()
            stop = threading.Event()
            lock = threading.Lock()

            def writer(worker: int, round_: int = round_, stop: threading.Event = stop,
                       lock: threading.Lock = lock) -> None:
                i = 0
                while not stop.is_set():
                    name = f"r{round_}-w{worker}-{i}"
                    if _create(srv.url, name) == 201:
                        with lock:
                            acknowledged.append(name)
                    i += 1
            threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
            for t in threads:
                t.start()
            time.sleep(1.0 + 0.3 * round_)
            srv.kill9()
            stop.set()
            for t in threads:
                t.join()
        srv.start()
        with urllib.request.urlopen(f"{srv.url}/api/v1/namespaces/default/configmaps") as resp:
            items = json.loads(resp.read())["items"]
        present = {i["metadata"]["name"] for i in items}
        missing = [n for n in acknowledged if n not in present]
        assert len(acknowledged) > 100
        assert not missing, f"{len(missing)} acknowledged creates lost, e.g. {missing[:5]}"
        for i in items:  # consistent: every stored object decodes and has its own data
            assert i["data"]["n"] == i["metadata"]["name"]
            assert int(i["metadata"]["resourceVersion"]) > 0
    finally:
        srv.stop(signal.SIGTERM)


def test_sigterm_exits_zero_and_restart_keeps_objects(tmp_path: Path) -> None:
    srv = Server(tmp_path / "data")
    srv.start()
    try:
        assert _create(srv.url, "keep-me") == 201
        assert srv.stop(signal.SIGTERM) == 0
        srv.start()
        with urllib.request.urlopen(f"{srv.url}/api/v1/namespaces/default/configmaps/keep-me") as resp:
            assert json.loads(resp.read())["data"] == {"n": "keep-me"}
    finally:
        srv.stop()


def test_port_taken_is_one_line_and_nonzero(tmp_path: Path) -> None:
    import subprocess
    import sys

    first = Server(tmp_path / "a")
    first.start()
    try:
        res = subprocess.run([sys.executable, "-m", "kubeling", "server", "--data-dir", str(tmp_path / "b"),
                              "--port", str(first.port), "--no-merge-kubeconfig"],
                             capture_output=True, text=True, timeout=30)
        assert res.returncode == 1
        assert f"kubeling: port {first.port} on 127.0.0.1 is already in use" in res.stderr
    finally:
        first.stop()
