"""Keys a user can find, at 80x24: the footers, help, the index Overview, the Raw tab, Find,
the layer-files filter and the merged filesystem's tree (a real bundled registry, demo images).
"""

from __future__ import annotations

import time
from typing import Any

from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import DataTable, Input, Tabs

from tests.helpers.servers import RunningRegistry
from tests.tui.conftest import AppFactory, wait_for
from tests.tui.test_layout import assert_in_view, footer_keys, registry_ready
from tui.app import AppSettings, RegtuiApp, make_app
from tui.dialogs.help import HelpScreen
from tui.logic.fmt import HEADER_CHROME
from tui.screens.find import FindScreen
from tui.screens.image import ImageScreen
from tui.screens.layer_files import LayerFilesScreen
from tui.screens.merged_fs import MergedFsScreen
from tui.screens.repository import RepositoryScreen
from tui.widgets.file_tree import FileTree
from tui.widgets.merged_tree import MergedTree

SMALL = (80, 24)


def app_as_the_cli_makes_it(registry: RunningRegistry) -> RegtuiApp:
    """``regtui serve --local``'s app: its header names the registry by its host."""
    settings = AppSettings(
        registry=registry.host, insecure=True, title=f"local registry {registry.host}"
    )
    return make_app(settings)


async def assert_keys_in_view(
    pilot: Pilot[None], screen: Screen[Any], keys: list[str], *, seconds: float = 60.0
) -> None:
    """Every key of ``keys`` is in the footer, on screen. The footer is composed again when
    the focus or the bindings change, and its new keys have no region until the next layout:
    check again until it holds (or the time is up, with the last failure)."""
    deadline = time.monotonic() + seconds
    while True:
        shown = footer_keys(screen)
        try:
            for key in keys:
                assert key in shown, f"{key} is not in the footer: {sorted(shown)}"
                assert_in_view(shown[key])
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        await pilot.pause(0.05)


async def open_image(pilot: Pilot[None], repository: str, reference: str) -> ImageScreen:
    await pilot.app.push_screen(ImageScreen(repository, reference))
    screen = pilot.app.screen
    assert isinstance(screen, ImageScreen)
    await wait_for(pilot, lambda: screen.result is not None)
    return screen


async def test_registry_footer_shows_find_and_retention(
    demo_registry: RunningRegistry, app_for: AppFactory
) -> None:
    app = app_for(demo_registry)
    async with app.run_test(size=SMALL) as pilot:
        screen = await registry_ready(pilot)
        await assert_keys_in_view(pilot, screen, ["question_mark", "q", "f", "p", "o", "g", "r"])


async def test_repository_footer_keeps_the_screens_own_keys_and_help_shows_them_as_typed(
    demo_registry: RunningRegistry, app_for: AppFactory
) -> None:
    app = app_for(demo_registry)
    async with app.run_test(size=SMALL) as pilot:
        await registry_ready(pilot)
        await app.push_screen(RepositoryScreen("library/python-demo"))
        screen = app.screen
        assert isinstance(screen, RepositoryScreen)
        await wait_for(pilot, lambda: screen.details_done)
        await assert_keys_in_view(pilot, screen, ["s", "d", "u", "space", "D", "k"])
        # Compact cells: the platforms as a count and names; every column inside 80 cells.
        cells = [str(cell) for cell in screen.table.get_row("3.12")]
        assert "2: amd64, arm64" in cells
        widths = [c.get_render_width(screen.table) for c in screen.table.columns.values()]
        assert sum(widths) <= SMALL[0], widths
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        keys = {entry.description: entry.key for entry in help_screen.entries}
        assert keys["Diff"] == "="
        assert keys["Help"] == "?"
        assert keys["Delete the digest"] == "d"  # the footer's short word said in full
        assert not [key for key in keys.values() if "_" in key], keys


async def test_index_overview_down_and_enter_reach_the_platforms(
    demo_registry: RunningRegistry,
) -> None:
    app = app_as_the_cli_makes_it(demo_registry)
    async with app.run_test(size=SMALL) as pilot:
        await registry_ready(pilot)
        screen = await open_image(pilot, "library/python-demo", "3.12")
        platforms = screen.query_one("#platforms", DataTable)
        await wait_for(pilot, lambda: platforms.row_count == 2 and screen.index_total)
        # From the tab bar (where a click or tab leaves the focus), down reaches the list.
        screen.query_one(Tabs).focus()
        await pilot.pause()
        await pilot.press("down")
        assert app.focused is platforms
        assert_in_view(platforms)
        # enter too, and enter again opens the platform under the cursor.
        screen.query_one(Tabs).focus()
        await pilot.pause()
        await pilot.press("enter")
        assert app.focused is platforms
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: app.screen is not screen)
        opened = app.screen
        assert isinstance(opened, ImageScreen) and opened.parent_index is not None
        assert opened.platform is not None and opened.platform.architecture == "arm64"
        # The title keeps the host, however long the repository and digest.
        shown = f"{opened.title} — {opened.sub_title}"
        assert demo_registry.host in shown and len(shown) <= SMALL[0] - HEADER_CHROME


async def test_raw_tab_scrolls_with_pagedown_at_once(
    demo_registry: RunningRegistry, app_for: AppFactory
) -> None:
    app = app_for(demo_registry)
    async with app.run_test(size=SMALL) as pilot:
        await registry_ready(pilot)
        screen = await open_image(pilot, "acme/web", "1.3.3")
        await wait_for(pilot, lambda: bool(screen.raw_config))
        raw = screen.query_one("#raw-scroll")
        await pilot.press("4")
        await pilot.pause()
        assert raw.scroll_y == 0 and raw.max_scroll_y > 0
        await pilot.press("pagedown")
        await pilot.pause(0.3)
        assert raw.scroll_y > 0
        # Reached from the tab bar with its arrows: page keys still scroll the text.
        await pilot.press("1")
        tabs = screen.query_one(Tabs)
        tabs.focus()
        await pilot.pause()
        raw.scroll_home(animate=False)
        await pilot.press("right", "right", "right")
        await wait_for(pilot, lambda: screen.active_tab == "raw")
        await pilot.press("pagedown")
        await pilot.pause(0.3)
        assert raw.scroll_y > 0


async def test_find_keeps_the_query_box_focused_for_the_next_query(
    demo_registry: RunningRegistry, app_for: AppFactory
) -> None:
    app = app_for(demo_registry)
    async with app.run_test(size=SMALL) as pilot:
        await registry_ready(pilot)
        await pilot.press("f")
        await wait_for(pilot, lambda: isinstance(app.screen, FindScreen))
        screen = app.screen
        assert isinstance(screen, FindScreen)
        query = screen.query_one("#find-query", Input)
        table = screen.query_one(DataTable)
        await pilot.press(*"1.*", "enter")
        await wait_for(pilot, lambda: screen.state == "done")
        assert table.row_count == screen.hits > 1
        assert app.focused is query
        await assert_keys_in_view(pilot, screen, ["down"])
        # The next query is typed at once, into the same box.
        await pilot.press(*["backspace"] * 3, *"latest", "enter")
        await wait_for(pilot, lambda: screen.state == "done" and query.value == "latest")
        assert app.focused is query
        assert {str(table.get_row_at(i)[1]) for i in range(table.row_count)} == {"latest"}
        # down goes to the results; enter there opens the image.
        await pilot.press("down")
        assert app.focused is table
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ImageScreen))


async def test_slash_filters_the_layer_files_tree(
    demo_registry: RunningRegistry, app_for: AppFactory
) -> None:
    app = app_for(demo_registry)
    async with app.run_test(size=SMALL) as pilot:
        await registry_ready(pilot)
        image = await open_image(pilot, "acme/web", "1.3.3")
        await wait_for(pilot, lambda: image.layer_list)
        await app.push_screen(LayerFilesScreen("acme/web", image.layer_list[0]))
        screen = app.screen
        assert isinstance(screen, LayerFilesScreen)
        await wait_for(pilot, lambda: screen.state == "done")
        tree = screen.query_one(FileTree)
        everything = screen.root_node
        assert everything is not None
        all_paths = [path for path, _ in everything.walk()]
        assert "etc/passwd" in all_paths and "lib/libc.so.6" in all_paths
        await pilot.press("slash", *"passwd")
        await pilot.pause(0.2)
        shown = tree.root.data
        assert shown is not None
        assert [path for path, _ in shown.walk()] == ["etc", "etc/passwd"]
        # the directories on the way are open: the match is a visible line of the tree
        assert any(
            "passwd" in str(tree.get_node_at_line(n).label) for n in range(tree.last_line + 1)
        )  # type: ignore[union-attr]
        assert "1 entry matches “passwd”" in str(screen.query_one("#status").render())
        await pilot.press("escape")
        await pilot.pause(0.2)
        assert tree.root.data is everything


async def test_merged_filesystem_tree_folds_and_unfolds_with_space(
    demo_registry: RunningRegistry, app_for: AppFactory
) -> None:
    app = app_for(demo_registry)
    async with app.run_test(size=SMALL) as pilot:
        await registry_ready(pilot)
        image = await open_image(pilot, "acme/web", "1.3.3")
        await app.push_screen(MergedFsScreen("acme/web", image.reference))
        screen = app.screen
        assert isinstance(screen, MergedFsScreen)
        await wait_for(pilot, lambda: screen.view is not None and screen.rows)
        await assert_keys_in_view(pilot, screen, ["s", "c", "t"])
        await pilot.press("t")
        tree = screen.query_one(MergedTree)
        await pilot.pause(0.2)
        assert app.focused is tree and tree.display
        assert not screen.query_one("#merged-files", DataTable).display
        top = [str(child.data) for child in tree.root.children]
        assert top == sorted({row.path.split("/")[0] for row in screen.rows})
        lib = next(child for child in tree.root.children if child.data == "lib")
        tree.move_cursor(lib)
        await pilot.press("space")
        assert lib.is_expanded
        assert [child.data for child in lib.children] == ["lib/libc.so.6"]
        assert "1.5 MiB" in str(lib.label)
        await pilot.press("space")
        assert not lib.is_expanded
        await pilot.press("t")
        assert screen.query_one("#merged-files", DataTable).display


async def test_titles_keep_the_host(demo_registry: RunningRegistry) -> None:
    app = app_as_the_cli_makes_it(demo_registry)
    async with app.run_test(size=SMALL) as pilot:
        screens: list[Screen[Any]] = [await registry_ready(pilot)]
        await app.push_screen(RepositoryScreen("acme/tools/debug"))
        screens.append(app.screen)
        await app.push_screen(MergedFsScreen("library/python-demo", "sha256:" + "ab" * 32))
        screens.append(app.screen)
        await pilot.pause()
        for screen in screens:
            shown = f"{screen.title} — {screen.sub_title}"
            assert demo_registry.host in shown and len(shown) <= SMALL[0] - HEADER_CHROME, shown
