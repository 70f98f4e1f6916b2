"""An upload is made durable as it arrives (a background ``fdatasync`` every 16 MiB and at the
end of each request), and a write error such a sync meets fails the closing request.

The kernel reports a writeback error once per open file: when a background sync of a PATCH's
descriptor consumed it, the closing PUT's own ``fsync`` (on a descriptor opened afterwards)
succeeds. The fault seam ``REGTUI_FAIL_AT=fdatasync`` makes every background sync fail with
EIO and leaves the commit's ``fsync`` alone: exactly that case. The blob must then not be
linked nor stored, and the upload not be finishable any more (its bytes are not trusted).
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from embedded_registry.storage.driver.filesystem import FilesystemDriver
from embedded_registry.storage.driver.writeback import FAULT_ENV, SYNC_EVERY
from tests.helpers.servers import bundled_registry
from tests.helpers.spec import (
    OCTETS,
    assert_oci_error,
    blob_files,
    digest_of,
    start_upload,
    upload_files,
    with_query,
)

pytestmark = pytest.mark.timeout(120)

PATCH_BYTES = 3 << 20


def _relative(location: str) -> str:
    parts = urlsplit(location)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


def _push_chunked(
    client: httpx.Client, repo: str, data: bytes, *, failing: bool = False
) -> tuple[str, httpx.Response]:
    """POST, two PATCHes, the closing PUT; the upload's last location and the PUT's answer.
    With ``failing`` syncs, the second PATCH may find the upload emptied by the first one's
    failed sync (416, at offset 0), as the client then learns its bytes are gone."""
    location = _relative(start_upload(client, repo))
    half = len(data) // 2
    for start, end in ((0, half), (half, len(data))):
        patched = client.patch(
            location,
            content=data[start:end],
            headers={**OCTETS, "Content-Range": f"{start}-{end - 1}"},
        )
        if failing and start and patched.status_code == 416:
            assert patched.headers["Range"] == "0-0"
        else:
            assert patched.status_code == 202, patched.text
        location = _relative(patched.headers["Location"])
    finished = client.put(with_query(location, digest=digest_of(data)))
    return location, finished


def test_a_failed_background_sync_fails_the_closing_put(tmp_path: Path) -> None:
    root = tmp_path / "root"
    data = hashlib.shake_256(b"failed background sync").digest(2 * PATCH_BYTES)
    with (
        bundled_registry(root, env={FAULT_ENV: "fdatasync"}) as running,
        httpx.Client(base_url=running.url, timeout=60) as client,
    ):
        location, finished = _push_chunked(client, "durable/failed", data, failing=True)
        assert_oci_error(finished, 500, "UNKNOWN")
        digest = digest_of(data)
        assert client.head(f"/v2/durable/failed/blobs/{digest}").status_code == 404
        assert blob_files(root) == set()
        # The bytes are not trusted: the upload cannot be finished by a second try.
        again = client.put(with_query(location, digest=digest))
        assert_oci_error(again, 404, "BLOB_UPLOAD_UNKNOWN")
        assert not any(path.endswith("/data") for path in upload_files(root))
        # A monolithic push (one writer, a sync every 16 MiB within it) fails the same way.
        big = hashlib.shake_256(b"monolithic").digest(SYNC_EVERY + 4096)
        mono = client.put(
            with_query(_relative(start_upload(client, "durable/mono")), digest=digest_of(big)),
            content=big,
            headers=OCTETS,
        )
        assert_oci_error(mono, 500, "UNKNOWN")
        assert client.head(f"/v2/durable/mono/blobs/{digest_of(big)}").status_code == 404
        assert blob_files(root) == set()


def test_without_a_fault_the_chunked_push_is_stored_and_linked(tmp_path: Path) -> None:
    root = tmp_path / "root"
    data = hashlib.shake_256(b"good background sync").digest(2 * PATCH_BYTES)
    with (
        bundled_registry(root) as running,
        httpx.Client(base_url=running.url, timeout=60) as client,
    ):
        _location, finished = _push_chunked(client, "durable/good", data)
        assert finished.status_code == 201, finished.text
        pulled = client.get(f"/v2/durable/good/blobs/{digest_of(data)}")
        assert pulled.status_code == 200
        assert pulled.content == data
        assert upload_files(root) == set()


def test_the_commit_of_a_later_writer_reports_an_earlier_writers_failed_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At the driver: the PATCHes' writers are closed (their requests answered) before their
    syncs end; the closing request's writer, on a new descriptor (its own fsync succeeds),
    still fails its commit, and the records of the file go once it is deleted."""
    driver = FilesystemDriver(tmp_path)
    key = "/uploads/one/data"
    (tmp_path / "uploads" / "one").mkdir(parents=True)
    (tmp_path / "uploads" / "one" / "data").write_bytes(b"")
    block = hashlib.shake_256(b"block").digest(2 << 20)

    async def scenario() -> None:
        monkeypatch.setenv(FAULT_ENV, "fdatasync")
        for _ in range(2):  # two requests, answered before their syncs end
            writer = await driver.writer(key, append=True)
            await writer.write(block)
            await writer.close()
        closing = await driver.writer(key, append=True)
        with pytest.raises(OSError) as failed:
            await closing.commit()
        assert failed.value.errno == errno.EIO
        monkeypatch.delenv(FAULT_ENV)
        assert not (tmp_path / "uploads" / "one" / "data").exists()
        await driver.delete("/uploads/one")
        assert driver._durable == {}

        # Without a fault: committed, and moved (its record goes with the move).
        (tmp_path / "uploads" / "two").mkdir()
        (tmp_path / "uploads" / "two" / "data").write_bytes(b"")
        for _ in range(2):
            writer = await driver.writer("/uploads/two/data", append=True)
            await writer.write(block)
            await writer.close()
        closing = await driver.writer("/uploads/two/data", append=True)
        await closing.commit()
        await driver.move("/uploads/two/data", "/blobs/two/data")
        assert (tmp_path / "blobs" / "two" / "data").read_bytes() == block * 2
        assert driver._durable == {}

    asyncio.run(scenario())


def test_a_failed_background_sync_empties_the_file_for_a_process_started_after_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The failure is recorded in memory only; a server started anew (no record, and its own
    fsync would not report the error) must not find the file whole: it finds it empty, which
    no pushed digest but the empty one matches."""
    (tmp_path / "uploads" / "three").mkdir(parents=True)
    data_file = tmp_path / "uploads" / "three" / "data"
    data_file.write_bytes(b"")
    key = "/uploads/three/data"

    async def scenario() -> None:
        crashed = FilesystemDriver(tmp_path)
        monkeypatch.setenv(FAULT_ENV, "fdatasync")
        writer = await crashed.writer(key, append=True)
        await writer.write(hashlib.shake_256(b"lost").digest(2 << 20))
        await writer.close()
        with pytest.raises(OSError):
            await crashed._durable[str(data_file)].settle()
        monkeypatch.delenv(FAULT_ENV)
        restarted = FilesystemDriver(tmp_path)
        assert (await restarted.stat(key)).size == 0

    asyncio.run(scenario())
