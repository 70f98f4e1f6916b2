"""The app on a bundled registry with ``regtui.immutable`` and ``regtui.quota``: the Tags screen
marks immutable tags, a delete of one shows the registry's refusal and the app goes on, and the
Storage screen shows each quota's use against its limit."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.servers import RunningRegistry, bundled_registry
from tests.tui.conftest import AppFactory, wait_for
from tests.tui.helpers import notifications
from tests.tui.test_storage import line_of, panel_text
from tui.dialogs.confirm import ConfirmDialog
from tui.imagegen import make_image, push_image
from tui.screens.repository import RepositoryScreen
from tui.screens.storage import StorageScreen
from tui.widgets.tag_table import IMMUTABLE_MARK

QUOTA = 200_000


@pytest.fixture
def governed(tmp_path: Path) -> Iterator[RunningRegistry]:
    config = {
        "version": "0.1",
        "regtui": {
            "immutable": [{"repository": "team/*", "tags": ["v*"]}],
            "quota": [{"repository": "team/app", "limit": QUOTA}],
        },
    }
    with bundled_registry(tmp_path / "root", config=config) as running:
        image = make_image([{"data": os.urandom(50_000)}])
        push_image(running.url, "team/app", "v1.0.0", image)
        push_image(running.url, "team/app", "edge", image)
        yield running


async def test_tags_screen_marks_immutable_tags_and_shows_the_refusal(
    governed: RunningRegistry, app_for: AppFactory
) -> None:
    app = app_for(governed)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.push_screen(RepositoryScreen("team/app"))
        screen = app.screen
        assert isinstance(screen, RepositoryScreen)
        await wait_for(pilot, lambda: screen.details_done)
        assert screen.rows["v1.0.0"].immutable is not None
        assert screen.rows["edge"].immutable is None
        table = screen.table
        assert table.get_row("v1.0.0")[0] is IMMUTABLE_MARK
        assert table.get_row("edge")[0] is not IMMUTABLE_MARK
        table.move_cursor(row=table.get_row_index("v1.0.0"))
        await pilot.pause()
        await pilot.press("u")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await wait_for(pilot, lambda: any("immutable" in n for n in notifications(app)))
        assert "v1.0.0" in screen.rows  # still there, and the app goes on
        assert app.is_running


async def test_storage_screen_shows_quota_use_against_the_limit(
    governed: RunningRegistry, app_for: AppFactory
) -> None:
    app = app_for(governed)
    async with app.run_test(size=(120, 50)) as pilot:
        await app.push_screen(StorageScreen())
        screen = app.screen
        assert isinstance(screen, StorageScreen)
        await wait_for(pilot, lambda: screen.before is not None)
        assert screen.before is not None
        (quota,) = screen.before.quotas
        assert (quota.name, quota.limit) == ("team/app", QUOTA)
        assert quota.used == screen.before.repos[0].total_bytes > 50_000
        line = line_of(panel_text(screen, "#usage-before"), "quota repository team/app")
        assert "of 195.3 KiB" in line and "%" in line
