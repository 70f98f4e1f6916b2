"""Storage & GC screen: exact usage and GC on a storage directory, estimate elsewhere."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from textual.widgets import Static

from tests.helpers.servers import RunningRegistry
from tests.tui.conftest import AppFactory, wait_for
from tests.tui.helpers import notifications
from tui.commands.connect import directory_backend
from tui.data.backends import ExtensionBackend
from tui.demo import _app_image, populate
from tui.dialogs.confirm import ConfirmDialog
from tui.screens.storage import StorageScreen


def blob_path(root: Path, digest: str) -> Path:
    hex_digest = digest.split(":", 1)[1]
    return root / "docker/registry/v2/blobs/sha256" / hex_digest[:2] / hex_digest / "data"


async def test_gc_on_a_storage_directory_frees_the_untagged_image(
    fresh_demo: RunningRegistry, app_for: AppFactory
) -> None:
    overwritten = _app_image("api", "2.1.0-rc1", 11)  # pushed as acme/api:edge, then replaced
    gone_layer = blob_path(fresh_demo.root, overwritten.layers[1].digest)
    gone_manifest = blob_path(fresh_demo.root, overwritten.digest)
    shared_base = blob_path(fresh_demo.root, overwritten.layers[0].digest)
    assert gone_layer.exists() and gone_manifest.exists()

    backend = directory_backend(fresh_demo.root, grace_period=0)
    app = app_for(fresh_demo, storage=backend)
    async with app.run_test(size=(120, 50)) as pilot:
        await app.push_screen(StorageScreen())
        screen = app.screen
        assert isinstance(screen, StorageScreen)
        await wait_for(pilot, lambda: screen.before is not None)
        before = screen.before
        assert before is not None and not before.estimate
        assert {repo.name for repo in before.repos} >= {"acme/api", "acme/web", "staging/web"}
        web = next(repo for repo in before.repos if repo.name == "staging/web")
        assert web.shared_bytes > 0  # its layers are acme/web's too

        await pilot.press("n")  # dry run without delete-untagged: nothing to collect
        await wait_for(pilot, lambda: screen.preview is not None)
        assert screen.preview is not None and screen.preview.dry_run
        assert gone_layer.exists()

        await pilot.press("t", "n")  # untagged manifests too
        await wait_for(pilot, lambda: screen.preview is not None and screen.preview.items)
        preview = screen.preview
        assert preview is not None
        names = {item.name for item in preview.items}
        assert overwritten.digest in names and overwritten.layers[1].digest in names
        assert gone_layer.exists()  # a dry run removes nothing

        await pilot.press("g")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        body = str(app.screen.query_one("#confirm-body", Static).render())
        assert overwritten.layers[1].digest in body
        await pilot.press("y")
        await wait_for(pilot, lambda: screen.after is not None, seconds=30)
        assert not gone_layer.exists() and not gone_manifest.exists()
        assert shared_base.exists()
        assert screen.after is not None and screen.after.total_bytes < before.total_bytes
        assert any("Freed" in n for n in notifications(app))


async def test_other_registries_get_an_estimate_and_gc_explained(
    distribution: RunningRegistry, app_for: AppFactory
) -> None:
    await asyncio.to_thread(populate, distribution.url)
    app = app_for(distribution)
    async with app.run_test(size=(120, 50)) as pilot:
        await app.push_screen(StorageScreen())
        screen = app.screen
        assert isinstance(screen, StorageScreen)
        await wait_for(pilot, lambda: screen.before is not None)
        assert screen.before is not None and screen.backend is not None
        assert screen.before.estimate
        assert len(screen.before.repos) == 7
        explain = str(screen.query_one("#gc-explain", Static).render())
        assert "unavailable" in explain and "garbage-collect" in explain
        await pilot.press("g", "n")
        await pilot.pause(0.1)
        assert screen.preview is None and app.screen is screen


def age_storage(root: Path, seconds: float) -> None:
    """Make every file and directory look ``seconds`` old (past GC's grace period)."""
    past = time.time() - seconds
    for path in [root, *root.rglob("*")]:
        os.utime(path, (past, past))


async def test_gc_through_the_bundled_registrys_extension(
    fresh_demo: RunningRegistry, app_for: AppFactory
) -> None:
    overwritten = _app_image("api", "2.1.0-rc1", 11)
    gone_layer = blob_path(fresh_demo.root, overwritten.layers[1].digest)
    shared_base = blob_path(fresh_demo.root, overwritten.layers[0].digest)
    age_storage(fresh_demo.root, 3 * 3600)
    app = app_for(fresh_demo)
    async with app.run_test(size=(120, 50)) as pilot:
        await app.push_screen(StorageScreen())
        screen = app.screen
        assert isinstance(screen, StorageScreen)
        await wait_for(pilot, lambda: screen.before is not None)
        assert isinstance(screen.backend, ExtensionBackend)
        assert screen.before is not None and not screen.before.estimate
        await pilot.press("t", "g")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        assert overwritten.layers[1].digest in str(
            app.screen.query_one("#confirm-body", Static).render()
        )
        await pilot.press("y")
        await wait_for(pilot, lambda: screen.after is not None, seconds=30)
        assert not gone_layer.exists() and shared_base.exists()
        after_panel = screen.query_one("#usage-after")
        assert after_panel is not None
