"""A registry killed with SIGKILL mid-upload shows nothing partial and loses nothing committed."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from embedded_registry.gc import STALE_TEMP_AGE, collect_garbage
from embedded_registry.storage.paths import Layout
from tests.helpers.servers import RunningRegistry, bundled_registry
from tui.imagegen import make_image, push_image

ACCEPT = "application/vnd.oci.image.manifest.v1+json"
CHUNK = bytes(range(256)) * 4096  # 1 MiB
CHUNKS_BEFORE_KILL = 8


def _blob_store_is_consistent(root: Path) -> None:
    """Every file in the blob store is a ``data`` file whose bytes match its digest."""
    blobs = root / "docker" / "registry" / "v2" / "blobs"
    for path in blobs.rglob("*"):
        if path.is_dir():
            continue
        assert path.name == "data", f"stray file in the blob store: {path}"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.parent.name, path


def _files(root: Path) -> dict[str, int]:
    """Every file under the layout and its size (a file may vanish while listed)."""
    found = {}
    for path in (root / "docker" / "registry" / "v2").rglob("*"):
        try:
            if path.is_file():
                found[str(path)] = path.stat().st_size
        except FileNotFoundError:
            continue
    return found


def _new_bytes_on_disk(root: Path, before: dict[str, int]) -> int:
    """The bytes files gained since ``before``: wherever the storage writes a body in flight
    (an upload's data, a temporary file, the blob's own key), it is counted, so the kill
    always lands mid-body."""
    return sum(max(size - before.get(path, 0), 0) for path, size in _files(root).items())


def _kill_mid_request(registry: RunningRegistry, method: str, url: str) -> None:
    """Stream a body into ``url``; SIGKILL the server once 8 MiB of it are on disk."""
    before = _files(registry.root)
    stop = threading.Event()
    errors: list[BaseException] = []

    def body() -> Iterator[bytes]:
        for _ in range(4096):  # bounded: 4 GiB at most, never reached
            if stop.is_set():
                return
            yield CHUNK

    def send() -> None:
        try:
            with httpx.Client(base_url=registry.url, timeout=30) as client:
                client.request(
                    method,
                    url,
                    content=body(),
                    headers={"Content-Type": "application/octet-stream"},
                )
        except httpx.TransportError as error:
            errors.append(error)

    thread = threading.Thread(target=send)
    thread.start()
    deadline = time.monotonic() + 30
    while _new_bytes_on_disk(registry.root, before) < CHUNKS_BEFORE_KILL * len(CHUNK):
        assert time.monotonic() < deadline, "the upload never reached the disk"
        assert thread.is_alive(), "the request ended before the kill"
        time.sleep(0.02)
    registry.process.send_signal(signal.SIGKILL)
    registry.process.wait(timeout=10)
    stop.set()
    thread.join(timeout=30)
    assert errors, "the client should have seen the connection die"


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
def test_kill_9_mid_upload(tmp_path: Path, method: str) -> None:
    root = tmp_path / "root"
    committed = make_image([{"safe/file": b"committed before the crash" * 1000}])
    with bundled_registry(root) as first:
        push_image(first.url, "crash/app", "v1", committed)
        with httpx.Client(base_url=first.url) as client:
            started = client.post("/v2/crash/app/blobs/uploads/")
            assert started.status_code == 202
            # a path, so that the restarted server (on another port) is asked about it
            location = httpx.URL(started.headers["Location"]).raw_path.decode()
        # a digest the stream would never match: a PUT must not commit whatever arrived
        target = location + ("&" if "?" in location else "?") + "digest=sha256:" + "a" * 64
        _kill_mid_request(first, method, location if method == "PATCH" else target)

    _blob_store_is_consistent(root)
    with bundled_registry(root) as second, httpx.Client(base_url=second.url) as client:
        served = client.get("/v2/crash/app/manifests/v1", headers={"Accept": ACCEPT})
        assert served.status_code == 200
        assert served.content == committed.manifest.data
        for blob in committed.blobs():
            assert client.get(f"/v2/crash/app/blobs/{blob.digest}").content == blob.data
        partial = "sha256:" + hashlib.sha256(CHUNK * CHUNKS_BEFORE_KILL).hexdigest()
        assert client.head(f"/v2/crash/app/blobs/{partial}").status_code == 404
        status = client.get(location)
        # the session may survive (resumable) or be gone; it must never claim more than arrived
        assert status.status_code in (204, 404), status.text
        if status.status_code == 204:
            end = int(status.headers["Range"].removeprefix("bytes=").split("-")[1])
            assert end < 4096 * len(CHUNK)
            cancelled = client.delete(location)
            assert cancelled.status_code == 204
        # the same repository takes new pushes
        after = make_image([{"after": b"the crash"}])
        push_image(client, "crash/app", "v2", after)
        assert client.get("/v2/crash/app/tags/list").json()["tags"] == ["v1", "v2"]
    _blob_store_is_consistent(root)


def test_kill_9_between_pushes_keeps_every_committed_manifest(tmp_path: Path) -> None:
    """Kill right after a burst of pushes: every 201 that was answered survives the crash."""
    root = tmp_path / "root"
    images = [make_image([{f"file-{n}": f"content {n}".encode() * 100}]) for n in range(20)]
    with bundled_registry(root) as first:
        for n, image in enumerate(images):
            push_image(first.url, f"burst/r{n % 3}", f"t{n}", image)
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=10)
    _blob_store_is_consistent(root)
    with bundled_registry(root) as second, httpx.Client(base_url=second.url) as client:
        for n, image in enumerate(images):
            response = client.get(f"/v2/burst/r{n % 3}/manifests/t{n}", headers={"Accept": ACCEPT})
            assert response.content == image.manifest.data


@pytest.mark.parametrize("sent", [300_000, 10 * len(CHUNK)], ids=["small", "10MiB"])
@pytest.mark.parametrize("method", ["PATCH", "PUT"])
def test_client_cut_off_mid_body(tmp_path: Path, method: str, sent: int) -> None:
    """A client that dies mid-request: no blob appears, and the session is consistent.

    The server may keep what arrived (resumable) or drop it; either way the offset it reports
    must be the truth, so resuming from it yields the right blob.
    """
    data = CHUNK * 16
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    with (
        bundled_registry(tmp_path / "root") as running,
        httpx.Client(base_url=running.url) as client,
    ):
        started = client.post("/v2/cut/off/blobs/uploads/")
        first = client.patch(
            started.headers["Location"],
            content=data[:1000],
            headers={"Content-Range": "0-999", "Content-Type": "application/octet-stream"},
        )
        assert first.status_code == 202
        path = httpx.URL(first.headers["Location"]).raw_path.decode()
        if method == "PUT":
            path += ("&" if "?" in path else "?") + f"digest={digest}"
        host, port = running.host.rsplit(":", 1)
        with socket.create_connection((host, int(port))) as raw:
            head = (
                f"{method} {path} HTTP/1.1\r\nHost: {running.host}\r\n"
                f"Content-Length: {len(data) - 1000}\r\n"
                f"Content-Range: 1000-{len(data) - 1}\r\n"
                "Content-Type: application/octet-stream\r\n\r\n"
            )
            raw.sendall(head.encode() + data[1000 : 1000 + sent])
        location = httpx.URL(first.headers["Location"]).raw_path.decode()
        # The server notices the lost connection asynchronously: wait until the offset settles.
        deadline = time.monotonic() + 10
        previous = None
        while True:
            status = client.get(location)
            assert status.status_code == 204, status.text
            if status.headers["Range"] == previous or time.monotonic() > deadline:
                break
            previous = status.headers["Range"]
            time.sleep(0.2)
        end = int(status.headers["Range"].removeprefix("bytes=").split("-")[1])
        assert 999 <= end < 1000 + sent
        assert client.head(f"/v2/cut/off/blobs/{digest}").status_code == 404
        _blob_store_is_consistent(running.root)
        resumed = client.patch(
            location,
            content=data[end + 1 :],
            headers={"Content-Range": f"{end + 1}-{len(data) - 1}"},
        )
        assert resumed.status_code == 202, resumed.text
        final = httpx.URL(resumed.headers["Location"]).raw_path.decode()
        done = client.put(final + ("&" if "?" in final else "?") + f"digest={digest}")
        assert done.status_code == 201, done.text
        assert client.get(f"/v2/cut/off/blobs/{digest}").content == data


def test_a_tag_left_half_written_by_a_crash_is_not_listed(tmp_path: Path) -> None:
    """kill -9 while a tag is written leaves ``tags/<tag>/`` with its index link and a
    temporary file, but no ``current/link`` (the rename never happened). That tag must not be
    listed (it would answer 404), and GC removes the temporary file once it is old."""
    root = tmp_path / "root"
    image = make_image([{"crash/tag": b"committed"}])
    with bundled_registry(root) as first:
        push_image(first.url, "crash/app", "v1", image)
    layout = Layout(root)
    current = layout.tag_current_link("crash/app", "half").parent
    index = layout.tag_index_link("crash/app", "half", image.digest)
    index.parent.mkdir(parents=True)
    index.write_text(image.digest)
    current.mkdir(parents=True)
    temp = current / ".tmp-killed"
    temp.write_text(image.digest[:20])  # the write was cut short, and never renamed
    with bundled_registry(root) as second, httpx.Client(base_url=second.url) as client:
        assert client.get("/v2/crash/app/tags/list").json()["tags"] == ["v1"]
        assert client.get("/v2/crash/app/manifests/half").status_code == 404
        assert client.get("/v2/_catalog").json()["repositories"] == ["crash/app"]
        for tag in client.get("/v2/crash/app/tags/list").json()["tags"]:
            assert (
                client.get(f"/v2/crash/app/manifests/{tag}", headers={"Accept": ACCEPT}).status_code
                == 200
            )
    collect_garbage(root, grace_period=0)
    assert temp.exists()  # young: it may be a write in flight
    old = time.time() - 2 * STALE_TEMP_AGE
    os.utime(temp, (old, old))
    collect_garbage(root, grace_period=0)
    assert not temp.exists()
    assert layout.tag_current_link("crash/app", "v1").exists()


def test_kill_9_during_manifest_pushes_lists_only_tags_that_resolve(tmp_path: Path) -> None:
    """Pushes of many tags, the registry killed with SIGKILL among them: after a restart every
    listed tag answers 200 with its manifest (a tag caught mid-write is not listed)."""
    root = tmp_path / "root"
    images = [make_image([{f"k{n}": f"kill {n}".encode()}]) for n in range(40)]
    with bundled_registry(root) as first:
        for image in images[:5]:
            push_image(first.url, "killed/app", f"pre-{image.digest[7:15]}", image)
        failures: list[BaseException] = []

        def push_many() -> None:
            with httpx.Client(base_url=first.url, timeout=10) as client:
                for n, image in enumerate(images):
                    try:
                        push_image(client, "killed/app", f"t{n}", image)
                    except (httpx.TransportError, AssertionError, RuntimeError) as error:
                        failures.append(error)
                        return

        thread = threading.Thread(target=push_many)
        thread.start()
        deadline = time.monotonic() + 30
        tags_dir = Layout(root).tags_dir("killed/app")
        while len(list(tags_dir.iterdir())) < 15 and time.monotonic() < deadline:
            time.sleep(0.005)
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=10)
        thread.join(timeout=30)
    with bundled_registry(root) as second, httpx.Client(base_url=second.url) as client:
        tags = client.get("/v2/killed/app/tags/list").json()["tags"]
        assert len(tags) >= 5
        for tag in tags:
            response = client.get(f"/v2/killed/app/manifests/{tag}", headers={"Accept": ACCEPT})
            assert response.status_code == 200, tag
