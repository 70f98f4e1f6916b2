"""Distribution's ``health`` section on a running server: each check (file, storage driver, TCP,
HTTP) flips ``/debug/health`` and the API to 503 while it fails and back to 200 by itself, in
the background; a health config it cannot honour, and malformed ``notifications`` endpoints,
stop ``regtui serve`` with one line.

Before this, ``health.file``, ``health.http`` and ``health.tcp`` were warned about and ignored,
and ``health.storagedriver`` was parsed but not honoured (``/v2/`` stayed 200 with the storage
gone)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.servers import bundled_registry, free_port, server_env
from tests.server.test_config_fail_closed import _assert_one_line, _start

pytestmark = pytest.mark.timeout(90)

UNHEALTHY_DETAIL = "health check failed: please see /debug/health"


def wait_for(predicate: Callable[[], bool], timeout: float = 15.0) -> float:
    """Seconds until ``predicate`` holds (fail after ``timeout``)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.05)
    pytest.fail("condition not reached in time")


def status(url: str) -> int:
    return httpx.get(url, timeout=5).status_code


def assert_unhealthy(url: str, check: str, error: str) -> None:
    report = httpx.get(f"{url}/debug/health", timeout=5)
    assert report.status_code == 503
    assert report.headers["Content-Type"].startswith("application/json")
    assert report.json() == {check: error}
    for path in ("/v2/", "/v2/_catalog", "/v2/app/tags/list"):
        api = httpx.get(f"{url}{path}", timeout=5)
        assert api.status_code == 503, path
        (entry,) = api.json()["errors"]
        assert entry["code"] == "UNAVAILABLE" and entry["detail"] == UNHEALTHY_DETAIL


def assert_healthy(url: str) -> None:
    report = httpx.get(f"{url}/debug/health", timeout=5)
    assert report.status_code == 200 and report.json() == {}
    assert status(f"{url}/v2/") == 200


def test_file_check_takes_the_replica_out_while_the_file_exists(tmp_path: Path) -> None:
    down = tmp_path / "maintenance"
    config = {"health": {"file": [{"file": str(down), "interval": "100ms"}]}}
    with bundled_registry(tmp_path / "registry", config=config) as registry:
        assert_healthy(registry.url)
        for _ in range(2):  # a file that appears and disappears, twice
            down.write_text("")
            wait_for(lambda: status(f"{registry.url}/debug/health") == 503)
            assert_unhealthy(registry.url, str(down), "file exists")
            down.unlink()
            wait_for(lambda: status(f"{registry.url}/v2/") == 200)
            assert_healthy(registry.url)
        assert registry.process.poll() is None


def test_storagedriver_check_fails_after_threshold_consecutive_failures(tmp_path: Path) -> None:
    interval, threshold = 0.4, 3
    config = {
        "health": {
            "storagedriver": {"enabled": True, "interval": f"{interval}s", "threshold": threshold}
        }
    }
    root = tmp_path / "registry"
    with bundled_registry(root, config=config) as registry:
        assert_healthy(registry.url)
        away = tmp_path / "moved-away"
        root.rename(away)  # the volume goes (root ignores chmod: the directory must go)
        took = wait_for(lambda: status(f"{registry.url}/debug/health") == 503)
        # threshold 3 at 0.4 s: the third failing check, at least 2 intervals after the break
        assert took >= (threshold - 1) * interval - 0.05, took
        report = httpx.get(f"{registry.url}/debug/health").json()
        assert list(report) == ["storagedriver_filesystem"]
        assert "not readable" in report["storagedriver_filesystem"]
        assert status(f"{registry.url}/v2/") == 503
        away.rename(root)  # it comes back by itself at the first passing check
        wait_for(lambda: status(f"{registry.url}/v2/") == 200, timeout=5)
        assert_healthy(registry.url)


def test_storagedriver_check_disabled_keeps_serving(tmp_path: Path) -> None:
    config = {"health": {"storagedriver": {"enabled": False}}}
    root = tmp_path / "registry"
    with bundled_registry(root, config=config) as registry:
        shutil.rmtree(root / "docker")
        time.sleep(0.5)
        assert status(f"{registry.url}/debug/health") == 200
        assert status(f"{registry.url}/v2/") == 200


def _listener(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(16)
    return sock


def test_tcp_check_follows_a_port_that_closes_and_opens(tmp_path: Path) -> None:
    port = free_port()
    addr = f"127.0.0.1:{port}"
    upstream = _listener(port)
    config = {"health": {"tcp": [{"addr": addr, "interval": "100ms", "timeout": "1s"}]}}
    with bundled_registry(tmp_path / "registry", config=config) as registry:
        assert_healthy(registry.url)
        upstream.close()
        wait_for(lambda: status(f"{registry.url}/debug/health") == 503)
        assert_unhealthy(registry.url, addr, f"connection to {addr} failed")
        upstream = _listener(port)
        wait_for(lambda: status(f"{registry.url}/v2/") == 200)
        assert_healthy(registry.url)
    upstream.close()


class _Downstream:
    """A real HTTP server whose answer to HEAD the test flips; it records the headers seen."""

    def __init__(self) -> None:
        self.status = 200
        self.seen: list[dict[str, str]] = []
        downstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                downstream.seen.append(dict(self.headers))
                self.send_response(downstream.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ready"


@contextmanager
def downstream_server() -> Iterator[_Downstream]:
    downstream = _Downstream()
    thread = threading.Thread(target=downstream.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield downstream
    finally:
        downstream.server.shutdown()
        downstream.server.server_close()


def test_http_check_follows_the_downstream_status(tmp_path: Path) -> None:
    with downstream_server() as downstream:
        check = {
            "uri": downstream.url,
            "headers": {"Authorization": ["Bearer probe"]},
            "interval": "100ms",
            "timeout": "2s",
            "threshold": 2,
        }
        config = {"health": {"http": [check]}}
        with bundled_registry(tmp_path / "registry", config=config) as registry:
            assert_healthy(registry.url)
            downstream.status = 500
            wait_for(lambda: status(f"{registry.url}/debug/health") == 503)
            assert_unhealthy(
                registry.url, downstream.url, "downstream service returned unexpected status: 500"
            )
            downstream.status = 200
            wait_for(lambda: status(f"{registry.url}/v2/") == 200)
            assert_healthy(registry.url)
        assert downstream.seen and downstream.seen[-1]["Authorization"] == "Bearer probe"


def test_http_check_with_an_expected_status_other_than_200(tmp_path: Path) -> None:
    with downstream_server() as downstream:
        downstream.status = 204
        check = {"uri": downstream.url, "statuscode": 204, "interval": "100ms"}
        with bundled_registry(tmp_path / "registry", config={"health": {"http": [check]}}) as reg:
            time.sleep(0.4)
            assert_healthy(reg.url)
            downstream.status = 200
            wait_for(lambda: status(f"{reg.url}/debug/health") == 503)


REFUSED: list[tuple[str, str]] = [
    ("health:\n  file: /tmp/down\n", "health.file"),
    ("health:\n  file:\n    - {interval: 1s}\n", "needs file"),
    ("health:\n  file:\n    - {file: /x, interval: soon}\n", "health.file"),
    ("health:\n  file:\n    - {file: /x, period: 1s}\n", "unknown key period"),
    ("health:\n  http:\n    - {interval: 1s}\n", "needs uri"),
    ("health:\n  http:\n    - {uri: 'ftp://x/'}\n", "health.http"),
    ("health:\n  http:\n    - {uri: 'http://x/', statuscode: 42}\n", "statuscode 42"),
    ("health:\n  tcp:\n    - {addr: nohost}\n", "health.tcp"),
    ("health:\n  tcp:\n    - {addr: 'x:1', threshold: -1}\n", "threshold"),
    ("health:\n  storagedriver: {enabled: maybe}\n", "health.storagedriver.enabled"),
    ("health:\n  storagedriver: {enabled: true, treshold: 3}\n", "health.storagedriver.treshold"),
    ("health:\n  redis: {enabled: true}\n", "health.redis"),
    ("health: [x]\n", "health must be a mapping"),
    ("http:\n  debug: {addr: nope}\n", "http.debug.addr"),
    ("http:\n  debug: {addr: ':0', tls: {}}\n", "http.debug.tls"),
    ("http:\n  debug: {prometheus: {enabled: true}}\n", "needs http.debug.addr"),
    ("http:\n  debug: {addr: ':0', prometheus: {enabled: true, path: metrics}}\n", "path"),
    (
        "notifications:\n  endpoints:\n    - {name: ci, url: 'ftp://127.0.0.1:1/hook'}\n",
        "url must be an http:// or https:// URL",
    ),
    (
        "notifications:\n  endpoints:\n    - {name: a, url: 'http://x/', disabled: true}\n"
        "    - {name: b, url: 'http://y/', treshold: 3}\n",
        "unknown key treshold",
    ),
    ("notifications:\n  endpoints: {name: ci}\n", "expected a list of endpoints"),
    ("notifications:\n  endpoints:\n    - {url: 'http://x/'}\n", "needs a name"),
    ("notifications:\n  endpoints:\n    - {name: a, url: 'http://x/', timeout: soon}\n", "soon"),
    (
        "notifications:\n  endpoints:\n    - {name: a, url: 'http://x/', headers: {A: b}}\n",
        "headers.A must be a list",
    ),
    (
        "notifications:\n  endpoints:\n    - {name: a, url: 'http://x/', "
        "ignore: {actions: [pul]}}\n",
        "'pul' is not one of",
    ),
    (
        "notifications:\n  endpoints:\n    - {name: a, url: 'http://x/'}\n    - {name: a, url: 'http://y/'}\n",
        "two endpoints are named a",
    ),
    ("notifications:\n  queue: redis\n", "notifications.queue"),
]


@pytest.mark.parametrize(("text", "expected"), REFUSED, ids=[t for t, _ in REFUSED])
def test_serve_refuses_health_debug_and_notifications_it_cannot_honour(
    tmp_path: Path, text: str, expected: str
) -> None:
    config = tmp_path / "config.yml"
    config.write_text(text)
    code, stdout, stderr = _start([sys.executable, "-m", "tui", "serve"], config, tmp_path)
    _assert_one_line(code, stdout, stderr, "regtui", expected)


def test_notifications_with_every_endpoint_disabled_start(tmp_path: Path) -> None:
    config = {
        "notifications": {"endpoints": [{"name": "ci", "url": "http://x/", "disabled": True}]},
        "health": {"storagedriver": {"enabled": True, "interval": "10s", "threshold": 3}},
    }
    with bundled_registry(tmp_path / "registry", config=config) as registry:
        assert_healthy(registry.url)
    assert "notifications" in registry.log()


def test_distribution_stock_config_serves(tmp_path: Path) -> None:
    """Distribution's stock config.yml (its health section included) starts as it is."""
    root = tmp_path / "registry"
    text = (
        "version: 0.1\nlog:\n  fields:\n    service: registry\nstorage:\n  cache:\n"
        f"    blobdescriptor: inmemory\n  filesystem:\n    rootdirectory: {root}\n"
        "http:\n  addr: 127.0.0.1:0\n  headers:\n    X-Content-Type-Options: [nosniff]\n"
        "health:\n  storagedriver:\n    enabled: true\n    interval: 10s\n    threshold: 3\n"
    )
    config = tmp_path / "config.yml"
    config.write_text(text)
    process = subprocess.Popen(
        [sys.executable, "-m", "tui", "serve", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=server_env({"REGTUI_ADMIN_DIR": str(tmp_path / "admin")}),
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("listening on "), process.stderr
        assert_healthy(line.removeprefix("listening on "))
    finally:
        process.terminate()
        process.communicate(timeout=10)
