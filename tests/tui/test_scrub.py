"""The Scrub screen (s on the Storage screen): progress, the problems with the images they
break, a repair after a confirmation, and the broken images marked in the catalog; at 80x24
and larger. A real bundled registry with the demo images, a blob damaged on its disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from textual.widgets import DataTable, ProgressBar, Static

from tests.helpers.servers import RunningRegistry
from tests.tui.conftest import AppFactory, wait_for
from tests.tui.test_keys_80x24 import assert_keys_in_view
from tests.tui.test_layout import registry_ready
from tests.tui.test_storage import blob_path
from tui.dialogs.confirm import ConfirmDialog
from tui.screens.registry import RegistryScreen
from tui.screens.scrub import ScrubScreen
from tui.screens.storage import StorageScreen


def _damage_a_layer(root: Path, repository: str, tag: str) -> str:
    """Flip a byte of the first layer of ``repository:tag`` (an image manifest, or the first
    child of an index); its digest."""
    base = root / "docker/registry/v2/repositories" / repository / "_manifests/tags"
    digest = (base / tag / "current/link").read_text()
    document = json.loads(blob_path(root, digest).read_bytes())
    if "manifests" in document:
        document = json.loads(blob_path(root, document["manifests"][0]["digest"]).read_bytes())
    layer = str(document["layers"][0]["digest"])
    path = blob_path(root, layer)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))
    return layer


def _first_tag(root: Path, repository: str) -> str:
    tags = root / "docker/registry/v2/repositories" / repository / "_manifests/tags"
    return sorted(p.name for p in tags.iterdir())[0]


def _first_repository(root: Path) -> str:
    base = root / "docker/registry/v2/repositories"
    return sorted(p.parent.relative_to(base).as_posix() for p in base.glob("**/_manifests"))[0]


async def _scrub_screen(pilot, app) -> ScrubScreen:  # type: ignore[no-untyped-def]
    await registry_ready(pilot)
    await pilot.press("g")
    await wait_for(pilot, lambda: isinstance(app.screen, StorageScreen))
    if app.size.width >= 100:  # at 80 columns the Storage footer ends at "p Grace period"
        await assert_keys_in_view(pilot, app.screen, ["s"])
    await pilot.press("s")
    await wait_for(pilot, lambda: isinstance(app.screen, ScrubScreen))
    screen = app.screen
    assert isinstance(screen, ScrubScreen)
    return screen


@pytest.mark.parametrize("size", [(80, 24), (140, 45)])
async def test_scrub_screen_finds_the_damage_and_marks_the_catalog(
    fresh_demo: RunningRegistry, app_for: AppFactory, size: tuple[int, int]
) -> None:
    repository = _first_repository(fresh_demo.root)
    tag = _first_tag(fresh_demo.root, repository)
    layer = _damage_a_layer(fresh_demo.root, repository, tag)
    app = app_for(fresh_demo)
    async with app.run_test(size=size) as pilot:
        screen = await _scrub_screen(pilot, app)
        await wait_for(pilot, lambda: screen.view is not None)
        assert screen.view is not None and not screen.view.clean
        assert screen.query_one(ProgressBar).progress == 1.0
        table = screen.query_one(DataTable)
        rows = [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]
        damaged = [row for row in rows if row[1] == "blob-corrupt"]
        assert len(damaged) == 1 and damaged[0][2] == layer[7:19]
        assert f"{repository}:{tag}" in damaged[0][3]
        status = str(screen.query_one("#scrub-status", Static).render())
        assert status.startswith("Scrubbed: 1 problem")
        await assert_keys_in_view(pilot, screen, ["question_mark", "q", "s", "x"])

        await pilot.press("escape", "escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RegistryScreen))
        registry = app.screen
        assert isinstance(registry, RegistryScreen)
        await wait_for(pilot, lambda: repository in registry.repo_tree.broken)
        # Every repository with a broken image is marked, and only those (a shared base
        # layer breaks the images of several repositories).
        tree = registry.repo_tree
        marked = {
            row.node.repository
            for row in tree.rows
            if row.node.repository and "broken image" in str(tree.row_label(row))
        }
        assert screen.view is not None and repository in marked
        assert marked == {
            r for r in screen.view.broken if r in {x.node.repository for x in tree.rows}
        }


async def test_repair_from_the_screen_quarantines_after_a_confirmation(
    fresh_demo: RunningRegistry, app_for: AppFactory
) -> None:
    repository = _first_repository(fresh_demo.root)
    layer = _damage_a_layer(fresh_demo.root, repository, _first_tag(fresh_demo.root, repository))
    app = app_for(fresh_demo)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _scrub_screen(pilot, app)
        await wait_for(pilot, lambda: screen.view is not None)
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        assert blob_path(fresh_demo.root, layer).exists()  # nothing before the answer
        await pilot.press("y")
        await wait_for(pilot, lambda: screen.view is not None and screen.view.repair)
        assert screen.view is not None
        [row] = [r for r in screen.view.rows if r.kind == "blob-corrupt"]
        assert row.repaired is not None and row.repaired.startswith("quarantined")
        assert not blob_path(fresh_demo.root, layer).exists()


async def test_read_only_app_cannot_repair(
    demo_registry: RunningRegistry, app_for: AppFactory
) -> None:
    app = app_for(demo_registry, read_only=True)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _scrub_screen(pilot, app)
        await wait_for(pilot, lambda: screen.view is not None)
        assert screen.view is not None and screen.view.clean
        await pilot.press("x")
        await pilot.pause(0.2)
        assert isinstance(app.screen, ScrubScreen)  # no confirmation: refused with a reason
        assert screen.unavailable_reason("repair") is not None
