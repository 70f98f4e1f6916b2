"""Webhook delivery beyond Distribution: a journal in the storage, never in a request's path.

Real processes and sockets: the bundled registry as a child process, a real aiohttp sink, pushes
with skopeo. A push acknowledged while the sink is down survives a kill -9 and reaches the sink
after a restart; a sink that answers 500 a while gets everything, in order, when it recovers; a
sink that hangs holds no push back; a redirect to another origin gets the events without the
endpoint's credentials; the registry keeps serving through all of it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from tests.helpers.images import make_image, push_image, write_oci_layout
from tests.helpers.journal import waiting_events
from tests.helpers.servers import bundled_registry, free_port, require_tool
from tests.helpers.sink import Behaviour, webhook_sink

JOURNAL = Path("regtui") / "notifications"


def skopeo_push(layout: Path, host: str, reference: str) -> float:
    """Push the layout's ``v1`` with skopeo; the seconds it took."""
    binary = require_tool("skopeo")
    started = time.monotonic()
    result = subprocess.run(
        [
            binary,
            "copy",
            "--dest-tls-verify=false",
            f"oci:{layout}:v1",
            f"docker://{host}/{reference}",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return time.monotonic() - started


def _layout(tmp_path: Path, text: bytes) -> Path:
    image = make_image([{"etc/motd": text}, {"bin/tool": text * 300}])
    return write_oci_layout(tmp_path / "layout", image, tag="v1")


def _config(url: str, **endpoint: Any) -> dict[str, Any]:
    settings = {"name": "ci", "url": url, "timeout": "1s", "threshold": 2, "backoff": "200ms"}
    settings.update(endpoint)
    return {"notifications": {"endpoints": [settings]}}


def _journaled(root: Path) -> list[dict[str, Any]]:
    """The events waiting in the journal on disk."""
    return waiting_events(root)


def _tagged(events: list[dict[str, Any]], tag: str) -> bool:
    return any(e["action"] == "push" and e["target"].get("tag") == tag for e in events)


def _pushes(events: list[dict[str, Any]]) -> int:
    return sum(e["action"] == "push" for e in events)


def test_events_acknowledged_before_a_kill_9_reach_the_sink_after_a_restart(
    tmp_path: Path,
) -> None:
    layout = _layout(tmp_path, b"journal me\n")
    port = free_port()  # the sink is down: nothing listens there yet
    config = _config(f"http://127.0.0.1:{port}/hook")
    root = tmp_path / "registry"
    with bundled_registry(root, config=config) as registry:
        skopeo_push(layout, registry.host, "crash/app:v1")
        waiting = _journaled(root)
        assert _pushes(waiting) == 4  # config, 2 layers, manifest: all acknowledged
        os.kill(registry.process.pid, signal.SIGKILL)
        registry.process.wait(timeout=10)
    with webhook_sink(port) as sink, bundled_registry(root, config=config):
        events = sink.wait_for("/hook", lambda got: _pushes(got) >= 4)
        assert sorted(e["id"] for e in events) == sorted(e["id"] for e in waiting)
        manifest = [e for e in events if e["target"].get("tag") == "v1"]
        assert manifest and manifest[0]["target"]["repository"] == "crash/app"
        deadline = time.monotonic() + 10
        while _journaled(root) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _journaled(root) == []  # delivered, then removed


def test_a_sink_failing_a_while_gets_everything_in_order_when_it_recovers(
    tmp_path: Path,
) -> None:
    layout = _layout(tmp_path, b"retry me\n")
    with webhook_sink() as sink:
        sink.answer("/hook", Behaviour(status=500))
        config = _config(sink.url("/hook"))
        with bundled_registry(tmp_path / "registry", config=config) as registry:
            skopeo_push(layout, registry.host, "flaky/app:v1")
            skopeo_push(layout, registry.host, "flaky/app:v2")
            time.sleep(1.5)
            assert sink.attempts["/hook"] >= 3  # retried, backing off
            assert httpx.get(f"{registry.url}/v2/").status_code == 200
            sink.answer("/hook", Behaviour(status=200))
            # v2's blobs are there already: its push is HEADs (pulls) and the manifest.
            events = sink.wait_for("/hook", lambda got: _tagged(got, "v2"))
            tags = [e["target"]["tag"] for e in events if e["target"].get("tag")]
            assert tags == ["v1", "v2"]  # the order of the pushes
            assert len({e["id"] for e in events}) == len(events)
            # The backlog came in a few envelopes, not one request per event.
            assert len(sink.received) < len(events)


def test_a_hanging_sink_holds_no_push_back(tmp_path: Path) -> None:
    layout = _layout(tmp_path, b"do not wait\n")
    with webhook_sink() as sink:
        sink.answer("/hook", Behaviour(hang=True))
        config = _config(sink.url("/hook"), timeout="30s")
        with bundled_registry(tmp_path / "registry", config=config) as registry:
            took = skopeo_push(layout, registry.host, "slow/app:v1")
            assert took < 15, took  # 4 events, each held 30 s by the sink, were not waited for
            deadline = time.monotonic() + 10  # sent once the registry is quiet a moment
            while not sink.attempts.get("/hook") and time.monotonic() < deadline:
                time.sleep(0.05)
            assert sink.attempts.get("/hook", 0) >= 1
            assert httpx.get(f"{registry.url}/v2/slow/app/tags/list").json()["tags"] == ["v1"]


def test_credentials_never_follow_a_redirect_to_another_origin(tmp_path: Path) -> None:
    layout = _layout(tmp_path, b"redirected\n")
    with webhook_sink() as sink, webhook_sink() as elsewhere:
        sink.answer("/same", Behaviour(status=307, location="/moved"))
        sink.answer("/away", Behaviour(status=308, location=elsewhere.url("/final")))
        secret = {"Authorization": ["Bearer do-not-leak"]}
        config = {
            "notifications": {
                "endpoints": [
                    {"name": "same", "url": sink.url("/same"), "headers": secret},
                    {"name": "away", "url": sink.url("/away"), "headers": secret},
                ]
            }
        }
        with bundled_registry(tmp_path / "registry", config=config) as registry:
            skopeo_push(layout, registry.host, "moved/app:v1")
            elsewhere.wait_for("/final", lambda got: _pushes(got) >= 4)
            sink.wait_for("/moved", lambda got: _pushes(got) >= 4)
            assert httpx.get(f"{registry.url}/v2/").status_code == 200
    assert all("Authorization" not in got.headers for got in elsewhere.received)
    moved = [got for got in sink.received if got.path == "/moved"]
    assert moved and all(got.headers["Authorization"] == "Bearer do-not-leak" for got in moved)


def test_each_endpoint_gets_only_what_it_does_not_ignore(tmp_path: Path) -> None:
    layout = _layout(tmp_path, b"filtered\n")
    with webhook_sink() as sink:
        config = {
            "notifications": {
                "endpoints": [
                    {
                        "name": "manifests",
                        "url": sink.url("/manifests"),
                        "ignoredmediatypes": ["application/octet-stream"],
                    },
                    {"name": "writes", "url": sink.url("/writes"), "ignore": {"actions": ["pull"]}},
                ]
            }
        }
        with bundled_registry(tmp_path / "registry", config=config) as registry:
            skopeo_push(layout, registry.host, "only/app:v1")
            pulled = httpx.get(f"{registry.url}/v2/only/app/manifests/v1")
            assert pulled.status_code == 200
            manifests = sink.wait_for("/manifests", lambda got: len(got) >= 2)
            writes = sink.wait_for("/writes", lambda got: _pushes(got) >= 4)
            time.sleep(0.5)
    assert [(e["action"], e["target"]["tag"]) for e in sink.events("/manifests")] == [
        ("push", "v1"),
        ("pull", "v1"),
    ]
    assert all(e["target"]["mediaType"] != "application/octet-stream" for e in manifests)
    assert {e["action"] for e in sink.events("/writes")} == {"push"} and len(writes) == 4


def test_a_storage_that_refuses_the_journal_still_delivers_from_memory(tmp_path: Path) -> None:
    layout = _layout(tmp_path, b"no journal\n")
    root = tmp_path / "registry"
    (root / "regtui").mkdir(parents=True)
    (root / JOURNAL).write_text("a file where the journal's directory goes\n")
    with webhook_sink() as sink:
        config = _config(sink.url("/hook"))
        with bundled_registry(root, config=config) as registry:
            skopeo_push(layout, registry.host, "memory/app:v1")
            events = sink.wait_for("/hook", lambda got: _pushes(got) >= 4)
            assert any(e["target"].get("tag") == "v1" for e in events)
            log = registry.log()
    assert log.count("cannot write the journal") == 1, log


def test_events_left_for_an_endpoint_no_longer_configured_are_named_at_start(
    tmp_path: Path,
) -> None:
    root = tmp_path / "registry"
    down = f"http://127.0.0.1:{free_port()}/hook"
    with bundled_registry(root, config=_config(down)) as registry:
        httpx.delete(f"{registry.url}/v2/gone/app/manifests/v1")  # 404: no event
        push_image(registry.url, "gone/app", "v1", make_image([{"x": b"x"}]))
    assert _pushes(_journaled(root)) == 3
    with bundled_registry(root, config=_config(down, name="renamed")) as registry:
        deadline = time.monotonic() + 10
        while "undelivered event file" not in registry.log() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "3 undelivered journal entries of an endpoint that is not configured" in (
            registry.log()
        )
