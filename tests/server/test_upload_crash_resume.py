"""A chunked push across a crash, over real HTTP: the server killed (SIGKILL) in the middle of a
PATCH, started again on the same root, and the client going on from the upload's status.

The writes of an upload are pipelined (the event loop reads the next block while a lane
writes the last one; a failed write is reported later): what a crash leaves must still be a
prefix of what was sent, at least what was acknowledged, and the push finished after the
restart (no hash state in memory any more) must verify against the whole blob.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.helpers.servers import bundled_registry
from tests.helpers.spec import OCTETS, V2, digest_of, with_query

pytestmark = pytest.mark.timeout(180)

FIRST = 3 << 20
SECOND = 12 << 20


def _size_from_range(response: httpx.Response) -> int:
    end = int(response.headers["Range"].rpartition("-")[2])
    return end + 1


def _upload_file(root: Path, repo: str, upload_id: str) -> Path:
    return root / V2 / "repositories" / repo / "_uploads" / upload_id / "data"


def test_a_server_killed_mid_patch_leaves_an_upload_that_resumes_and_verifies(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    data = hashlib.shake_256(b"crash mid patch").digest(FIRST + SECOND + (1 << 20))
    with bundled_registry(root) as running:
        with httpx.Client(base_url=running.url, timeout=60) as client:
            started = client.post("/v2/crash/blobs/uploads/")
            assert started.status_code == 202
            upload_id = started.headers["Docker-Upload-UUID"]
            path = urlsplit(started.headers["Location"])
            location = f"{path.path}?{path.query}"
            first = client.patch(
                location,
                content=data[:FIRST],
                headers={**OCTETS, "Content-Range": f"0-{FIRST - 1}"},
            )
            assert first.status_code == 202, first.text
            location = urlsplit(first.headers["Location"]).path
        # The second PATCH: half of its body sent, then the server dies mid-request.
        with socket.create_connection((urlsplit(running.url).hostname, running.port)) as sock:
            sock.sendall(
                (
                    f"PATCH {location} HTTP/1.1\r\nHost: {running.host}\r\n"
                    "Content-Type: application/octet-stream\r\n"
                    f"Content-Range: {FIRST}-{FIRST + SECOND - 1}\r\n"
                    f"Content-Length: {SECOND}\r\n\r\n"
                ).encode()
            )
            sock.sendall(data[FIRST : FIRST + SECOND // 2])
            on_disk = _upload_file(root, "crash", upload_id)
            deadline = time.monotonic() + 60
            while on_disk.stat().st_size <= FIRST:
                assert time.monotonic() < deadline, "the second PATCH never reached the disk"
                time.sleep(0.02)
            os.kill(running.process.pid, signal.SIGKILL)
            running.process.wait(timeout=10)

    kept = _upload_file(root, "crash", upload_id).read_bytes()
    assert FIRST <= len(kept) <= FIRST + SECOND // 2
    assert kept == data[: len(kept)]  # a prefix: no hole, no byte out of place

    with bundled_registry(root) as again, httpx.Client(base_url=again.url, timeout=60) as client:
        status = client.get(location)
        assert status.status_code == 204, status.text
        offset = _size_from_range(status)
        assert offset == len(kept)
        rest = client.patch(
            location,
            content=data[offset:],
            headers={**OCTETS, "Content-Range": f"{offset}-{len(data) - 1}"},
        )
        assert rest.status_code == 202, rest.text
        assert _size_from_range(rest) == len(data)
        done = client.put(with_query(location, digest=digest_of(data)))
        assert done.status_code == 201, done.text
        pulled = client.get(f"/v2/crash/blobs/{digest_of(data)}")
        assert pulled.status_code == 200 and pulled.content == data
