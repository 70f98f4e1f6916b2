"""A manifest push's event is journaled while the manifest is written, not after it.

Real processes and sockets: the bundled registry as a child process, a real aiohttp sink. The
journal write overlaps the push's own writes, so a crash between the two can leave a segment
for a push that never landed: whoever finds such a segment sends the push only when the
manifest is in the storage. A push that fails leaves no event and no segment behind.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx

from embedded_registry.notifications.journal import endpoint_dir
from tests.helpers.images import make_image, push_image
from tests.helpers.journal import records, waiting_events
from tests.helpers.servers import bundled_registry, free_port
from tests.helpers.sink import webhook_sink

JOURNAL = Path("regtui") / "notifications"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OTHER_INSTANCE = "0123456789abcdef0123456789abcdef"


def _config(url: str) -> dict[str, Any]:
    endpoint = {"name": "ci", "url": url, "timeout": "1s", "threshold": 2, "backoff": "200ms"}
    return {"notifications": {"endpoints": [endpoint]}}


def _segments(root: Path) -> list[Path]:
    return sorted((root / JOURNAL).rglob("*.json"))


def _manifest_push(root: Path, tag: str) -> tuple[Path, int, dict[str, Any]]:
    """The journal file holding the push of ``tag``, when it was written, and that event."""
    for path in _segments(root):
        for item in json.loads(path.read_bytes())["events"]:
            if item["action"] == "push" and item["target"].get("tag") == tag:
                return path, int(path.name.split("-", 1)[0]), item
    for path in sorted((root / JOURNAL).rglob("*.log")):
        for record in records(path):
            for item in record.events:
                if item["action"] == "push" and item["target"].get("tag") == tag:
                    return path, record.written_ns, item
    raise AssertionError(f"no push of {tag} in the journal")


def _wait_empty(root: Path) -> list[Any]:
    """Wait until no segment object is left and no event waits in a log."""
    deadline = time.monotonic() + 10
    while (_segments(root) or waiting_events(root)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [*_segments(root), *waiting_events(root)]


def test_a_crashed_process_s_segment_for_a_push_that_never_landed_is_not_sent(
    tmp_path: Path,
) -> None:
    root = tmp_path / "registry"
    port = free_port()  # the sink is down: the events stay in the journal
    config = _config(f"http://127.0.0.1:{port}/hook")
    with bundled_registry(root, config=config) as registry:
        push_image(registry.url, "crash/app", "v1", make_image([{"etc/motd": b"landed\n"}]))
        os.kill(registry.process.pid, signal.SIGKILL)
        registry.process.wait(timeout=10)
    segment, written, landed = _manifest_push(root, "v1")
    # What a kill -9 between the journal write and the manifest's own writes leaves: the
    # event of a push whose manifest is not in the storage, in a segment of the dead process.
    ghost = json.loads(json.dumps(landed))
    ghost["id"] = "ghost-event-id"
    ghost["target"]["tag"] = "ghost"
    ghost["target"]["digest"] = "sha256:" + "0" * 64
    written -= 3600 * 10**9  # left an hour ago
    name = f"{written:020d}-{OTHER_INSTANCE}-0000000000.json"
    (segment.parent / name).write_text(json.dumps({"events": [ghost]}))
    with webhook_sink(port) as sink, bundled_registry(root, config=config):
        events = sink.wait_for("/hook", lambda got: any(e["id"] == landed["id"] for e in got))
        assert _wait_empty(root) == []  # the ghost's segment is removed, not kept forever
        ids = {e["id"] for e in sink.events("/hook")}
    assert "ghost-event-id" not in ids, events
    assert sum(e["action"] == "push" for e in sink.events("/hook")) == 3


def test_a_push_that_fails_leaves_no_event_and_no_segment(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    with webhook_sink() as sink, bundled_registry(root, config=_config(sink.url("/hook"))) as reg:
        missing = "sha256:" + "1" * 64
        body = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": MANIFEST,
                "config": {"mediaType": "application/json", "digest": missing, "size": 2},
                "layers": [],
            }
        ).encode()
        answer = httpx.put(
            f"{reg.url}/v2/broken/app/manifests/v1",
            content=body,
            headers={"Content-Type": MANIFEST},
        )
        assert answer.status_code == 400, answer.text
        assert answer.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"
        push_image(reg.url, "fine/app", "v1", make_image([{"etc/motd": b"fine\n"}]))
        events = sink.wait_for("/hook", lambda got: any(e["target"].get("tag") for e in got))
        assert _wait_empty(root) == []
    assert [e["target"]["repository"] for e in events if e["target"].get("tag")] == ["fine/app"]
    assert all(e["target"]["repository"] == "fine/app" for e in events)


def test_a_young_segment_of_another_process_waits_for_its_push_to_land(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    late = make_image([{"etc/motd": b"late\n"}])
    with webhook_sink() as sink, bundled_registry(root, config=_config(sink.url("/hook"))) as reg:
        # Another replica's push in flight: its event is journaled, its manifest not yet written.
        directory = root / endpoint_dir("ci").lstrip("/")
        directory.mkdir(parents=True, exist_ok=True)
        target = {"mediaType": MANIFEST, "digest": late.digest, "repository": "late/app"}
        event = {"id": "in-flight-event-id", "action": "push", "target": {**target, "tag": "v1"}}
        name = f"{time.time_ns() - 10**9:020d}-{OTHER_INSTANCE}-0000000000.json"
        (directory / name).write_text(json.dumps({"events": [event]}))
        push_image(reg.url, "other/app", "v1", make_image([{"etc/motd": b"other\n"}]))
        sink.wait_for("/hook", lambda got: any(e["target"].get("tag") == "v1" for e in got))
        assert (directory / name).exists()  # undecided: kept, not dropped
        push_image(reg.url, "late/app", "v1", late)  # the other replica's push lands
        events = sink.wait_for(
            "/hook", lambda got: any(e["id"] == "in-flight-event-id" for e in got)
        )
    assert [e["target"]["digest"] for e in events if e["id"] == "in-flight-event-id"] == [
        late.digest
    ]
