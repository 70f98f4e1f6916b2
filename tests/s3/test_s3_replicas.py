"""Several bundled registries on one bucket share every upload: a chunked upload started on one
replica goes on and finishes on another (its state is the S3 multipart upload, never one
process's memory), also after the first replica is killed with SIGKILL mid-upload."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers.s3 import SeaweedS3, bundled_on_s3, nginx_round_robin, registry_config
from tests.helpers.servers import require_tool
from tests.helpers.spec import (
    digest_of,
    push_blob_bytes,
    start_upload,
    upload_offset,
    with_query,
)
from tui.imagegen import Image, PushError, make_image, push_image

pytestmark = pytest.mark.slow
MIB = 1 << 20


def _patch(client: httpx.Client, location: str, data: bytes, offset: int) -> httpx.Response:
    return client.patch(
        location,
        content=data,
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{offset}-{offset + len(data) - 1}",
        },
    )


def _path_of(location: str) -> str:
    """The upload URL without the replica's origin: the same path works on any replica."""
    return "/" + location.split("://", 1)[1].split("/", 1)[1] if "://" in location else location


def test_upload_started_on_one_replica_finishes_on_another(
    s3_engine: SeaweedS3, bucket: str, tmp_path: Path
) -> None:
    config = registry_config(s3_engine.s3_config(bucket), redirect={"disable": True})
    data = os.urandom(13 * MIB + 5)
    cut = [0, 3 * MIB, 9 * MIB, 11 * MIB, len(data)]
    with (
        bundled_on_s3(tmp_path, config, name="one") as one,
        bundled_on_s3(tmp_path, config, name="two") as two,
        httpx.Client(base_url=one.url, timeout=60) as first,
        httpx.Client(base_url=two.url, timeout=60) as second,
    ):
        path = _path_of(start_upload(first, "shared"))
        # Alternate replicas chunk by chunk: each sees the bytes the other one wrote.
        for index, (start, end) in enumerate(itertools.pairwise(cut)):
            client = (first, second)[index % 2]
            other = (first, second)[(index + 1) % 2]
            response = _patch(client, path, data[start:end], start)
            assert response.status_code == 202, response.text
            status = other.get(path)
            assert status.status_code == 204 and upload_offset(status) == end - 1
        digest = digest_of(data)
        done = second.put(with_query(path, digest=digest))
        assert done.status_code == 201, done.text
        assert first.get(f"/v2/shared/blobs/{digest}").content == data

        image = make_image([{"x": b"y"}])
        push_image(first, "shared", "latest", image)
        got = second.get(
            "/v2/shared/manifests/latest", headers={"Accept": image.manifest.media_type}
        )
        assert got.content == image.manifest.data
        assert second.get("/v2/_catalog").json() == {"repositories": ["shared"]}


def test_upload_survives_the_kill_of_its_replica(
    s3_engine: SeaweedS3, bucket: str, tmp_path: Path
) -> None:
    config = registry_config(s3_engine.s3_config(bucket), redirect={"disable": True})
    data = os.urandom(7 * MIB)
    with bundled_on_s3(tmp_path, config, name="survivor") as survivor:
        with (
            bundled_on_s3(tmp_path, config, name="victim") as victim,
            httpx.Client(base_url=victim.url, timeout=60) as client,
        ):
            path = _path_of(start_upload(client, "crash"))
            assert _patch(client, path, data[: 6 * MIB], 0).status_code == 202
            victim.process.send_signal(signal.SIGKILL)
            victim.process.wait(timeout=10)
        with httpx.Client(base_url=survivor.url, timeout=60) as client:
            status = client.get(path)
            assert status.status_code == 204 and upload_offset(status) == 6 * MIB - 1
            assert _patch(client, path, data[6 * MIB :], 6 * MIB).status_code == 202
            digest = digest_of(data)
            assert client.put(with_query(path, digest=digest)).status_code == 201
            assert client.get(f"/v2/crash/blobs/{digest}").content == data


def test_gc_on_one_replica_while_the_other_takes_pushes(
    s3_engine: SeaweedS3, bucket: str, tmp_path: Path
) -> None:
    """Online GC through replica one's endpoint while replica two pushes images (re-using a
    layer GC would otherwise sweep): every push acknowledged pulls back whole afterwards."""
    config = registry_config(s3_engine.s3_config(bucket), redirect={"disable": True})
    shared = {"shared": os.urandom(40_000)}
    old = make_image([shared, {"old": b"deleted image\n"}])
    with (
        bundled_on_s3(tmp_path, config, name="gc") as one,
        bundled_on_s3(tmp_path, config, name="pushes") as two,
        httpx.Client(base_url=one.url, timeout=120) as first,
        httpx.Client(base_url=two.url, timeout=120) as second,
    ):
        push_image(first, "app", "old", old)
        assert first.delete(f"/v2/app/manifests/{old.digest}").status_code == 202
        pushed: list[tuple[str, Image]] = []
        errors: list[BaseException] = []
        retried: list[int] = []
        gc_done = threading.Event()

        def pusher() -> None:
            index = 0
            try:
                while not gc_done.is_set() or index < 2:
                    image = make_image([shared, {"n": f"{index}\n".encode()}])
                    for _attempt in range(3):
                        try:
                            push_image(second, "app", f"v{index}", image)
                            break
                        except PushError as exc:
                            # The one failure GC may cause: a blob swept before the manifest
                            # came; nothing was acknowledged, and the client pushes again.
                            assert "MANIFEST_BLOB_UNKNOWN" in str(exc), exc
                            retried.append(index)
                    else:
                        raise AssertionError(f"v{index} never went in")
                    pushed.append((f"v{index}", image))
                    index += 1
            except BaseException as exc:  # reported below
                errors.append(exc)

        thread = threading.Thread(target=pusher)
        thread.start()
        try:
            gc = first.post(
                "/v2/_regtui/ext/gc",
                json={"dry_run": False, "grace_period": 0},
                headers=one.admin_headers(),
            )
        finally:
            gc_done.set()
            thread.join(timeout=300)
        assert gc.status_code == 200, gc.text
        assert not errors, errors
        assert len(pushed) >= 2
        for tag, image in pushed:
            got = first.get(
                f"/v2/app/manifests/{tag}", headers={"Accept": image.manifest.media_type}
            )
            assert got.status_code == 200 and got.content == image.manifest.data
            for blob in image.blobs():
                assert first.get(f"/v2/app/blobs/{blob.digest}").content == blob.data, tag


def test_a_commit_waits_while_another_replica_holds_the_gc_lease(
    s3_engine: SeaweedS3, bucket: str, tmp_path: Path
) -> None:
    from embedded_registry.config import load_config
    from embedded_registry.storage.factory import open_storage
    from embedded_registry.storage.lease import acquire

    config = registry_config(s3_engine.s3_config(bucket), redirect={"disable": True})
    image = make_image([{"waits": b"for the lease\n"}])
    with (
        bundled_on_s3(tmp_path, config, name="waiter") as registry,
        httpx.Client(base_url=registry.url, timeout=120) as client,
    ):
        for blob in image.blobs():
            push_blob_bytes(client, "lease", blob.data)
        loop = asyncio.new_event_loop()
        storage = loop.run_until_complete(open_storage(load_config(data=config, env={})))
        lease = loop.run_until_complete(acquire(storage.driver))  # type: ignore[attr-defined]
        answer: list[httpx.Response] = []
        thread = threading.Thread(
            target=lambda: answer.append(
                client.put(
                    "/v2/lease/manifests/latest",
                    content=image.manifest.data,
                    headers={"Content-Type": image.manifest.media_type},
                )
            )
        )
        try:
            thread.start()
            thread.join(timeout=2.0)
            assert thread.is_alive(), "the manifest PUT did not wait for the GC lease"
            tags = client.get("/v2/lease/tags/list")
            assert tags.status_code == 404 or tags.json()["tags"] == []
        finally:
            loop.run_until_complete(lease.release())
            loop.run_until_complete(storage.close())
            loop.close()
            thread.join(timeout=60)
        assert answer and answer[0].status_code == 201, answer
        assert client.get("/v2/lease/tags/list").json()["tags"] == ["latest"]


def test_skopeo_pushes_through_nginx_round_robin_over_two_replicas(
    s3_engine: SeaweedS3, bucket: str, tmp_path: Path
) -> None:
    skopeo = require_tool("skopeo")
    config = registry_config(s3_engine.s3_config(bucket))  # redirects on: skopeo follows them
    config["log"] = {"level": "info"}  # access logs: which replica took which request
    image = make_image([{"etc/hello": b"balanced\n"}, {"blob": os.urandom(7 * MIB)}])
    source = tmp_path / "source"
    source.mkdir()
    (source / "version").write_text("Directory Transport Version: 1.1\n")
    (source / "manifest.json").write_bytes(image.manifest.data)
    for blob in image.blobs():
        (source / blob.digest.split(":", 1)[1]).write_bytes(blob.data)

    def run(*args: str) -> None:
        result = subprocess.run(
            [skopeo, *args], capture_output=True, text=True, timeout=180, check=False
        )
        assert result.returncode == 0, result.stderr

    with (
        bundled_on_s3(tmp_path, config, name="left") as left,
        bundled_on_s3(tmp_path, config, name="right") as right,
        nginx_round_robin(tmp_path / "nginx", [left, right]) as proxy,
    ):
        host = proxy.url.split("://", 1)[1]
        run("copy", "--dest-tls-verify=false", f"dir:{source}", f"docker://{host}/balanced:v1")
        back = tmp_path / "back"
        run("copy", "--src-tls-verify=false", f"docker://{host}/balanced:v1", f"dir:{back}")
        for replica in (left, right):
            assert "/v2/balanced/" in replica.log(), "nginx sent no request to one replica"
    assert (back / "manifest.json").read_bytes() == image.manifest.data
    for blob in image.blobs():
        assert (back / blob.digest.split(":", 1)[1]).read_bytes() == blob.data


def test_kill_mid_patch_keeps_the_parts_already_in_the_bucket(
    s3_engine: SeaweedS3, bucket: str, tmp_path: Path
) -> None:
    """SIGKILL of a replica in the middle of a PATCH body: the parts it had uploaded stay, the
    other replica reports the upload at their end, and the client goes on from there."""
    config = registry_config(s3_engine.s3_config(bucket), redirect={"disable": True})
    data = os.urandom(24 * MIB)
    with bundled_on_s3(tmp_path, config, name="steady") as steady:
        with (
            bundled_on_s3(tmp_path, config, name="doomed") as doomed,
            httpx.Client(base_url=steady.url, timeout=60) as survivor,
        ):
            path = _path_of(start_upload(survivor, "midway"))
            host, port = doomed.host.rsplit(":", 1)
            sock = socket.create_connection((host, int(port)))
            try:
                sock.sendall(
                    f"PATCH {path} HTTP/1.1\r\nHost: {doomed.host}\r\n"
                    f"Content-Type: application/octet-stream\r\n"
                    f"Content-Length: {len(data)}\r\n\r\n".encode()
                )
                sock.sendall(data[: 15 * MIB])  # one 10 MiB part, and 5 MiB more buffered
                deadline = time.monotonic() + 60
                offset = -1
                while offset < 10 * MIB - 1 and time.monotonic() < deadline:
                    offset = upload_offset(survivor.get(path))
                    time.sleep(0.2)
                assert offset == 10 * MIB - 1, offset
                doomed.process.send_signal(signal.SIGKILL)
                doomed.process.wait(timeout=10)
            finally:
                sock.close()
        with httpx.Client(base_url=steady.url, timeout=60) as client:
            status = client.get(path)
            assert status.status_code == 204
            done = upload_offset(status) + 1
            assert done == 10 * MIB  # what was only buffered in the killed process is gone
            assert _patch(client, path, data[done:], done).status_code == 202
            digest = digest_of(data)
            assert client.put(with_query(path, digest=digest)).status_code == 201
            assert client.get(f"/v2/midway/blobs/{digest}").content == data
