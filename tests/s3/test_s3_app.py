"""The app on Distribution backed by S3: ``regtui connect HOST --config config.yml`` shows the
bucket's exact usage and collects garbage on it, as ``--storage DIR`` does on a directory.

Real pieces only: Debian's docker-registry on a SeaweedFS bucket, its own config.yml handed to
the app, the app driven by Pilot; what GC removed is read back from the bucket.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx
import pytest
from textual.widgets import Static

from tests.helpers.s3 import SeaweedS3, distribution_on_s3
from tests.s3.test_s3_registry import bucket_keys
from tests.tui.conftest import wait_for
from tests.tui.helpers import notifications
from tui.app import AppSettings, make_app
from tui.commands.connect import CommandError, config_backend
from tui.dialogs.confirm import ConfirmDialog
from tui.imagegen import make_image, push_image
from tui.screens.storage import StorageScreen

pytestmark = [pytest.mark.slow, pytest.mark.interop]


def _blob_key(digest: str) -> str:
    """The blob's key under the config's rootdirectory."""
    hex_digest = digest.split(":", 1)[1]
    return f"docker/registry/v2/blobs/sha256/{hex_digest[:2]}/{hex_digest}/data"


async def _keys(engine: SeaweedS3, bucket: str, rootdirectory: str) -> set[str]:
    prefix = f"{rootdirectory.strip('/')}/" if rootdirectory.strip("/") else ""
    keys = await asyncio.to_thread(bucket_keys, engine, bucket)
    return {key.removeprefix(prefix) for key in keys if key.startswith(prefix)}


async def test_the_app_collects_garbage_on_distributions_bucket(
    s3_engine: SeaweedS3, bucket: str, tmp_path: Path
) -> None:
    s3 = s3_engine.s3_config(bucket)
    kept = make_image([{"kept": b"still tagged\n"}, {"shared": b"shared layer\n"}])
    dropped = make_image([{"dropped": os.urandom(40_000)}, {"shared": b"shared layer\n"}])
    with distribution_on_s3(tmp_path, s3) as registry:
        with httpx.Client(base_url=registry.url, timeout=60) as client:
            # The dropped image first: S3 times are whole seconds, and GC (under the default
            # grace period of the config) keeps blobs written in the same second as their
            # repository's last commit, as they may belong to a push in flight.
            await asyncio.to_thread(push_image, client, "app", "dropped", dropped)
            await asyncio.sleep(1.1)
            await asyncio.to_thread(push_image, client, "app", "kept", kept)
            deleted = await asyncio.to_thread(client.delete, f"/v2/app/manifests/{dropped.digest}")
            assert deleted.status_code == 202, deleted.text
        only_dropped = {b.digest for b in dropped.blobs()} - {b.digest for b in kept.blobs()}
        only_dropped.add(dropped.digest)
        dropped_bytes = (
            sum(len(b.data) for b in dropped.blobs() if b.digest in only_dropped)
            + dropped.manifest.size
        )

        # Distribution's own config.yml, as `registry garbage-collect FILE` reads it.
        backend = config_backend(str(tmp_path / "distribution-s3.yml"))
        assert f"s3://{bucket}" in backend.label
        settings = AppSettings(registry=registry.host, insecure=True, timeout=10.0)
        app = make_app(settings, storage=backend)
        async with app.run_test(size=(120, 50)) as pilot:
            await app.push_screen(StorageScreen())
            screen = app.screen
            assert isinstance(screen, StorageScreen)
            await wait_for(pilot, lambda: screen.before is not None, seconds=60)
            before = screen.before
            assert before is not None and not before.estimate
            assert [repo.name for repo in before.repos] == ["app"]
            assert before.reclaimable_bytes == dropped_bytes

            await pilot.press("n")  # the dry run names exactly the dropped image's blobs
            await wait_for(pilot, lambda: screen.preview is not None, seconds=60)
            preview = screen.preview
            assert preview is not None and preview.dry_run
            assert {item.name for item in preview.items if item.kind == "blob"} == only_dropped
            assert set(map(_blob_key, only_dropped)) <= await _keys(
                s3_engine, bucket, s3.get("rootdirectory", "")
            )

            await pilot.press("g")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
            body = str(app.screen.query_one("#confirm-body", Static).render())
            assert f"s3://{bucket}" in body
            await pilot.press("y")
            await wait_for(pilot, lambda: screen.after is not None, seconds=90)
            after = screen.after
            assert after is not None
            assert after.total_bytes == before.total_bytes - dropped_bytes
            assert after.reclaimable_bytes == 0
            assert any("Freed" in n for n in notifications(app))

        keys = await _keys(s3_engine, bucket, s3.get("rootdirectory", ""))
        assert not keys & set(map(_blob_key, only_dropped))
        assert {_blob_key(b.digest) for b in kept.blobs()} <= keys
        # What is still tagged pulls from Distribution, unchanged.
        with httpx.Client(base_url=registry.url, timeout=60) as client:
            for blob in kept.blobs():
                got = client.get(f"/v2/app/blobs/{blob.digest}")
                assert got.status_code == 200 and got.content == blob.data


def test_a_config_that_names_no_usable_storage_is_one_line(tmp_path: Path) -> None:
    # No storage driver: refused, never the default root in its place.
    no_storage = tmp_path / "config.yml"
    no_storage.write_text("version: 0.1\nhttp:\n  addr: 127.0.0.1:5000\n")
    with pytest.raises(CommandError) as raised:
        config_backend(str(no_storage))
    message = str(raised.value)
    assert str(no_storage) in message and "no storage driver" in message and "\n" not in message
    missing = tmp_path / "missing-root.yml"
    missing.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path / 'nowhere'}\n"
    )
    with pytest.raises(CommandError, match="not a registry storage directory"):
        config_backend(str(missing))
