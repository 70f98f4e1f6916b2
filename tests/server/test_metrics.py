"""``http.debug``: a second listener serving ``/debug/health`` and, with
``http.debug.prometheus.enabled``, Prometheus metrics, scraped over real HTTP after real pushes
and pulls; the route label stays bounded whatever names clients send.

Before this, ``http.debug`` was warned about and ignored: nothing listened on its address."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from embedded_registry.app import create_app
from embedded_registry.config import Config, DebugConfig, HttpConfig, StorageConfig
from embedded_registry.metrics import RegistryMetrics
from tests.helpers.servers import RunningRegistry, bundled_registry, free_port, server_env
from tests.server.test_health import wait_for

pytestmark = pytest.mark.timeout(120)

BLOB_ROUTE = "/v2/{name}/blobs/{digest}"
UPLOAD_ROUTE = "/v2/{name}/blobs/uploads/{upload_id}"
MANIFEST_ROUTE = "/v2/{name}/manifests/{reference}"
TAGS_ROUTE = "/v2/{name}/tags/list"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_blob(client: httpx.Client, name: str, data: bytes) -> str:
    start = client.post(f"/v2/{name}/blobs/uploads/")
    assert start.status_code == 202, start.text
    done = client.put(start.headers["Location"], params={"digest": digest(data)}, content=data)
    assert done.status_code == 201, done.text
    return digest(data)


def push_image(client: httpx.Client, name: str, layer: bytes, tag: str) -> bytes:
    config = b'{"architecture":"amd64","os":"linux"}'
    push_blob(client, name, config)
    push_blob(client, name, layer)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digest(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": digest(layer),
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    put = client.put(
        f"/v2/{name}/manifests/{tag}",
        content=manifest,
        headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
    )
    assert put.status_code == 201, put.text
    return manifest


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[RunningRegistry, str]]:
    port = free_port()
    config = {
        "http": {"debug": {"addr": f"127.0.0.1:{port}", "prometheus": {"enabled": True}}},
        "storage": {"maintenance": {"gc": {"graceperiod": "0s"}}},
    }
    with bundled_registry(tmp_path / "registry", config=config) as registry:
        yield registry, f"http://127.0.0.1:{port}"


def test_debug_listener_serves_health_and_the_counters_move_by_the_right_amounts(
    watched: tuple[RunningRegistry, str],
) -> None:
    registry, debug = watched
    health = httpx.get(f"{debug}/debug/health")
    assert health.status_code == 200 and health.json() == {}
    # the metrics are on the debug listener only
    assert httpx.get(f"{registry.url}/metrics").status_code == 404
    layer = b"x" * 300_000
    with httpx.Client(base_url=registry.url, timeout=30) as client:
        before = scrape(f"{debug}/metrics")
        manifest = push_image(client, "team/app", layer, "v1")
        for _ in range(3):
            pulled = client.get(f"/v2/team/app/blobs/{digest(layer)}")
            assert pulled.content == layer
        head = client.head("/v2/team/app/manifests/v1")
        assert head.status_code == 200
        missing = client.get("/v2/team/app/manifests/nope")
        assert missing.status_code == 404
        assert client.get("/not/a/route").status_code == 404
        after = scrape(f"{debug}/metrics")

    requests = "registry_http_requests_total"
    assert moved(before, after, requests, route=BLOB_ROUTE, method="GET", code="200") == 3
    assert moved(before, after, requests, route=UPLOAD_ROUTE, method="PUT", code="201") == 2
    assert moved(before, after, requests, route=MANIFEST_ROUTE, method="PUT", code="201") == 1
    assert moved(before, after, requests, route=MANIFEST_ROUTE, method="HEAD", code="200") == 1
    assert moved(before, after, requests, route=MANIFEST_ROUTE, method="GET", code="404") == 1
    assert moved(before, after, requests, route="unmatched", method="GET", code="404") == 1
    latency = "registry_http_request_duration_seconds_count"
    assert moved(before, after, latency, route=BLOB_ROUTE, method="GET") == 3
    assert moved(before, after, "registry_http_response_bytes_total", route=BLOB_ROUTE) == (
        3 * len(layer)
    )
    config_size = len(b'{"architecture":"amd64","os":"linux"}')
    received = moved(before, after, "registry_http_request_bytes_total", route=UPLOAD_ROUTE)
    assert received == len(layer) + config_size
    assert moved(before, after, "registry_http_request_bytes_total", route=MANIFEST_ROUTE) == len(
        manifest
    )
    # the HEAD sent no body; the 404 its error JSON
    sent = moved(before, after, "registry_http_response_bytes_total", route=MANIFEST_ROUTE)
    assert sent == len(missing.content)
    assert value(after, "registry_uploads_in_flight") == 0


def test_an_upload_being_sent_is_in_flight(watched: tuple[RunningRegistry, str]) -> None:
    registry, debug = watched
    release = threading.Event()
    sent_first = threading.Event()

    def body() -> Iterator[bytes]:
        yield b"a" * 1000
        sent_first.set()
        release.wait(30)
        yield b"b" * 1000

    with httpx.Client(base_url=registry.url, timeout=60) as client:
        start = client.post("/v2/team/slow/blobs/uploads/")
        location = start.headers["Location"]
        result: list[int] = []
        sender = threading.Thread(
            target=lambda: result.append(client.patch(location, content=body()).status_code)
        )
        sender.start()
        try:
            assert sent_first.wait(10)
            wait_for(lambda: value(scrape(f"{debug}/metrics"), "registry_uploads_in_flight") == 1)
        finally:
            release.set()
            sender.join(30)
        assert result == [202]
    assert value(scrape(f"{debug}/metrics"), "registry_uploads_in_flight") == 0


def test_gc_runs_and_bytes_freed_are_counted(watched: tuple[RunningRegistry, str]) -> None:
    registry, debug = watched
    orphan = b"o" * 12_345
    with httpx.Client(base_url=registry.url, timeout=60) as client:
        push_blob(client, "team/app", orphan)  # linked to no manifest: GC removes it
        before = scrape(f"{debug}/metrics")
        gc = "/v2/_regtui/ext/gc"
        headers = registry.admin_headers()
        dry = client.post(gc, json={}, headers=headers)
        assert dry.status_code == 200, dry.text
        real = client.post(gc, json={"dry_run": False}, headers=headers)
        assert real.status_code == 200, real.text
        freed = real.json()["bytes_freed"]
        assert freed >= len(orphan)
        after = scrape(f"{debug}/metrics")
    assert moved(before, after, "regtui_gc_runs_total", outcome="dry_run") == 1
    assert moved(before, after, "regtui_gc_runs_total", outcome="completed") == 1
    assert moved(before, after, "regtui_gc_freed_bytes_total") == freed


def test_route_label_cardinality_stays_bounded(watched: tuple[RunningRegistry, str]) -> None:
    registry, debug = watched
    with httpx.Client(base_url=registry.url, timeout=30) as client:
        for number in range(1000):
            response = client.get(f"/v2/repo-{number}/tags/list")
            assert response.status_code == 404
    samples = scrape(f"{debug}/metrics")
    series = {labels for name, labels in samples if name == "registry_http_requests_total"}
    routes = {dict(labels)["route"] for labels in series}
    assert len(series) <= 5, series
    assert not any("repo-" in route for route in routes)
    tags = value(
        samples,
        "registry_http_requests_total",
        route="/v2/{name}/tags/list",
        method="GET",
        code="404",
    )
    assert tags == 1000
    assert len(samples) < 200  # every family together, whatever 1,000 names did


def test_each_answer_lands_once_in_its_series_buckets_and_sums(
    watched: tuple[RunningRegistry, str],
) -> None:
    """N answers make N in the counter, N in the histogram (cumulative buckets up to
    ``+Inf``, a sum no longer than the client waited), the bytes of N bodies; a method no
    route accepts is ``other`` on ``unmatched``; every storage operation timed is counted."""
    registry, debug = watched
    layer = b"y" * 1000
    listed, heads, odd = 25, 15, 4
    with httpx.Client(base_url=registry.url, timeout=30) as client:
        push_image(client, "team/app", layer, "v1")
        before = scrape(f"{debug}/metrics")
        started = time.perf_counter()
        bodies = [client.get("/v2/team/app/tags/list") for _ in range(listed)]
        for _ in range(heads):
            assert client.head(f"/v2/team/app/blobs/{digest(layer)}").status_code == 200
        waited = time.perf_counter() - started
        for _ in range(odd):
            assert client.request("PURGE", "/v2/team/app/tags/list").status_code == 405
        after = scrape(f"{debug}/metrics")
    assert all(b.status_code == 200 and b.content == bodies[0].content for b in bodies)

    requests = "registry_http_requests_total"
    tags = {"route": TAGS_ROUTE, "method": "GET"}
    head = {"route": BLOB_ROUTE, "method": "HEAD"}
    assert moved(before, after, requests, code="200", **tags) == listed
    assert moved(before, after, requests, code="200", **head) == heads
    assert moved(before, after, requests, route="unmatched", method="other", code="405") == odd
    assert moved(before, after, "registry_http_response_bytes_total", route=TAGS_ROUTE) == (
        listed * len(bodies[0].content)
    )
    assert moved(before, after, "registry_http_response_bytes_total", route=BLOB_ROUTE) == 0
    assert moved(before, after, "registry_http_request_bytes_total", route=TAGS_ROUTE) == 0

    histogram = "registry_http_request_duration_seconds"
    for labels, count in ((tags, listed), (head, heads)):
        assert moved(before, after, f"{histogram}_count", **labels) == count
        total = moved(before, after, f"{histogram}_sum", **labels)
        assert 0 < total <= waited  # each answer timed once, within what the client waited
        buckets = sorted(
            (float(dict(key)["le"]), after[(name, key)] - before.get((name, key), 0.0))
            for name, key in after
            if name == f"{histogram}_bucket" and {k: v for k, v in key if k != "le"} == labels
        )
        assert [le for le, _ in buckets][-1] == float("inf") and len(buckets) == 16
        counts = [n for _, n in buckets]
        assert counts == sorted(counts) and counts[-1] == count  # cumulative, +Inf is all
        # the sum agrees with where the buckets put each answer
        bounds = [0.0] + [le for le, _ in buckets]
        each = [n - below for n, below in zip(counts, [0.0, *counts], strict=False)]
        assert sum(bounds[i] * n for i, n in enumerate(each)) <= total
        assert total <= sum(bounds[i + 1] * n for i, n in enumerate(each) if n)

    # every storage operation timed is counted once, whatever its outcome
    timed: dict[str, float] = {}
    counted: dict[str, float] = {}
    for (name, key), sample in after.items():
        labels = dict(key)
        if name == "registry_storage_action_seconds_count":
            timed[labels["action"]] = sample
        elif name == "regtui_storage_actions_total":
            counted[labels["action"]] = counted.get(labels["action"], 0.0) + sample
    assert timed and timed == counted
    assert (
        moved(
            before,
            after,
            "regtui_storage_actions_total",
            driver="filesystem",
            action="stat",
            outcome="ok",
        )
        >= heads
    )  # a HEAD of a blob stats it


async def test_latencies_land_in_their_buckets_and_sum(tmp_path: Path) -> None:
    """Answers counted with chosen latencies (a real request and answer, captured from a
    registry on a real socket) land in the buckets Prometheus' ``le`` names, and the sum is
    theirs; a HEAD counts no body, a GET the bytes it declared."""
    captured: list[tuple[web.BaseRequest, web.StreamResponse]] = []

    async def capture(request: web.Request, response: web.StreamResponse) -> None:
        captured.append((request, response))

    (tmp_path / "docker/registry/v2").mkdir(parents=True)  # an empty storage
    http = HttpConfig(debug=DebugConfig(addr=("127.0.0.1", 0), prometheus_enabled=True))
    app = create_app(Config(storage=StorageConfig(root=tmp_path), http=http))
    app.on_response_prepare.append(capture)
    runner = web.AppRunner(app, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/v2/team/app/tags/list"
    try:
        async with httpx.AsyncClient() as client:
            missing = await client.get(url)
            await client.head(url)
    finally:
        await runner.cleanup()
    assert missing.status_code == 404 and missing.content
    (get, got), (head, headed) = captured

    metrics = RegistryMetrics()
    latencies = [0.0004, 0.001, 0.003, 0.003, 0.2, 7.0, 100.0]
    for took in latencies:
        metrics.finished(get, got, took)
    metrics.finished(head, headed, 0.02)
    samples: Samples = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value

    histogram = "registry_http_request_duration_seconds"
    labels = {"route": TAGS_ROUTE, "method": "GET"}
    expected = {  # cumulative: answers with a latency at most le
        "0.001": 2.0,
        "0.0025": 2.0,
        "0.005": 4.0,
        "0.1": 4.0,
        "0.25": 5.0,
        "5.0": 5.0,
        "10.0": 6.0,
        "60.0": 6.0,
        "+Inf": 7.0,
    }
    for le, count in expected.items():
        assert value(samples, f"{histogram}_bucket", le=le, **labels) == count, le
    assert value(samples, f"{histogram}_count", **labels) == len(latencies)
    assert value(samples, f"{histogram}_sum", **labels) == pytest.approx(sum(latencies))
    assert value(samples, f"{histogram}_bucket", le="0.025", route=TAGS_ROUTE, method="HEAD") == 1
    requests = "registry_http_requests_total"
    assert value(samples, requests, code="404", **labels) == len(latencies)
    assert value(samples, requests, code="404", route=TAGS_ROUTE, method="HEAD") == 1
    sent = value(samples, "registry_http_response_bytes_total", route=TAGS_ROUTE)
    assert sent == len(latencies) * len(missing.content)  # the HEAD's declared length not


def test_prometheus_without_the_metrics_extra_refuses_to_start(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(
        f"http:\n  debug:\n    addr: 127.0.0.1:{free_port()}\n"
        "    prometheus:\n      enabled: true\n"
    )
    code = (
        "import sys\n"
        "sys.modules['prometheus_client'] = None\n"
        "from tui.cli import main\n"
        f"sys.exit(main(['serve', '--config', {str(config)!r}, "
        f"'--root', {str(tmp_path / 'root')!r}, '--addr', '127.0.0.1:{free_port()}']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=30,
        env=server_env({"REGTUI_ADMIN_DIR": str(tmp_path / "admin")}),
    )
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("regtui: error: "), result.stderr
    assert "pip install 'regtui[metrics]'" in lines[0]


def test_debug_listener_without_prometheus_serves_health_only(tmp_path: Path) -> None:
    port = free_port()
    down = tmp_path / "down"
    config = {
        "http": {"debug": {"addr": f"127.0.0.1:{port}"}},
        "health": {"file": [{"file": str(down), "interval": "100ms"}]},
    }
    with bundled_registry(tmp_path / "registry", config=config):
        debug = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{debug}/debug/health").json() == {}
        assert httpx.get(f"{debug}/metrics").status_code == 404
        down.write_text("")
        wait_for(lambda: httpx.get(f"{debug}/debug/health").status_code == 503)
        assert httpx.get(f"{debug}/debug/health").json() == {str(down): "file exists"}


def test_debug_addr_in_use_refuses_to_start(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        config = tmp_path / "config.yml"
        config.write_text(f"http:\n  debug:\n    addr: 127.0.0.1:{port}\n")
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "tui",
                "serve",
                "--config",
                str(config),
                "--root",
                str(tmp_path / "root"),
                "--addr",
                f"127.0.0.1:{free_port()}",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            env=server_env({"REGTUI_ADMIN_DIR": str(tmp_path / "admin")}),
        )
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "http.debug.addr" in lines[0] and "in use" in lines[0], result.stderr
