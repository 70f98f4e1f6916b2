"""Pilot tests of the Diff and Merged filesystem screens on images with known differences."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static

from tests.helpers.images import make_index, push_image
from tests.helpers.inside_images import (
    EXPECTED_FILES,
    EXPECTED_V2_EFFICIENCY,
    EXPECTED_V2_TOP,
    EXPECTED_V2_WASTED,
    v1,
    v2,
)
from tests.helpers.servers import RunningRegistry, bundled_registry
from tests.tui.conftest import AppFactory, wait_for
from tests.tui.helpers import notifications
from tui.logic.fmt import human_size
from tui.logic.inside_view import efficiency_text
from tui.screens.diff import DiffScreen
from tui.screens.find import FindScreen
from tui.screens.image import ImageScreen
from tui.screens.merged_fs import MergedFsScreen
from tui.screens.repository import RepositoryScreen

SIZES = [(80, 24), (200, 60)]
MARK = {"added": "A", "removed": "D", "modified": "M", "unchanged": " "}


@pytest.fixture(scope="module")
def inside(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    with bundled_registry(tmp_path_factory.mktemp("inside-tui") / "registry") as running:
        push_image(running.url, "inside/app", "1", v1())
        push_image(running.url, "inside/app", "2", v2())
        push_image(running.url, "inside/multi", "2", make_index([v2("amd64"), v2("arm64")]))
        yield running


def rows_of(table: DataTable[object]) -> list[list[str]]:
    return [[str(cell) for cell in table.get_row_at(n)] for n in range(table.row_count)]


async def open_repository(pilot: Pilot[None], repo: str) -> RepositoryScreen:
    await pilot.app.push_screen(RepositoryScreen(repo))
    screen = pilot.app.screen
    assert isinstance(screen, RepositoryScreen)
    await wait_for(pilot, lambda: screen.details_done)
    return screen


@pytest.mark.parametrize("size", SIZES)
async def test_diff_of_two_marked_tags(
    inside: RunningRegistry, app_for: AppFactory, size: tuple[int, int]
) -> None:
    app = app_for(inside)
    async with app.run_test(size=size) as pilot:
        repo = await open_repository(pilot, "inside/app")
        repo.table.move_cursor(row=0)
        await pilot.press("space", "space", "equals_sign")  # marks 1 and 2, then diff
        screen = app.screen
        assert isinstance(screen, DiffScreen)
        assert (screen.before, screen.after) == ("1", "2")
        await wait_for(pilot, lambda: screen.state == "done")
        table = screen.query_one("#diff-files", DataTable)
        found = [(row[1].rstrip("/"), row[0]) for row in rows_of(table)]
        assert found == [(path, MARK[change]) for path, change, *_ in EXPECTED_FILES]
        summary = str(screen.query_one("#diff-summary-text", Static).render())
        assert "Config ~ env FOO: 1 → 2" in summary
        assert "Config + exposed_ports 8080/tcp: exposed" in summary
        assert "Layers 1 shared" in summary
        status = str(screen.query_one("#status", Static).render())
        assert status.startswith("3 added · 4 removed · 4 modified")
        # filter by path, then sort by the size of the change
        await pilot.press("slash", *"cache")
        assert [row[1] for row in rows_of(table)] == ["var/cache/a", "var/cache/b", "var/cache/new"]
        await pilot.press("enter", "s")
        assert [row[1] for row in rows_of(table)] == ["var/cache/b", "var/cache/a", "var/cache/new"]
        assert not [n for n in notifications(app) if "error" in n.lower()]


async def test_diff_asks_for_the_other_tag(inside: RunningRegistry, app_for: AppFactory) -> None:
    app = app_for(inside, read_only=True)  # no marking in read-only mode: the prompt asks
    async with app.run_test(size=(80, 24)) as pilot:
        repo = await open_repository(pilot, "inside/app")
        repo.table.move_cursor(row=0)
        await pilot.press("equals_sign")
        await pilot.press(*"nope", "enter")
        assert "No tag 'nope'" in str(app.screen.query_one("#prompt-error", Static).render())
        await pilot.press(*["backspace"] * 4, "2", "enter")
        screen = app.screen
        assert isinstance(screen, DiffScreen) and (screen.before, screen.after) == ("1", "2")
        await wait_for(pilot, lambda: screen.state == "done")
        assert screen.result is not None and screen.result.files is not None
        assert len(screen.result.files) == len(EXPECTED_FILES)


@pytest.mark.parametrize("size", SIZES)
async def test_merged_filesystem_from_the_image_screen(
    inside: RunningRegistry, app_for: AppFactory, size: tuple[int, int]
) -> None:
    app = app_for(inside)
    async with app.run_test(size=size) as pilot:
        await pilot.app.push_screen(ImageScreen("inside/app", "2"))
        image = app.screen
        assert isinstance(image, ImageScreen)
        await wait_for(pilot, lambda: image.raw_config)
        await pilot.press("3", "m")  # the cursor is on layer 0: the view starts there
        screen = app.screen
        assert isinstance(screen, MergedFsScreen)
        await wait_for(pilot, lambda: screen.view is not None and screen.view.layer == 0)
        table = screen.query_one("#merged-files", DataTable)
        await wait_for(pilot, lambda: table.row_count == 14)  # every path of the base: added
        assert {row[0] for row in rows_of(table)} == {"A"}
        assert "efficiency 100.0 %" in str(screen.query_one("#status", Static).render())
        await pilot.press("right_square_bracket")
        await wait_for(pilot, lambda: screen.view is not None and screen.view.layer == 1)
        await wait_for(pilot, lambda: table.row_count == 14 + 5)  # 3 of them removed
        marks = {row[4].split(" → ")[0].rstrip("/"): row[0] for row in rows_of(table)}
        assert {p: m for p, m in marks.items() if m != " "} == {
            p: MARK[c] for p, c in EXPECTED_V2_TOP.items() if c != "unchanged"
        }
        by_path = {row[4].split(" → ")[0].rstrip("/"): row for row in rows_of(table)}
        assert by_path["app/config.json"][1:4] == ["-rw-r--r--", "1000:1000", "40 B"]
        assert by_path["usr/bin/tool"][1] == "-rwx------"
        assert by_path["var/cache"][3] == "7 B"  # a directory's size: what lies below it
        status = str(screen.query_one("#status", Static).render())
        assert f"wasted {human_size(EXPECTED_V2_WASTED)}" in status
        assert f"efficiency {efficiency_text(EXPECTED_V2_EFFICIENCY)}" in status
        # only the layer's changes, sorted by size; then a filter
        await pilot.press("c", "s")
        await wait_for(pilot, lambda: screen.only_changes and table.row_count == 11)
        assert rows_of(table)[0][4] == "var/cache/b"
        await pilot.press("slash", *"cache/")
        await wait_for(pilot, lambda: table.row_count == 3)
        assert [row[0] for row in rows_of(table)] == ["D", "D", "A"]


async def test_merged_filesystem_of_an_index_says_to_pick_a_platform(
    inside: RunningRegistry, app_for: AppFactory
) -> None:
    app = app_for(inside)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.app.push_screen(ImageScreen("inside/multi", "2"))
        image = app.screen
        assert isinstance(image, ImageScreen)
        await wait_for(pilot, lambda: image.result is not None)
        await pilot.press("m")
        assert app.screen is image
        assert any("open one of its platforms" in n for n in notifications(app))


@pytest.mark.parametrize("size", SIZES)
async def test_find_from_the_command_palette(
    inside: RunningRegistry, app_for: AppFactory, size: tuple[int, int]
) -> None:
    app = app_for(inside)
    async with app.run_test(size=size) as pilot:
        await pilot.press("ctrl+p")
        await pilot.press(*"Find tags")
        await pilot.pause(0.3)
        await pilot.press("enter")
        screen = app.screen
        await wait_for(pilot, lambda: isinstance(app.screen, FindScreen))
        screen = app.screen
        assert isinstance(screen, FindScreen)
        await pilot.press(*v1().layers[0].digest, "enter")
        await wait_for(pilot, lambda: screen.state == "done")
        table = screen.query_one("#find-results", DataTable)
        found = sorted(tuple(row) for row in rows_of(table))
        assert found == [
            ("inside/app", "1", "layer", v1().digest[7:19], ""),
            ("inside/app", "2", "layer", v2().digest[7:19], ""),
            ("inside/multi", "2", "layer", v2("amd64").digest[7:19], "linux/amd64"),
            ("inside/multi", "2", "layer", v2("arm64").digest[7:19], "linux/arm64"),
        ]
        assert str(screen.query_one("#status", Static).render()).startswith("4 found")
        # a glob, then open a hit
        screen.query_one("#find-query", Input).value = ""
        screen.query_one("#find-query", Input).focus()
        await pilot.press("1", "enter")
        await wait_for(pilot, lambda: screen.state == "done" and table.row_count == 1)
        assert rows_of(table) == [["inside/app", "1", "tag", "", ""]]
        table.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ImageScreen))
        assert (app.screen.repository, app.screen.reference) == ("inside/app", "1")  # type: ignore[attr-defined]


async def test_find_from_the_registry_screen(inside: RunningRegistry, app_for: AppFactory) -> None:
    app = app_for(inside)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        await pilot.press("f")
        await wait_for(pilot, lambda: isinstance(app.screen, FindScreen))
        screen = app.screen
        assert isinstance(screen, FindScreen)
        await pilot.press(*"re:[0-9]", "enter")
        await wait_for(pilot, lambda: screen.state == "done")
        table = screen.query_one("#find-results", DataTable)
        assert sorted(tuple(row[:2]) for row in rows_of(table)) == [
            ("inside/app", "1"),
            ("inside/app", "2"),
            ("inside/multi", "2"),
        ]
