"""Screenshots of every screen, from the real app on the demo registry.

    python scripts/screenshots.py [--out screenshots]

Starts the bundled registry on a free loopback port, fills it with the demo images, drives the
app with Textual's ``run_test()`` and writes ``<out>/<screen>.svg``; a PNG beside each when
``cairosvg`` is installed (optional, not a dependency of regtui).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import DataTable, Input

from tui.app import AppSettings, RegtuiApp, make_app
from tui.commands.connect import directory_backend, local_registry
from tui.demo import populate
from tui.dialogs.copy import CopyDialog
from tui.screens.diff import DiffScreen
from tui.screens.events import EventsScreen
from tui.screens.find import FindScreen
from tui.screens.image import ImageScreen
from tui.screens.layer_files import LayerFilesScreen
from tui.screens.merged_fs import MergedFsScreen
from tui.screens.registry import RegistryScreen
from tui.screens.repository import RepositoryScreen
from tui.screens.retention import RetentionScreen
from tui.screens.storage import StorageScreen
from tui.widgets.merged_tree import MergedTree

SIZE = (120, 36)
SMALL = (80, 24)
"""The smallest terminal regtui promises to be usable in: a few screens are shot at it too."""


async def until(pilot: Pilot[None], predicate: Callable[[], object], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the app did not reach the expected state")
        await pilot.pause(0.05)
    await pilot.pause(0.2)


async def shoot(app: RegtuiApp, out: Path) -> list[Path]:
    saved: list[Path] = []

    def save(name: str) -> None:
        path = out / f"{name}.svg"
        app.save_screenshot(filename=path.name, path=str(out))
        saved.append(path)

    steps: list[tuple[str, Callable[[Pilot[None]], Awaitable[None]]]] = []

    async def registry(pilot: Pilot[None]) -> None:
        screen = app.screen
        assert isinstance(screen, RegistryScreen)
        await until(pilot, lambda: screen.catalog_complete and len(screen.repo_tree.counts) == 7)

    async def repository(pilot: Pilot[None]) -> None:
        await app.push_screen(RepositoryScreen("acme/web"))
        screen = app.screen
        assert isinstance(screen, RepositoryScreen)
        await until(pilot, lambda: screen.details_done)
        await pilot.press("k")
        await pilot.pause(0.2)
        await pilot.press("enter")  # keep the 5 newest: the rest is marked for review
        repository_screen: RepositoryScreen = screen
        await until(pilot, lambda: app.screen is screen and bool(repository_screen.marked))

    async def delete_dialog(pilot: Pilot[None]) -> None:
        await pilot.press("D")
        await pilot.pause(0.5)

    async def image(pilot: Pilot[None]) -> None:
        await pilot.press("escape")
        await app.push_screen(ImageScreen("library/python-demo", "latest"))
        screen = app.screen
        assert isinstance(screen, ImageScreen)
        await until(pilot, lambda: screen.result is not None and screen.referrers)

    async def layers(pilot: Pilot[None]) -> None:
        await app.push_screen(ImageScreen("acme/web", "latest"))
        screen = app.screen
        assert isinstance(screen, ImageScreen)
        await until(pilot, lambda: screen.raw_config)
        await pilot.press("3")

    async def config(pilot: Pilot[None]) -> None:
        await pilot.press("2")

    async def files(pilot: Pilot[None]) -> None:
        screen = app.screen
        assert isinstance(screen, ImageScreen)
        await app.push_screen(LayerFilesScreen("acme/web", screen.layer_list[1]))
        files_screen = app.screen
        assert isinstance(files_screen, LayerFilesScreen)
        await until(pilot, lambda: files_screen.state == "done")
        await pilot.press("e")

    async def storage(pilot: Pilot[None]) -> None:
        await app.push_screen(StorageScreen())
        screen = app.screen
        assert isinstance(screen, StorageScreen)
        await until(pilot, lambda: screen.before is not None)
        await pilot.press("t", "n")
        await until(pilot, lambda: screen.preview is not None)

    async def storage_after(pilot: Pilot[None]) -> None:
        screen = app.screen
        assert isinstance(screen, StorageScreen)
        await pilot.press("g")
        await until(pilot, lambda: app.screen is not screen)  # the confirmation
        await pilot.press("y")
        await until(pilot, lambda: screen.after is not None)
        screen.query_one("#storage-scroll").scroll_end(animate=False)

    async def help_screen(pilot: Pilot[None]) -> None:
        await pilot.press("question_mark")

    async def retention(pilot: Pilot[None]) -> None:
        await pilot.press("escape")  # close the help
        await app.push_screen(RetentionScreen("keep_newest: 2\nkeep_tags: ['latest']\n"))
        screen = app.screen
        assert isinstance(screen, RetentionScreen)
        await until(pilot, lambda: screen.plan is not None)

    async def copy_to(pilot: Pilot[None]) -> None:
        await pilot.press("escape")  # back from Retention
        await app.push_screen(RepositoryScreen("acme/api"))
        screen = app.screen
        assert isinstance(screen, RepositoryScreen)
        await until(pilot, lambda: screen.details_done)
        await pilot.press("C")
        await until(pilot, lambda: isinstance(app.screen, CopyDialog))

    async def events(pilot: Pilot[None]) -> None:
        await pilot.press("escape")  # cancel the copy
        await app.push_screen(EventsScreen())
        screen = app.screen
        assert isinstance(screen, EventsScreen)
        await until(pilot, lambda: screen.live)

    steps = [
        ("registry", registry),
        ("repository", repository),
        ("delete-marked", delete_dialog),
        ("image-index", image),
        ("image-layers", layers),
        ("image-config", config),
        ("layer-files", files),
        ("storage-gc", storage),
        ("storage-gc-after", storage_after),
        ("help", help_screen),
        ("retention", retention),
        ("copy-to", copy_to),
        ("events", events),
    ]
    async with app.run_test(size=SIZE) as pilot:
        for name, step in steps:
            await step(pilot)
            await pilot.pause(0.2)
            save(name)
    return saved


async def shoot_small(app: RegtuiApp, out: Path) -> list[Path]:
    """80x24: the registry screen, a delete dialog, an index's overview and the Retention
    screen as it opens (its first plan): keys, buttons and columns stay in view."""
    saved: list[Path] = []

    def save(name: str) -> None:
        app.save_screenshot(filename=f"{name}.svg", path=str(out))
        saved.append(out / f"{name}.svg")

    async with app.run_test(size=SMALL) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RegistryScreen))
        screen = app.screen
        assert isinstance(screen, RegistryScreen)
        await until(pilot, lambda: screen.catalog_complete and len(screen.repo_tree.counts) == 7)
        save("registry-80x24")
        await app.push_screen(RepositoryScreen("acme/web"))
        repository = app.screen
        assert isinstance(repository, RepositoryScreen)
        await until(pilot, lambda: repository.details_done)
        repository.table.move_cursor(row=repository.table.get_row_index("latest"))
        await pilot.press("d")
        await until(pilot, lambda: app.screen is not repository)
        save("delete-80x24")
        await pilot.press("n")
        await until(pilot, lambda: app.screen is repository)

        await app.push_screen(ImageScreen("library/python-demo", "latest"))
        index = app.screen
        assert isinstance(index, ImageScreen)
        await until(pilot, lambda: index.index_total is not None and index.referrers_loaded)
        save("image-index-80x24")
        app.pop_screen()
        app.pop_screen()

        await until(pilot, lambda: isinstance(app.screen, RegistryScreen))
        await pilot.press("p")
        await until(pilot, lambda: isinstance(app.screen, RetentionScreen))
        retention = app.screen
        assert isinstance(retention, RetentionScreen)
        await until(pilot, lambda: retention.plan is not None)
        save("retention-80x24")
    return saved


async def shoot_inside(app: RegtuiApp, out: Path) -> list[Path]:
    """The Diff, Merged filesystem and Find screens."""
    saved: list[Path] = []

    def save(name: str) -> None:
        app.save_screenshot(filename=f"{name}.svg", path=str(out))
        saved.append(out / f"{name}.svg")

    async with app.run_test(size=SIZE) as pilot:
        await app.push_screen(DiffScreen("acme/web", "1.2.0", "1.3.3"))
        diff = app.screen
        assert isinstance(diff, DiffScreen)
        await until(pilot, lambda: diff.state == "done")
        save("diff")
        app.pop_screen()

        await app.push_screen(MergedFsScreen("acme/web", "1.3.3"))
        merged = app.screen
        assert isinstance(merged, MergedFsScreen)
        table = merged.query_one("#merged-files", DataTable)
        await until(pilot, lambda: merged.view is not None and table.row_count > 0)
        await pilot.press("s")
        await until(pilot, lambda: merged.by_size)
        merged.focus_main()
        save("merged-fs")
        await pilot.press("t")  # the tree, as dive shows it: space folds and unfolds
        tree = merged.query_one(MergedTree)
        await until(pilot, lambda: tree.has_focus)
        for node in list(tree.root.children):
            if node.data in ("srv", "usr"):
                node.expand()
        await pilot.pause(0.2)
        save("merged-tree")
        app.pop_screen()

        await app.push_screen(FindScreen())
        find = app.screen
        assert isinstance(find, FindScreen)
        find.query_one(Input).value = "1.3.*"
        await pilot.press("enter")
        await until(pilot, lambda: find.state == "done")
        save("find")
    return saved


def to_png(paths: list[Path]) -> int:
    try:
        import cairosvg  # type: ignore[import-not-found]
    except ImportError:
        print("cairosvg is not installed: SVG only", file=sys.stderr)
        return 0
    for path in paths:
        cairosvg.svg2png(url=str(path), write_to=str(path.with_suffix(".png")), output_width=1400)
    return len(paths)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("screenshots"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="regtui-shots-") as tmp:
        root = Path(tmp) / "registry"
        root.mkdir()
        with local_registry(root) as registry:
            populate(registry.url)
            settings = AppSettings(
                registry=registry.host,
                insecure=True,
                title="demo registry",
                pull_host="localhost:5000",
            )
            # GC on the storage directory (grace 0: the demo was just pushed).
            app = make_app(
                settings,
                storage=directory_backend(
                    root, grace_period=0, label="the demo's storage directory"
                ),
            )
            saved = asyncio.run(shoot(app, args.out))
            saved += asyncio.run(shoot_small(make_app(settings), args.out))
            saved += asyncio.run(shoot_inside(make_app(settings), args.out))
    pngs = to_png(saved)
    print(f"wrote {len(saved)} SVG and {pngs} PNG screenshots to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
