"""Browsing the demo registry: registry tree, repository table, image tabs, layer files, help."""

from __future__ import annotations

import io
import tarfile

import httpx
import zstandard
from textual.widgets import DataTable, Static, TabbedContent

from tests.helpers.servers import RunningRegistry
from tests.tui.conftest import AppFactory, wait_for
from tui.dialogs.help import HelpScreen
from tui.logic.tags import TagSort
from tui.screens.image import ImageScreen
from tui.screens.layer_files import LayerFilesScreen
from tui.screens.registry import RegistryScreen
from tui.screens.repository import RepositoryScreen
from tui.widgets.file_tree import FileTree


def labels(screen: RegistryScreen) -> list[str]:
    return screen.repo_tree.labels()


async def test_registry_tree_by_namespace_with_counts_and_filter(
    demo_registry: RunningRegistry, app_for: AppFactory
) -> None:
    app = app_for(demo_registry)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        assert isinstance(screen, RegistryScreen)
        await wait_for(pilot, lambda: screen.catalog_complete)
        await wait_for(pilot, lambda: "web  18 tags" in labels(screen))
        shown = labels(screen)
        assert shown[0].startswith("acme/")
        assert any(label.startswith("tools/") for label in shown)
        assert "alpine-demo  4 tags" in shown
        assert screen.first_paint_seconds is not None

        await pilot.press("slash", *"python")
        await pilot.pause(0.1)
        assert [label.split()[0] for label in labels(screen)] == ["library/", "python-demo"]
        status = str(screen.query_one("#status", Static).render())
        assert "1 of 7 repositories" in status

        await pilot.press("escape")  # clears and closes the filter
        await pilot.pause(0.1)
        assert len([x for x in labels(screen) if " tag" in x]) == 7
        assert screen.focused is screen.repo_tree

        # The keyboard: the cursor stayed on the filtered row; left goes to a repository's
        # namespace and closes it; space opens it again; enter on a repository opens it.
        tree = screen.repo_tree
        assert tree.cursor_row is not None and tree.cursor_row.repository == "library/python-demo"
        await pilot.press("home", "down", "down")
        assert tree.cursor_row is not None and tree.cursor_row.repository == "acme/tools/cli"
        await pilot.press("left")
        assert tree.cursor_row is not None and tree.cursor_row.node.path == "acme/tools"
        await pilot.press("left")
        assert "cli  2 tags" not in labels(screen)
        await pilot.press("space", "down")
        assert "cli  2 tags" in labels(screen)
        assert tree.cursor_row is not None and tree.cursor_row.repository == "acme/tools/cli"
        await pilot.press("shift+space")  # everything was open: close every namespace
        assert labels(screen) == [
            "acme/  4 repositories",
            "library/  2 repositories",
            "staging/  1 repository",
        ]
        await pilot.press("shift+space")
        assert len(labels(screen)) == 11
        await pilot.press("end", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RepositoryScreen))
        assert app.screen.repository == "staging/web"  # type: ignore[attr-defined]
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen)
        await pilot.click("#repos", offset=(6, 4))  # the fifth row: acme/api
        await wait_for(pilot, lambda: isinstance(app.screen, RepositoryScreen))
        assert app.screen.repository == "acme/api"  # type: ignore[attr-defined]


async def test_repository_table_sorts_and_filters(
    demo_registry: RunningRegistry, app_for: AppFactory
) -> None:
    app = app_for(demo_registry)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: getattr(app.screen, "catalog_complete", False))
        app.screen.open_repository("acme/web")  # type: ignore[attr-defined]
        await wait_for(pilot, lambda: isinstance(app.screen, RepositoryScreen))
        screen = app.screen
        assert isinstance(screen, RepositoryScreen)
        await wait_for(pilot, lambda: screen.details_done)
        table = screen.table
        assert table.row_count == 18
        web_latest = screen.rows["latest"]
        assert web_latest.created is not None and web_latest.size
        assert web_latest.platforms == ("linux/amd64",)

        def order() -> list[str]:
            return [str(row.key.value) for row in table.ordered_rows]

        assert order()[:3] == ["1.0.0", "1.0.1", "1.0.2"]
        await pilot.press("s")  # version order, newest first
        assert screen.sort_key is TagSort.VERSION
        assert order()[0] == "1.3.3"
        await pilot.press("s")  # date, newest first
        assert order()[0] in {"1.3.3", "latest", "stable"}
        await pilot.press("s")  # push time (the bundled registry knows it), newest first
        assert screen.sort_key is TagSort.PUSHED and table.shows_pushed
        pushed = [screen.rows[tag].pushed for tag in order()]
        assert None not in pushed and pushed == sorted(pushed, reverse=True)  # type: ignore[type-var]
        await pilot.press("s")  # size
        assert screen.sort_key is TagSort.SIZE
        await pilot.press("S")
        assert screen.descending is False

        await pilot.press("slash", *"1.2.")
        await pilot.pause(0.1)
        assert sorted(order()) == ["1.2.0", "1.2.1", "1.2.2", "1.2.3"]
        await pilot.press("enter")  # leaves the filter for the table
        assert screen.focused is table


async def test_image_screen_overview_config_layers_raw_referrers_and_copy(
    demo_registry: RunningRegistry, app_for: AppFactory
) -> None:
    app = app_for(demo_registry)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.push_screen(ImageScreen("acme/web", "latest"))
        screen = app.screen
        assert isinstance(screen, ImageScreen)
        await wait_for(pilot, lambda: screen.referrers)
        overview = str(screen.query_one("#overview-text", Static).render())
        async with httpx.AsyncClient() as http:
            response = await http.head(
                f"{demo_registry.url}/v2/acme/web/manifests/latest",
                headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
            )
        digest = response.headers["Docker-Content-Digest"]
        assert digest in overview
        assert "docker pull registry.example/acme/web:latest" in overview
        await pilot.press("c")
        assert app.clipboard == "docker pull registry.example/acme/web:latest"

        await pilot.press("2")
        config = str(screen.query_one("#config-text", Static).render())
        assert "APP_VERSION=1.3.3" in config and "org.opencontainers.image.title" in config

        await pilot.press("3")
        layers = screen.query_one("#layer-table", DataTable)
        cells = [layers.get_row_at(i) for i in range(layers.row_count)]
        assert [row[3] for row in cells][:2] == [
            "ADD rootfs.tar.gz / # buildkit",
            "COPY ./web /srv/web # buildkit",
        ]
        assert any(row[1] == "(no layer)" for row in cells)  # ENV / CMD history entries

        await pilot.press("4")
        assert screen.query_one(TabbedContent).active == "raw"
        assert '"schemaVersion": 2' in screen.raw_manifest
        assert '"history"' in screen.raw_config

        await pilot.press("5")
        assert screen.query_one(TabbedContent).active == "referrers"
        assert len(screen.referrers) == 1
        assert screen.query_one("#referrer-table", DataTable).row_count == 1


async def test_index_lists_platforms_and_opens_a_child(
    demo_registry: RunningRegistry, app_for: AppFactory
) -> None:
    app = app_for(demo_registry)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.push_screen(ImageScreen("library/python-demo", "3.12"))
        screen = app.screen
        assert isinstance(screen, ImageScreen)
        await wait_for(pilot, lambda: screen.result is not None)
        platforms = screen.query_one("#platforms", DataTable)
        await wait_for(pilot, lambda: platforms.row_count == 2)
        assert [platforms.get_row_at(i)[0] for i in range(2)] == ["linux/amd64", "linux/arm64/v8"]
        platforms.focus()
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: app.screen is not screen)
        child = app.screen
        assert isinstance(child, ImageScreen) and child.reference.startswith("sha256:")
        await wait_for(pilot, lambda: child.config is not None)
        assert child.config is not None and str(child.config.platform) == "linux/arm64/v8"
        await pilot.press("escape")
        assert app.screen is screen


async def test_layer_files_with_sizes(demo_registry: RunningRegistry, app_for: AppFactory) -> None:
    app = app_for(demo_registry)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.push_screen(ImageScreen("acme/tools/cli", "latest"))
        screen = app.screen
        assert isinstance(screen, ImageScreen)
        await wait_for(pilot, lambda: screen.layer_list)
        await pilot.press("3", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, LayerFilesScreen))
        files = app.screen
        assert isinstance(files, LayerFilesScreen)
        await wait_for(pilot, lambda: files.state == "done")
        assert files.root_node is not None
        binary = files.root_node.find("usr/bin/acme")
        async with httpx.AsyncClient() as http:
            blob = await http.get(
                f"{demo_registry.url}/v2/acme/tools/cli/blobs/{files.blob.digest}"
            )
        plain = zstandard.ZstdDecompressor().decompressobj().decompress(blob.content)
        with tarfile.open(fileobj=io.BytesIO(plain)) as tar:
            expected = tar.getmember("usr/bin/acme").size
        assert binary is not None and binary.size == expected
        status = str(files.query_one("#status", Static).render())
        assert "zstd" in status and "1 files" in status
        await pilot.press("e")
        tree = files.query_one(FileTree)
        assert any("acme" in str(node.label) for node in _all_nodes(tree))


def _all_nodes(tree: FileTree) -> list:  # type: ignore[type-arg]
    found = []
    stack = [tree.root]
    while stack:
        node = stack.pop()
        found.append(node)
        stack.extend(node.children)
    return found


async def test_help_screen_and_command_palette(
    demo_registry: RunningRegistry, app_for: AppFactory
) -> None:
    app = app_for(demo_registry)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, RegistryScreen)
        await pilot.press("ctrl+p")
        await pilot.pause(0.1)
        assert app.screen.__class__.__name__ == "CommandPalette"
        await pilot.press(*"storage")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "StorageScreen")


async def test_distribution_shows_no_pushed_column_and_s_skips_it(
    distribution: RunningRegistry, app_for: AppFactory
) -> None:
    """Push times come from the bundled registry's storage: on Distribution there is no Pushed
    column and the sort key cycles past it."""
    import asyncio

    from tui.demo import populate

    await asyncio.to_thread(populate, distribution.url)
    app = app_for(distribution)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.push_screen(RepositoryScreen("acme/web"))
        screen = app.screen
        assert isinstance(screen, RepositoryScreen)
        await wait_for(pilot, lambda: screen.details_done, seconds=60)
        assert not screen.table.shows_pushed
        assert "Pushed" not in [str(c.label) for c in screen.table.columns.values()]
        seen = []
        for _ in range(4):
            await pilot.press("s")
            seen.append(screen.sort_key)
        assert seen == [TagSort.VERSION, TagSort.DATE, TagSort.SIZE, TagSort.NAME]
