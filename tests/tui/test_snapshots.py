"""Snapshots of the main screens on the demo registry (fixed content: fixed digests and dates).

Regenerate after an intended change with ``pytest tests/tui/test_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot

from tests.helpers.servers import RunningRegistry
from tests.tui.conftest import AppFactory, wait_for
from tui.screens.image import ImageScreen
from tui.screens.layer_files import LayerFilesScreen
from tui.screens.registry import RegistryScreen
from tui.screens.repository import RepositoryScreen

SIZE = (120, 36)


async def registry_loaded(pilot: Pilot[None]) -> None:
    screen = pilot.app.screen
    assert isinstance(screen, RegistryScreen)
    await wait_for(pilot, lambda: screen.catalog_complete)
    await wait_for(pilot, lambda: len(screen.repo_tree.counts) == 7)
    await pilot.pause(0.2)


def test_registry_screen(snap_compare: Any, demo_registry: RunningRegistry, app_for: AppFactory):
    assert snap_compare(app_for(demo_registry), terminal_size=SIZE, run_before=registry_loaded)


def test_repository_screen(
    snap_compare: Any, demo_registry: RunningRegistry, app_for: AppFactory
) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await registry_loaded(pilot)
        await pilot.app.push_screen(RepositoryScreen("acme/web"))
        screen = pilot.app.screen
        assert isinstance(screen, RepositoryScreen)
        await wait_for(pilot, lambda: screen.details_done)
        await pilot.press("s", "s")  # by date, newest first
        await pilot.pause(0.1)

    assert snap_compare(app_for(demo_registry), terminal_size=SIZE, run_before=run_before)


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
