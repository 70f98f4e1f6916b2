"""Screenshots of the Diff, Merged filesystem and Find screens, from the real app on the demo.

    python scripts/screenshots_inside.py [--out screenshots]

Starts the bundled registry on a free loopback port, fills it with the demo images, drives the
app with Textual's ``run_test()`` and writes ``<out>/diff.svg``, ``merged-fs.svg`` and
``find.svg`` (a PNG beside each when ``cairosvg`` is installed).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import DataTable, Input

from tui.app import AppSettings, RegtuiApp, make_app
from tui.commands.connect import local_registry
from tui.demo import populate
from tui.screens.diff import DiffScreen
from tui.screens.find import FindScreen
from tui.screens.merged_fs import MergedFsScreen

SIZE = (120, 36)


async def until(pilot: Pilot[None], predicate: Callable[[], object], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the app did not reach the expected state")
        await pilot.pause(0.05)
    await pilot.pause(0.3)


async def shoot(app: RegtuiApp, out: Path) -> list[Path]:
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
            saved = asyncio.run(shoot(make_app(settings), args.out))
    pngs = to_png(saved)
    print(f"wrote {len(saved)} SVG and {pngs} PNG screenshots to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
