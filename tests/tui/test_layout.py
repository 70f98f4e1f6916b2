"""Every screen and dialog at 80x24 and at 200x60: the keys, the buttons, the results in view.

"In view" means more than "inside the screen's rectangle": a button clipped by its dialog still
has a region inside the screen. :func:`assert_in_view` also asks the compositor which widget is
drawn at the widget's centre and top-left corner, so a clipped or covered widget fails.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from textual.errors import NoWidget
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Button, DataTable, Footer, Input, Static
from textual.widgets._footer import FooterKey

from tests.helpers.servers import RunningRegistry, distribution_registry
from tests.tui.conftest import AppFactory, wait_for
from tests.tui.helpers import notifications
from tui.app import RegtuiApp
from tui.demo import populate
from tui.dialogs.confirm import ConfirmDialog
from tui.dialogs.help import HelpScreen
from tui.dialogs.prompt import PromptDialog
from tui.dialogs.results import ItemResult, ResultsDialog
from tui.screens.image import ImageScreen
from tui.screens.layer_files import LayerFilesScreen
from tui.screens.registry import RegistryScreen
from tui.screens.repository import RepositoryScreen
from tui.screens.storage import StorageScreen
from tui.widgets.file_tree import FileTree
from tui.widgets.usage_panel import UsagePanel

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((200, 60), id="200x60")]
MAX_COLUMN_WIDTH = 40
"""No table column in the demo needs more; a column stretched to the terminal's width would."""


# -- reading the screen ----------------------------------------------------------------------
def drawn_at(screen: Screen[Any], x: int, y: int) -> Widget | None:
    try:
        widget, _ = screen.get_widget_at(x, y)
    except NoWidget:  # nothing is drawn there
        return None
    return widget


def is_self_or_inside(widget: Widget | None, target: Widget) -> bool:
    node: object = widget
    while isinstance(node, Widget):
        if node is target:
            return True
        node = node.parent
    return False


def assert_in_view(widget: Widget) -> None:
    """``widget`` is on screen, whole, and drawn (not clipped by a parent nor covered)."""
    screen = widget.screen
    region = widget.region
    assert region.area > 0, f"{widget!r} has no region on screen"
    assert screen.region.contains_region(region), f"{widget!r} at {region} is off screen"
    for x, y in (
        (region.x, region.y),
        (region.x + region.width // 2, region.y + region.height // 2),
        (region.right - 1, region.bottom - 1),
    ):
        found = drawn_at(screen, x, y)
        assert is_self_or_inside(found, widget), f"{widget!r}: {found!r} is drawn at {x},{y}"


def footer_keys(screen: Screen[Any]) -> dict[str, FooterKey]:
    footer = screen.query_one(Footer)
    return {key.key: key for key in footer.query(FooterKey)}


async def assert_help_and_quit_in_footer(pilot: Pilot[None], screen: Screen[Any]) -> None:
    # The footer recomposes when the bindings change (focus, a worker's refresh_bindings):
    # wait until the keys it shows now are laid out.
    await wait_for(pilot, lambda: all(k.region.area for k in footer_keys(screen).values()))
    keys = footer_keys(screen)
    for key in ("question_mark", "q"):
        assert key in keys, f"{key} is not in the footer of {screen!r}: {sorted(keys)}"
        assert_in_view(keys[key])


def column_widths(table: DataTable[Any]) -> list[int]:
    return [column.get_render_width(table) for column in table.columns.values()]


async def registry_ready(pilot: Pilot[None]) -> RegistryScreen:
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, RegistryScreen))
    screen = app.screen
    assert isinstance(screen, RegistryScreen)
    await wait_for(pilot, lambda: screen.catalog_complete and len(screen.repo_tree.counts) == 7)
    return screen


async def open_repository(pilot: Pilot[None], repository: str) -> RepositoryScreen:
    app = pilot.app
    await app.push_screen(RepositoryScreen(repository))
    screen = app.screen
    assert isinstance(screen, RepositoryScreen)
    await wait_for(pilot, lambda: screen.details_done)
    await pilot.pause(0.1)
    return screen


def status_of(screen: Screen[Any]) -> str:
    return str(screen.query_one("#status", Static).render())


# -- screens ---------------------------------------------------------------------------------
@pytest.mark.parametrize("size", SIZES)
async def test_registry_screen_keys_and_home_end(
    demo_registry: RunningRegistry, app_for: AppFactory, size: tuple[int, int]
) -> None:
    app = app_for(demo_registry)
    async with app.run_test(size=size) as pilot:
        screen = await registry_ready(pilot)
        await assert_help_and_quit_in_footer(pilot, screen)
        # The first screen has nothing to go back to: no "esc Back" taking room.
        assert "escape" not in footer_keys(screen)
        tree = screen.repo_tree
        last = len(tree.rows) - 1
        assert last > 0 and tree.cursor_line != last
        await pilot.press("end")
        assert tree.cursor_line == last
        await pilot.press("home")
        assert tree.cursor_line == 0
        assert_in_view(screen.query_one("#status"))
        # Plurals: one repository in staging/, one tag in acme/tools/debug.
        labels = tree.labels()
        assert "staging/  1 repository" in labels
        assert "debug  1 tag" in labels
        assert not any("1 repositories" in label or "1 tags" in label for label in labels)


@pytest.mark.parametrize("size", SIZES)
async def test_repository_screen_keys_home_end_widths_and_status(
    demo_registry: RunningRegistry, app_for: AppFactory, size: tuple[int, int]
) -> None:
    app = app_for(demo_registry)
    async with app.run_test(size=size) as pilot:
        await registry_ready(pilot)
        screen = await open_repository(pilot, "acme/web")
        await assert_help_and_quit_in_footer(pilot, screen)
        table = screen.table
        assert table.row_count == 18 and table.cursor_row == 0
        await pilot.press("end")
        assert table.cursor_row == 17
        await pilot.press("home")
        assert table.cursor_row == 0
        assert max(column_widths(table)) <= MAX_COLUMN_WIDTH, column_widths(table)
        assert status_of(screen).startswith("18 tags · enter opens")

        # The status follows the filter, and comes back when it is cleared.
        await pilot.press("slash", *"1.3")
        await pilot.pause(0.1)
        assert 0 < table.row_count < 18
        assert status_of(screen).startswith(f"{table.row_count} of 18 tags match “1.3”")
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert status_of(screen).startswith("18 tags · enter opens")


async def test_one_tag_is_one_tag(demo_registry: RunningRegistry, app_for: AppFactory) -> None:
    app = app_for(demo_registry)
    async with app.run_test(size=(80, 24)) as pilot:
        await registry_ready(pilot)
        screen = await open_repository(pilot, "acme/tools/debug")
        heading = str(screen.query_one("#repo-heading", Static).render())
        assert "· 1 tag ·" in heading
        assert status_of(screen).startswith("1 tag · enter opens")


@pytest.mark.parametrize("size", SIZES)
async def test_storage_screen_shows_the_dry_run_result(
    demo_registry: RunningRegistry, app_for: AppFactory, size: tuple[int, int]
) -> None:
    app = app_for(demo_registry)
    async with app.run_test(size=size) as pilot:
        await registry_ready(pilot)
        await app.push_screen(StorageScreen())
        screen = app.screen
        assert isinstance(screen, StorageScreen)
        await wait_for(pilot, lambda: screen.before is not None)
        await pilot.pause(0.1)
        await assert_help_and_quit_in_footer(pilot, screen)
        for key in ("n", "g", "t", "p"):
            assert key in footer_keys(screen)
        await pilot.press("n")
        await wait_for(pilot, lambda: screen.preview is not None)
        await pilot.pause(0.3)
        preview = screen.query_one("#gc-preview", UsagePanel)
        assert preview.table is not None
        # The title line of the preview ("Would remove: …") is on screen, in the scroll view.
        scroll = screen.query_one("#storage-scroll")
        assert scroll.region.contains(preview.region.x, preview.region.y)
        assert is_self_or_inside(drawn_at(screen, preview.region.x, preview.region.y), preview)
        explain = str(screen.query_one("#gc-explain", Static).render())
        assert "Dry run" not in explain  # the "running" line was replaced by the outcome


@pytest.mark.parametrize("size", SIZES)
async def test_layer_files_screen_keys_and_home_end(
    demo_registry: RunningRegistry, app_for: AppFactory, size: tuple[int, int]
) -> None:
    app = app_for(demo_registry)
    async with app.run_test(size=size) as pilot:
        await registry_ready(pilot)
        await app.push_screen(ImageScreen("acme/web", "1.3.3"))
        image = app.screen
        assert isinstance(image, ImageScreen)
        await wait_for(pilot, lambda: image.layer_list)
        await app.push_screen(LayerFilesScreen("acme/web", image.layer_list[0]))
        screen = app.screen
        assert isinstance(screen, LayerFilesScreen)
        await wait_for(pilot, lambda: screen.state == "done")
        await pilot.pause(0.1)
        await assert_help_and_quit_in_footer(pilot, screen)
        tree = screen.query_one(FileTree)
        tree.focus()
        await pilot.press("end")
        assert tree.cursor_line == tree.last_line > 0
        await pilot.press("home")
        assert tree.cursor_line == 0


@pytest.mark.parametrize("size", SIZES)
async def test_image_tables_move_with_home_end(
    demo_registry: RunningRegistry, app_for: AppFactory, size: tuple[int, int]
) -> None:
    """The layers table of the image screen: Home/End come from the shared screen base."""
    app = app_for(demo_registry)
    async with app.run_test(size=size) as pilot:
        await registry_ready(pilot)
        await app.push_screen(ImageScreen("acme/web", "1.3.3"))
        screen = app.screen
        assert isinstance(screen, ImageScreen)
        await wait_for(pilot, lambda: screen.raw_config)
        await pilot.press("3")
        await pilot.pause(0.1)
        table = screen.query_one("#layer-table", DataTable)
        assert app.focused is table and table.row_count > 1
        await pilot.press("end")
        assert table.cursor_row == table.row_count - 1
        await pilot.press("home")
        assert table.cursor_row == 0
        await assert_help_and_quit_in_footer(pilot, screen)


# -- dialogs ---------------------------------------------------------------------------------
@pytest.mark.parametrize("size", SIZES)
async def test_delete_dialog_buttons_in_view(
    demo_registry: RunningRegistry, app_for: AppFactory, size: tuple[int, int]
) -> None:
    app = app_for(demo_registry)
    async with app.run_test(size=size) as pilot:
        await registry_ready(pilot)
        screen = await open_repository(pilot, "library/alpine-demo")
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.pause(0.1)
        dialog = app.screen
        for button in dialog.query(Button):
            assert_in_view(button)
        body = str(dialog.query_one("#confirm-body", Static).render())
        assert "These 4 tags point at it" in body
        await pilot.press("n")
        await wait_for(pilot, lambda: app.screen is screen)
        # The status says what the screen shows, not "Finding every tag…".
        assert status_of(screen).startswith("4 tags · enter opens")


@pytest.mark.parametrize("size", SIZES)
async def test_a_long_confirmation_scrolls_and_keeps_its_buttons(
    demo_registry: RunningRegistry, app_for: AppFactory, size: tuple[int, int]
) -> None:
    app = app_for(demo_registry)
    async with app.run_test(size=size) as pilot:
        await registry_ready(pilot)
        body = "\n".join(f"  • tag-{number}" for number in range(120))
        results: list[bool | None] = []
        app.push_screen(ConfirmDialog("Delete 120 tags?", body), results.append)
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.pause(0.1)
        dialog = app.screen
        assert dialog.region == app.screen.region
        for button in dialog.query(Button):
            assert_in_view(button)
        scroll = dialog.query_one("#confirm-scroll")
        assert scroll.max_scroll_y > 0
        await pilot.press("pagedown")
        await pilot.pause(0.1)
        assert scroll.scroll_y > 0
        await pilot.press("n")
        await wait_for(pilot, lambda: results == [False])


@pytest.mark.parametrize("size", SIZES)
async def test_untag_dialog_explains_the_fallback(
    demo_registry: RunningRegistry, app_for: AppFactory, size: tuple[int, int]
) -> None:
    app = app_for(demo_registry)
    async with app.run_test(size=size) as pilot:
        await registry_ready(pilot)
        await open_repository(pilot, "acme/web")
        await pilot.press("u")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.pause(0.1)
        dialog = app.screen
        body = str(dialog.query_one("#confirm-body", Static).render())
        assert "placeholder" not in body.lower()
        assert "tiny empty manifest" in body and "deletes that manifest by digest" in body
        for button in dialog.query(Button):
            assert_in_view(button)
        await pilot.press("n")


@pytest.mark.parametrize("size", SIZES)
async def test_prompt_dialog_fits(
    demo_registry: RunningRegistry, app_for: AppFactory, size: tuple[int, int]
) -> None:
    app = app_for(demo_registry)
    async with app.run_test(size=size) as pilot:
        await registry_ready(pilot)
        await pilot.press("o")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptDialog))
        await pilot.press("enter")  # empty: the dialog says what to type
        await pilot.pause(0.1)
        dialog = app.screen
        assert_in_view(dialog.query_one(Input))
        error = dialog.query_one("#prompt-error", Static)
        assert "Enter a repository name" in str(error.render())
        assert_in_view(error)
        await pilot.press("escape")


@pytest.mark.parametrize("size", SIZES)
async def test_results_dialog_fits(
    demo_registry: RunningRegistry, app_for: AppFactory, size: tuple[int, int]
) -> None:
    app = app_for(demo_registry)
    async with app.run_test(size=size) as pilot:
        await registry_ready(pilot)
        results = [ItemResult(f"delete tag-{n}", n % 3 != 0, "detail") for n in range(80)]
        app.push_screen(ResultsDialog("Delete marked", results))
        await wait_for(pilot, lambda: isinstance(app.screen, ResultsDialog))
        await pilot.pause(0.1)
        dialog = app.screen
        assert_in_view(dialog.query_one(".dialog-title"))
        assert_in_view(dialog.query_one(".dialog-footer"))
        assert dialog.query_one("#results-scroll").max_scroll_y > 0
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RegistryScreen))


@pytest.mark.parametrize("size", SIZES)
async def test_help_lists_the_screens_own_keys_first(
    demo_registry: RunningRegistry, app_for: AppFactory, size: tuple[int, int]
) -> None:
    app = app_for(demo_registry)
    async with app.run_test(size=size) as pilot:
        await registry_ready(pilot)
        await open_repository(pilot, "acme/web")
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.pause(0.1)
        dialog = app.screen
        assert isinstance(dialog, HelpScreen)
        sections = [entry.section for entry in dialog.entries]
        assert sections == sorted(sections, key=["This screen", "In the list", "Everywhere"].index)
        own = [entry.description for entry in dialog.entries if entry.section == "This screen"]
        assert own[:2] == ["Sort", "Reverse"] and "Delete the digest" in own
        everywhere = {e.key: e.description for e in dialog.entries if e.section == "Everywhere"}
        assert everywhere["?"] == "Help" and everywhere["q"] == "Quit"
        assert everywhere["home"] == "First row" and everywhere["end"] == "Last row"
        assert_in_view(dialog.query_one(".dialog-title"))
        assert_in_view(dialog.query_one(".dialog-footer"))
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RepositoryScreen))


# -- keys that cannot work here ---------------------------------------------------------------
async def test_read_only_hides_deletion_and_says_why(
    demo_registry: RunningRegistry, app_for: AppFactory
) -> None:
    app = app_for(demo_registry, read_only=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await registry_ready(pilot)
        screen = await open_repository(pilot, "acme/web")
        keys = footer_keys(screen)
        assert not {"d", "u", "D", "k", "space"} & set(keys), sorted(keys)
        await pilot.press("d")
        await pilot.pause(0.1)
        assert app.screen is screen
        assert any("Not available" in n and "--read-only" in n for n in notifications(app))


async def test_gc_keys_on_distribution_are_hidden_and_say_why(
    distribution: RunningRegistry, app_for: AppFactory
) -> None:
    await asyncio.to_thread(populate, distribution.url)
    app = app_for(distribution)
    async with app.run_test(size=(80, 24)) as pilot:
        await registry_ready(pilot)
        await app.push_screen(StorageScreen())
        screen = app.screen
        assert isinstance(screen, StorageScreen)
        await wait_for(pilot, lambda: screen.before is not None)
        await pilot.pause(0.1)
        keys = footer_keys(screen)
        assert not {"n", "g", "t", "p"} & set(keys), sorted(keys)
        await assert_help_and_quit_in_footer(pilot, screen)
        for key in ("g", "n"):
            await pilot.press(key)
            await pilot.pause(0.1)
        said = [n for n in notifications(app) if n.startswith("Not available")]
        assert len(said) == 2 and all("registry garbage-collect" in n for n in said)
        assert screen.preview is None and app.screen is screen


async def test_a_registry_that_refuses_deletion_hides_the_keys_after_its_405(
    tmp_path: Path, app_for: AppFactory
) -> None:
    with distribution_registry(
        tmp_path / "no-delete", config={"storage": {"delete": {"enabled": False}}}
    ) as registry:
        await asyncio.to_thread(populate, registry.url)
        app = app_for(registry)
        async with app.run_test(size=(80, 24)) as pilot:
            await registry_ready(pilot)
            screen = await open_repository(pilot, "acme/api")
            assert "d" in footer_keys(screen)
            await pilot.press("d")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
            await pilot.press("y")
            await wait_for(pilot, lambda: any("Deletion disabled" in n for n in notifications(app)))
            await pilot.pause(0.2)
            assert app.screen is screen
            assert not {"d", "u", "D"} & set(footer_keys(screen))
            assert status_of(screen).startswith("3 tags · enter opens")
            await pilot.press("u")
            await pilot.pause(0.1)
            assert app.screen is screen  # no dialog for a deletion that cannot happen
            said = [n for n in notifications(app) if n.startswith("Not available")]
            assert said and "storage.delete.enabled" in said[-1]


# -- the import circle -----------------------------------------------------------------------
def test_screens_dialogs_and_widgets_load_without_the_app_module() -> None:
    probe = (
        "import sys\n"
        "import tui.screens.registry, tui.screens.repository, tui.screens.storage\n"
        "import tui.screens.image, tui.screens.layer_files, tui.widgets.palette\n"
        "import tui.dialogs.help, tui.dialogs.confirm, tui.dialogs.prompt, tui.dialogs.results\n"
        "print('tui.app' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_the_app_is_a_regtui_host() -> None:
    """What the screens rely on through the Protocol, the app has (at run time too)."""
    from tui.host import RegtuiHost

    members = [name for name in dir(RegtuiHost) if not name.startswith("_")]
    members += list(RegtuiHost.__annotations__)
    missing = [name for name in members if not hasattr(RegtuiApp, name)]
    # ``settings``, ``deletion_refused``, ``scrub_broken`` are set per instance in ``__init__``.
    assert set(missing) <= {"settings", "deletion_refused", "scrub_broken"}, missing
