"""Quotas against blob uploads racing each other (``regtui.quota``), on a disk: every upload
reserves its bytes in the storage before they are stored, so concurrent uploads never store
more than the quota together, and a crashed upload's reservation ends by time.

What is stored is read from the disk (every blob's ``data`` file) and from ``regtui du --root``.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.images import skopeo_copy_at_once
from tests.helpers.servers import RunningRegistry, bundled_registry, require_tool
from tests.helpers.spec import V2, assert_oci_error, start_upload, upload_files, with_query
from tui.cli import main
from tui.imagegen import Image, make_image, make_layer, write_oci_layout

pytestmark = pytest.mark.interop

TTL_ENV = "REGTUI_UPLOAD_RESERVATION_TTL"


def _quota_config(repo: str, limit: int) -> dict[str, Any]:
    return {"version": "0.1", "regtui": {"quota": [{"repository": repo, "limit": limit}]}}


def stored_blobs(root: Path) -> dict[str, int]:
    """``{digest: size}`` of every blob stored on the disk."""
    blobs = root / V2 / "blobs" / "sha256"
    if not blobs.exists():
        return {}
    return {f"sha256:{p.parent.name}": p.stat().st_size for p in blobs.glob("*/*/data")}


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def monolithic(client: httpx.Client, repo: str, data: bytes) -> httpx.Response:
    """POST, then the closing PUT with the whole body (Content-Length declared)."""
    location = start_upload(client, repo)
    return client.put(
        with_query(location, digest=digest_of(data)),
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )


def streamed(client: httpx.Client, repo: str, data: bytes, piece: int = 4096) -> httpx.Response:
    """POST, a PATCH whose body is streamed in pieces (no length declared: chunked transfer,
    as ``docker push`` sends a layer), then the closing PUT without a body."""
    location = start_upload(client, repo)

    def body() -> Iterator[bytes]:
        for start in range(0, len(data), piece):
            time.sleep(0.002)
            yield data[start : start + piece]

    response = client.patch(
        location, content=body(), headers={"Content-Type": "application/octet-stream"}
    )
    if response.status_code != 202:
        return response
    return client.put(with_query(response.headers["Location"], digest=digest_of(data)))


def race(
    urls: list[str],
    repo: str | list[str],
    blobs: list[bytes],
    upload: Any,
    rule: str = "regtui.quota[0]",
) -> list[int]:
    """Upload every blob at once from its own thread (blob ``i`` to ``urls[i % len(urls)]``:
    one registry, or replicas in turn; into ``repo``, or ``repo[i % len(repo)]``); the HTTP
    status of each."""
    repos = [repo] if isinstance(repo, str) else repo
    statuses: list[int] = [0] * len(blobs)
    bodies: list[str] = [""] * len(blobs)
    start = threading.Barrier(len(blobs))

    def one(index: int) -> None:
        with httpx.Client(base_url=urls[index % len(urls)], timeout=60) as client:
            start.wait()
            response = upload(client, repos[index % len(repos)], blobs[index])
            statuses[index], bodies[index] = response.status_code, response.text

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(blobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for status, body in zip(statuses, bodies, strict=True):
        assert status in (201, 403), (status, body)
        if status == 403:
            error = json.loads(body)["errors"][0]
            assert error["code"] == "DENIED" and "quota exceeded" in error["message"], body
            assert rule in error["message"], body
    return statuses


def test_concurrent_uploads_with_declared_lengths_store_exactly_what_fits(
    tmp_path: Path,
) -> None:
    """Eight uploads race for room for three and a half: exactly three are stored, the five
    others refused before their bytes are, and no upload is left half-written. (Each upload
    used to see the room free: all eight were stored.)"""
    size = 40_000
    blobs = [os.urandom(size) for _ in range(8)]
    limit = 3 * size + size // 2
    with bundled_registry(tmp_path / "root", config=_quota_config("q/race", limit)) as registry:
        statuses = race([registry.url], "q/race", blobs, monolithic)
        accepted = {digest_of(b) for b, s in zip(blobs, statuses, strict=True) if s == 201}
        assert len(accepted) == 3, statuses
        assert stored_blobs(registry.root) == dict.fromkeys(accepted, size)
        assert upload_files(registry.root) == set()


def test_uploads_to_a_namespace_share_its_room_exactly(tmp_path: Path) -> None:
    """Uploads racing into two repositories of a namespace, one of them with its own smaller
    quota too: each upload holds its bytes in both records, so neither limit is passed."""
    size = 30_000
    quota = [
        {"namespace": "ns", "limit": 4 * size + size // 2},
        {"repository": "ns/a", "limit": 2 * size + size // 2},
    ]
    config = {"version": "0.1", "regtui": {"quota": quota}}
    blobs = [os.urandom(size) for _ in range(10)]
    with bundled_registry(tmp_path / "root", config=config) as registry:
        statuses = race([registry.url], ["ns/a", "ns/b"], blobs, monolithic, "regtui.quota[")
        into_a = [s for i, s in enumerate(statuses) if i % 2 == 0]
        assert into_a.count(201) <= 2 and statuses.count(201) == 4, statuses
        stored = stored_blobs(registry.root)
        assert sum(stored.values()) == 4 * size
        assert upload_files(registry.root) == set()


def test_concurrent_streamed_uploads_never_store_past_the_quota(tmp_path: Path) -> None:
    """Uploads with no declared length reserve as their bytes arrive: together they never
    store more than the limit; the refused ones release what they held, so an upload that
    fits afterwards goes in."""
    size = 30_000
    blobs = [os.urandom(size) for _ in range(8)]
    limit = 3 * size + size // 2
    with bundled_registry(tmp_path / "root", config=_quota_config("q/stream", limit)) as registry:
        statuses = race([registry.url], "q/stream", blobs, streamed)
        assert 403 in statuses, statuses
        accepted = {digest_of(b) for b, s in zip(blobs, statuses, strict=True) if s == 201}
        stored = stored_blobs(registry.root)
        assert stored == dict.fromkeys(accepted, size)
        assert sum(stored.values()) <= limit
        assert upload_files(registry.root) == set()
        # Nothing of the refused uploads stays reserved: the room they left is free.
        room = limit - sum(stored.values())
        with httpx.Client(base_url=registry.url, timeout=60) as client:
            fits = os.urandom(room)
            assert streamed(client, "q/stream", fits).status_code == 201
            refused = streamed(client, "q/stream", b"x")
            assert_oci_error(refused, 403, "DENIED")


def _random_image(size: int) -> Image:
    return make_image([make_layer({"data": os.urandom(size)})])


def _image_bytes(image: Image) -> int:
    return len(image.manifest.data) + sum(b.size for b in image.blobs())


def test_concurrent_skopeo_pushes_store_no_more_than_the_quota(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Six skopeo pushes race for room for two and a half images: two go in, the others are
    refused with the quota's error, the disk holds no blob of theirs past the limit, and
    ``regtui du --root`` counts exactly the two accepted images."""
    skopeo = require_tool("skopeo")
    images = [_random_image(30_000) for _ in range(6)]
    sizes = [_image_bytes(i) for i in images]
    limit = 2 * max(sizes) + max(sizes) // 2
    assert 3 * min(sizes) > limit
    layouts = [
        write_oci_layout(tmp_path / f"layout{i}", image, tag="t") for i, image in enumerate(images)
    ]
    with bundled_registry(tmp_path / "root", config=_quota_config("q/app", limit)) as registry:
        copies = [
            (f"oci:{layout}:t", f"docker://{registry.host}/q/app:t{i}")
            for i, layout in enumerate(layouts)
        ]
        results = skopeo_copy_at_once(skopeo, copies, timeout=180)
        accepted = [i for i, (code, _) in enumerate(results) if code == 0]
        refused = [err for code, err in results if code != 0]
        assert len(accepted) == 2, results
        assert all("quota exceeded" in err and "regtui.quota[0]" in err for err in refused), refused
        stored = stored_blobs(registry.root)
        assert sum(stored.values()) <= limit, (stored, limit)
        assert upload_files(registry.root) == set()
        capsys.readouterr()
        assert main(["du", "--root", str(registry.root), "--json"]) == 0
        usage = {
            r["name"]: r["referenced_bytes"]
            for r in json.loads(capsys.readouterr().out)["repositories"]
        }
        assert usage["q/app"] == sum(sizes[i] for i in accepted) <= limit


def _start_patch(registry: RunningRegistry, location: str, declared: int, sent: bytes) -> None:
    """A PATCH that declares ``declared`` bytes and sends only ``sent`` (left hanging)."""
    path = location.split(registry.host, 1)[-1]
    sock = socket.create_connection(("127.0.0.1", registry.port))
    head = (
        f"PATCH {path} HTTP/1.1\r\nHost: {registry.host}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {declared}\r\n\r\n"
    )
    sock.sendall(head.encode() + sent)
    _hanging.append(sock)


_hanging: list[socket.socket] = []


def reservations(root: Path, repo: str) -> list[dict[str, Any]]:
    """The reservations held in the storage for ``repo``'s quota (its record on the disk)."""
    record = root / "regtui" / "quota" / "repository" / repo / "reservations"
    if not record.exists():
        return []
    return list(json.loads(record.read_text())["reservations"])


def test_a_crashed_uploads_reservation_ends_by_time(tmp_path: Path) -> None:
    """A replica killed during an upload leaves its reservation in the storage: the room it
    held stays taken (no other replica can tell a crash from a slow client) until the
    reservation's time runs out, and then it is free again."""
    size = 50_000
    limit = 2 * size
    root = tmp_path / "root"
    config = _quota_config("q/crash", limit)
    env = {TTL_ENV: "15"}
    try:
        with bundled_registry(root, config=config, env=env) as first:
            with httpx.Client(base_url=first.url, timeout=30) as client:
                location = start_upload(client, "q/crash")
            _start_patch(first, location, int(1.5 * size), os.urandom(1000))
            deadline = time.monotonic() + 30
            while not reservations(root, "q/crash"):  # the PATCH reserved its length
                assert time.monotonic() < deadline, "the PATCH reserved nothing"
                time.sleep(0.05)
            first.process.kill()  # a crash: nothing released it
            first.process.wait(timeout=10)
        (held,) = reservations(root, "q/crash")
        assert held["bytes"] == int(1.5 * size)
        with (
            bundled_registry(root, config=config, env=env) as second,
            httpx.Client(base_url=second.url, timeout=30) as client,
        ):
            blob = os.urandom(size)
            refused = monolithic(client, "q/crash", blob)
            body = assert_oci_error(refused, 403, "DENIED")
            assert body["errors"][0]["detail"]["reserved_bytes"] == int(1.5 * size)
            assert digest_of(blob) not in stored_blobs(root)
            time.sleep(max(0.0, held["expires"] - time.time()) + 0.5)  # its time is out
            assert monolithic(client, "q/crash", blob).status_code == 201
    finally:
        while _hanging:
            _hanging.pop().close()


def test_a_long_upload_keeps_its_reservation_past_its_time(tmp_path: Path) -> None:
    """An upload whose body takes longer than the reservation's time renews it as its bytes
    arrive: the room it holds is never given to another upload meanwhile."""
    size = 60_000
    limit = 100_000
    data = os.urandom(size)
    with (
        bundled_registry(
            tmp_path / "root", config=_quota_config("q/long", limit), env={TTL_ENV: "3"}
        ) as registry,
        httpx.Client(base_url=registry.url, timeout=30) as client,
    ):
        location = start_upload(client, "q/long")
        path = location.split(registry.host, 1)[-1]
        sock = socket.create_connection(("127.0.0.1", registry.port))
        try:
            head = (
                f"PATCH {path} HTTP/1.1\r\nHost: {registry.host}\r\n"
                f"Content-Type: application/octet-stream\r\nContent-Length: {size}\r\n\r\n"
            )
            sock.sendall(head.encode())
            deadline = time.monotonic() + 30
            while not reservations(registry.root, "q/long"):  # the declared length, held
                assert time.monotonic() < deadline, "the PATCH reserved nothing"
                time.sleep(0.05)
            sent = 0
            for _ in range(12):  # 6 s of a slow body: twice the reservation's time
                sock.sendall(data[sent : sent + 1000])
                sent += 1000
                time.sleep(0.5)
            refused = monolithic(client, "q/long", os.urandom(50_000))
            body = assert_oci_error(refused, 403, "DENIED")
            assert body["errors"][0]["detail"]["reserved_bytes"] == size
            sock.sendall(data[sent:])
            answer = sock.recv(65536).decode(errors="replace")
            assert answer.startswith("HTTP/1.1 202"), answer
        finally:
            sock.close()
        response = client.put(with_query(location, digest=digest_of(data)))
        assert response.status_code == 201, response.text
        assert stored_blobs(registry.root) == {digest_of(data): size}
