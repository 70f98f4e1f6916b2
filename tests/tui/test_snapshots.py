"""Snapshots of the main screens on the demo registry (fixed content: fixed digests and dates).

Regenerate after an intended change with ``pytest tests/tui/test_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from textual.pilot import Pilot

from tests.helpers.servers import RunningRegistry
from tests.tui.conftest import AppFactory, wait_for
from tui.dialogs.confirm import ConfirmDialog
from tui.dialogs.help import HelpScreen
from tui.screens.image import ImageScreen
from tui.screens.layer_files import LayerFilesScreen
from tui.screens.registry import RegistryScreen
from tui.screens.repository import RepositoryScreen

SIZE = (120, 36)
SMALL = (80, 24)
LARGE = (200, 60)
MAIN_SIZES = [pytest.param(SMALL, id="80x24"), pytest.param(LARGE, id="200x60")]


PUSHED_AT = 1_706_788_800  # 2024-02-01 12:00 UTC


@pytest.fixture(scope="module", autouse=True)
def fixed_push_times(demo_registry: RunningRegistry) -> None:
    """The Pushed column shows when each tag link was written: pin it, or every snapshot
    of a repository would change with the minute the tests run."""
    repositories = demo_registry.root / "docker" / "registry" / "v2" / "repositories"
    links = list(repositories.glob("**/_manifests/tags/*/current/link"))
    assert links
    for link in links:
        os.utime(link, (PUSHED_AT, PUSHED_AT))


async def registry_loaded(pilot: Pilot[None]) -> None:
    screen = pilot.app.screen
    assert isinstance(screen, RegistryScreen)
    await wait_for(pilot, lambda: screen.catalog_complete)
    await wait_for(pilot, lambda: len(screen.repo_tree.counts) == 7)
    await pilot.pause(0.2)


@pytest.mark.parametrize("size", MAIN_SIZES)
def test_registry_screen(
    snap_compare: Any, demo_registry: RunningRegistry, app_for: AppFactory, size: tuple[int, int]
) -> None:
    assert snap_compare(app_for(demo_registry), terminal_size=size, run_before=registry_loaded)


async def open_acme_web(pilot: Pilot[None]) -> RepositoryScreen:
    await registry_loaded(pilot)
    await pilot.app.push_screen(RepositoryScreen("acme/web"))
    screen = pilot.app.screen
    assert isinstance(screen, RepositoryScreen)
    await wait_for(pilot, lambda: screen.details_done)
    return screen


@pytest.mark.parametrize("size", MAIN_SIZES)
def test_repository_screen(
    snap_compare: Any, demo_registry: RunningRegistry, app_for: AppFactory, size: tuple[int, int]
) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await open_acme_web(pilot)
        await pilot.press("s", "s")  # by date, newest first
        await pilot.pause(0.1)

    assert snap_compare(app_for(demo_registry), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", MAIN_SIZES)
def test_delete_dialog(
    snap_compare: Any, demo_registry: RunningRegistry, app_for: AppFactory, size: tuple[int, int]
) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        screen = await open_acme_web(pilot)
        screen.table.move_cursor(row=screen.table.get_row_index("latest"))
        await pilot.press("d")  # three tags on one digest
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ConfirmDialog))
        await pilot.pause(0.2)

    assert snap_compare(app_for(demo_registry), terminal_size=size, run_before=run_before)


def test_help_at_80x24(
    snap_compare: Any, demo_registry: RunningRegistry, app_for: AppFactory
) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await open_acme_web(pilot)
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, HelpScreen))
        await pilot.pause(0.2)

    assert snap_compare(app_for(demo_registry), terminal_size=SMALL, run_before=run_before)


def test_image_screen_of_an_index(
    snap_compare: Any, demo_registry: RunningRegistry, app_for: AppFactory
) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await registry_loaded(pilot)
        await pilot.app.push_screen(ImageScreen("library/python-demo", "3.12"))
        screen = pilot.app.screen
        assert isinstance(screen, ImageScreen)
        await wait_for(pilot, lambda: screen.result is not None and screen.referrers)
        await pilot.pause(0.1)

    assert snap_compare(app_for(demo_registry), terminal_size=SIZE, run_before=run_before)


def test_image_layers_tab(
    snap_compare: Any, demo_registry: RunningRegistry, app_for: AppFactory
) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await registry_loaded(pilot)
        await pilot.app.push_screen(ImageScreen("acme/web", "1.3.3"))
        screen = pilot.app.screen
        assert isinstance(screen, ImageScreen)
        await wait_for(pilot, lambda: screen.raw_config)
        await pilot.press("3")
        await pilot.pause(0.1)

    assert snap_compare(app_for(demo_registry), terminal_size=SIZE, run_before=run_before)


def test_layer_files_screen(
    snap_compare: Any, demo_registry: RunningRegistry, app_for: AppFactory
) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await registry_loaded(pilot)
        await pilot.app.push_screen(ImageScreen("acme/web", "1.3.3"))
        screen = pilot.app.screen
        assert isinstance(screen, ImageScreen)
        await wait_for(pilot, lambda: screen.layer_list)
        await pilot.app.push_screen(LayerFilesScreen("acme/web", screen.layer_list[0]))
        files = pilot.app.screen
        assert isinstance(files, LayerFilesScreen)
        await wait_for(pilot, lambda: files.state == "done")
        await pilot.press("e")
        await pilot.pause(0.1)

    assert snap_compare(app_for(demo_registry), terminal_size=SIZE, run_before=run_before)
