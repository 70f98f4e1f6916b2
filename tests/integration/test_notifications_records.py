"""The journal on the filesystem is a log of records per process, not a file per request.

Real processes and sockets: the bundled registry as a child process, a real aiohttp sink. A
request's events are one record appended to the process's preallocated log and made durable
with one ``fdatasync`` shared by concurrent requests (no file created, no directory synced);
what was acknowledged survives a kill -9, a record torn by a crash is skipped without losing
the ones after it, and a dead process's log is removed once everything in it was delivered.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import httpx

from tests.helpers.journal import JOURNAL, journal_files, records, waiting_events
from tests.helpers.servers import RunningRegistry, bundled_registry, free_port
from tests.helpers.sink import webhook_sink
from tui.imagegen import make_image, push_image

MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _config(url: str) -> dict[str, Any]:
    endpoint = {"name": "ci", "url": url, "timeout": "1s", "threshold": 2, "backoff": "200ms"}
    return {"notifications": {"endpoints": [endpoint]}}


def _manifest(registry: RunningRegistry, name: str) -> bytes:
    push_image(registry.url, name, "seed", make_image([{"etc/motd": b"records\n"}]))
    answer = httpx.get(
        f"{registry.url}/v2/{name}/manifests/seed", headers={"Accept": MANIFEST}, timeout=30
    )
    answer.raise_for_status()
    return answer.content


def _put(registry: RunningRegistry, name: str, tag: str, body: bytes) -> None:
    answer = httpx.put(
        f"{registry.url}/v2/{name}/manifests/{tag}",
        content=body,
        headers={"Content-Type": MANIFEST},
        timeout=30,
    )
    assert answer.status_code == 201, answer.text


def _tags(events: list[dict[str, Any]]) -> set[str]:
    return {e["target"]["tag"] for e in events if e["action"] == "push" and e["target"].get("tag")}


def _kill(registry: RunningRegistry) -> None:
    os.kill(registry.process.pid, signal.SIGKILL)
    registry.process.wait(timeout=10)


def test_a_process_appends_its_requests_events_to_one_log(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    with bundled_registry(root, config=_config(f"http://127.0.0.1:{free_port()}/hook")) as reg:
        body = _manifest(reg, "records/app")
        for number in range(5):
            _put(reg, "records/app", f"v{number}", body)
        files = journal_files(root)
        waiting = waiting_events(root)
    assert [path.suffix for path in files] == [".log"], files  # not one file per request
    assert _tags(waiting) == {"seed", "v0", "v1", "v2", "v3", "v4"}
    assert len(records(files[0])) == len(waiting)  # one record per request (one event each)


def test_concurrent_pushes_acknowledged_before_a_kill_9_all_reach_the_sink(
    tmp_path: Path,
) -> None:
    root = tmp_path / "registry"
    port = free_port()  # the sink is down: every event waits in the journal
    config = _config(f"http://127.0.0.1:{port}/hook")
    acknowledged: list[str] = []
    with bundled_registry(root, config=config) as registry:
        body = _manifest(registry, "group/app")

        def push(thread: int) -> None:
            for number in range(4):
                _put(registry, "group/app", f"t{thread}-{number}", body)
                acknowledged.append(f"t{thread}-{number}")

        threads = [threading.Thread(target=push, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        _kill(registry)  # right after the last answer
    [dead_log] = journal_files(root)
    assert len(acknowledged) == 32
    with webhook_sink(port) as sink, bundled_registry(root, config=config):
        events = sink.wait_for("/hook", lambda got: _tags(got) >= set(acknowledged))
        assert len({e["id"] for e in events}) == len(events)  # each once
        # Delivered: the dead process's log goes; the new process's own log stays.
        sink.wait_for("/hook", lambda _: not dead_log.exists())
        assert [path.suffix for path in journal_files(root)] == [".log"]
        assert waiting_events(root) == []


def test_a_torn_record_is_skipped_and_the_records_after_it_are_sent(tmp_path: Path) -> None:
    root = tmp_path / "registry"
    port = free_port()
    config = _config(f"http://127.0.0.1:{port}/hook")
    with bundled_registry(root, config=config) as registry:
        body = _manifest(registry, "torn/app")
        for tag in ("before", "torn", "after"):
            _put(registry, "torn/app", tag, body)
        _kill(registry)
    [log] = journal_files(root)
    # What a crash in the middle of a record's write leaves (its push never acknowledged).
    [torn] = [r for r in records(log) if _tags(r.events) == {"torn"}]
    with log.open("r+b") as handle:
        handle.seek(torn.offset + 40)
        handle.write(b"#")
    assert "torn" not in _tags(waiting_events(root))
    with webhook_sink(port) as sink, bundled_registry(root, config=config) as registry:
        events = sink.wait_for("/hook", lambda got: {"before", "after"} <= _tags(got))
        sink.wait_for("/hook", lambda _: not log.exists())
        assert httpx.get(f"{registry.url}/v2/").status_code == 200
    assert "torn" not in _tags(events)
    assert sorted(path.name for path in (root / JOURNAL).rglob("*") if path.is_file()) == [
        path.name for path in journal_files(root)
    ]  # nothing else left behind (no temporary file)
