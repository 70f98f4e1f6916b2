"""The Tags screen's Pulled column: when each tag's image was last pulled (the bundled registry
records manifest GETs), sortable like Pushed; regtui's own reads are no pulls."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.helpers.images import make_image, push_image
from tests.helpers.servers import bundled_registry
from tests.tui.conftest import AppFactory, wait_for
from tui.logic.tags import TagSort
from tui.screens.repository import RepositoryScreen

ACCEPT = {"Accept": "application/vnd.oci.image.manifest.v1+json"}


def _push_and_pull(url: str) -> None:
    for tag in ("a", "b", "c"):
        push_image(url, "team/app", tag, make_image([{tag: tag.encode() * 50}]))
    for tag in ("b", "a"):  # a pulled last; c never
        got = httpx.get(f"{url}/v2/team/app/manifests/{tag}", headers=ACCEPT)
        assert got.status_code == 200
        time.sleep(1.1)


def _never_pulled(url: str) -> dict[str, bool]:
    times = httpx.get(f"{url}/v2/team/app/_regtui/tags").json()
    return {t["tag"]: t["pulled"] is None for t in times["tags"]}


async def test_pulled_column_shows_and_sorts_pull_times(
    tmp_path: Path, app_for: AppFactory
) -> None:
    with bundled_registry(tmp_path / "root") as registry:
        _push_and_pull(registry.url)
        app = app_for(registry)
        async with app.run_test(size=(140, 30)) as pilot:
            await wait_for(pilot, lambda: getattr(app.screen, "catalog_complete", False))
            app.screen.open_repository("team/app")  # type: ignore[attr-defined]
            await wait_for(pilot, lambda: isinstance(app.screen, RepositoryScreen))
            screen = app.screen
            assert isinstance(screen, RepositoryScreen)
            await wait_for(pilot, lambda: screen.details_done)
            table = screen.table
            assert table.shows_pulled
            assert [str(c.label) for c in table.ordered_columns][-2:] == ["Pushed", "Pulled"]
            rows = screen.rows
            assert rows["c"].pulled is None
            assert rows["a"].pulled is not None and rows["b"].pulled is not None
            assert rows["a"].pulled > rows["b"].pulled
            while screen.sort_key is not TagSort.PULLED:
                await pilot.press("s")
            order = [str(row.key.value) for row in table.ordered_rows]
            assert order == ["a", "b", "c"]  # newest pull first, never pulled last
            cells = table.get_row("c")
            assert cells[-1] == ""  # never pulled: an empty cell
        # The app read every manifest to show it: regtui's own reads are no pulls.
        assert _never_pulled(registry.url) == {"a": False, "b": False, "c": True}
