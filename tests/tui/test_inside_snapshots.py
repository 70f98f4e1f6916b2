"""Snapshots of the Diff and Merged filesystem screens (fixed images: fixed digests and sizes).

Regenerate after an intended change with
``pytest tests/tui/test_inside_snapshots.py --snapshot-update``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from rich.cells import cell_len
from textual.pilot import Pilot
from textual.widgets import DataTable

from tests.helpers.images import push_image
from tests.helpers.inside_images import v1, v2
from tests.helpers.servers import RunningRegistry, bundled_registry
from tests.tui.conftest import AppFactory, wait_for
from tui.screens.diff import DiffScreen
from tui.screens.merged_fs import MergedFsScreen

SIZES = [(80, 24), (200, 60)]


async def settle(pilot: Pilot[None]) -> None:
    """Let pending layout and refreshes land (the machine may be busy)."""
    for _ in range(3):
        await pilot.wait_for_scheduled_animations()
        await pilot.pause(0.2)


@pytest.fixture(scope="module")
def inside(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    with bundled_registry(tmp_path_factory.mktemp("inside-snap") / "registry") as running:
        push_image(running.url, "inside/app", "1", v1())
        push_image(running.url, "inside/app", "2", v2())
        yield running


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "200x60"])
def test_diff_screen(
    snap_compare: Any, inside: RunningRegistry, app_for: AppFactory, size: tuple[int, int]
) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await pilot.app.push_screen(DiffScreen("inside/app", "1", "2"))
        screen = pilot.app.screen
        assert isinstance(screen, DiffScreen)
        await wait_for(pilot, lambda: screen.state == "done")
        # The table sizes its columns for new rows when it is next idle: on a busy machine
        # the picture was once taken before, every column as wide as its label.
        table = screen.query_one("#diff-files", DataTable)
        await wait_for(pilot, lambda: table.row_count > 0 and columns_fit(table))
        await settle(pilot)

    assert snap_compare(app_for(inside), terminal_size=size, run_before=run_before)


def columns_fit(table: DataTable[Any]) -> bool:
    """Whether every column of ``table`` is as wide as its widest cell (a cell's text)."""
    widest = {
        key: max(map(cell_len, map(str, table.get_column(key))), default=0) for key in table.columns
    }
    return all(column.content_width >= widest[key] for key, column in table.columns.items())


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "200x60"])
def test_merged_filesystem_screen(
    snap_compare: Any, inside: RunningRegistry, app_for: AppFactory, size: tuple[int, int]
) -> None:
    async def run_before(pilot: Pilot[None]) -> None:
        await pilot.app.push_screen(MergedFsScreen("inside/app", v2().digest))
        screen = pilot.app.screen
        assert isinstance(screen, MergedFsScreen)
        table = screen.query_one("#merged-files", DataTable)
        await wait_for(pilot, lambda: screen.view is not None and table.row_count == 19)
        await pilot.press("s")  # by size
        await wait_for(pilot, lambda: str(table.get_row_at(0)[4]) == "usr/")
        await settle(pilot)

    assert snap_compare(app_for(inside), terminal_size=size, run_before=run_before)
