"""Snapshots of the image screen on the demo registry at 80x24 and 200x60.

Regenerate after an intended change with
``pytest tests/tui/test_image_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

from typing import Any

from textual.pilot import Pilot
from textual.widgets import DataTable

from tests.helpers.servers import RunningRegistry
from tests.tui.conftest import AppFactory, wait_for
from tui.screens.image import ImageScreen
from tui.screens.registry import RegistryScreen

SMALL = (80, 24)
LARGE = (200, 60)


async def image_loaded(pilot: Pilot[None], repo: str, ref: str) -> ImageScreen:
    registry = pilot.app.screen
    assert isinstance(registry, RegistryScreen)
    await wait_for(pilot, lambda: registry.catalog_complete)
    await wait_for(pilot, lambda: len(registry.repo_tree.counts) == 7)
    await pilot.app.push_screen(ImageScreen(repo, ref))
    screen = pilot.app.screen
    assert isinstance(screen, ImageScreen)
    await wait_for(pilot, lambda: screen.result is not None and screen.referrers_loaded)
    return screen


async def open_row(pilot: Pilot[None], screen: ImageScreen, table_id: str) -> ImageScreen:
    """Open the first row of a table of ``screen``, and wait until the new screen is loaded."""
    table = screen.query_one(table_id, DataTable)
    table.focus()
    table.move_cursor(row=0)
    await pilot.press("enter")
    await wait_for(pilot, lambda: pilot.app.screen is not screen)
    child = pilot.app.screen
    assert isinstance(child, ImageScreen)
    await wait_for(pilot, lambda: child.result is not None and child.referrers_loaded)
    return child


def test_index_overview_with_sizes_80x24(
    snap_compare: Any, demo_registry: RunningRegistry, app_for: AppFactory
) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        screen = await image_loaded(pilot, "library/python-demo", "3.12")
        assert screen.index_total is not None
        await pilot.pause(0.1)

    assert snap_compare(app_for(demo_registry), terminal_size=SMALL, run_before=run_before)


def test_index_overview_with_sizes_200x60(
    snap_compare: Any, demo_registry: RunningRegistry, app_for: AppFactory
) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        screen = await image_loaded(pilot, "library/python-demo", "3.12")
        assert screen.index_total is not None
        await pilot.pause(0.1)

    assert snap_compare(app_for(demo_registry), terminal_size=LARGE, run_before=run_before)


def test_raw_tab_of_a_platform_manifest_200x60(
    snap_compare: Any, demo_registry: RunningRegistry, app_for: AppFactory
) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        index = await image_loaded(pilot, "library/python-demo", "3.12")
        platform = await open_row(pilot, index, "#platforms")
        await wait_for(pilot, lambda: platform.raw_config != "")
        await pilot.press("4")
        await pilot.pause(0.1)

    assert snap_compare(app_for(demo_registry), terminal_size=LARGE, run_before=run_before)


def test_empty_referrers_80x24(
    snap_compare: Any, demo_registry: RunningRegistry, app_for: AppFactory
) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await image_loaded(pilot, "acme/api", "2.0.0")
        await pilot.press("5")
        await pilot.pause(0.1)

    assert snap_compare(app_for(demo_registry), terminal_size=SMALL, run_before=run_before)


def test_artifact_referrer_without_pull_80x24(
    snap_compare: Any, demo_registry: RunningRegistry, app_for: AppFactory
) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        index = await image_loaded(pilot, "library/python-demo", "3.12")
        await pilot.press("5")
        await open_row(pilot, index, "#referrer-table")
        await pilot.pause(0.1)

    assert snap_compare(app_for(demo_registry), terminal_size=SMALL, run_before=run_before)
