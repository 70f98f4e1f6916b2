"""The Events screen on a real bundled registry: live pushes and pulls with who and from where,
filtered by action and repository, at 120x40 and 80x24; a refusal is a notification and the
app stays up."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import httpx
import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from tests.helpers.images import make_image, push_image
from tests.helpers.servers import ADMIN_DIR_ENV, RunningRegistry, bundled_registry
from tests.tui.conftest import AppFactory, wait_for
from tests.tui.helpers import notifications
from tests.tui.test_keys_80x24 import assert_keys_in_view
from tui.app import AppSettings, make_app
from tui.screens.events import EventsScreen
from tui.screens.registry import RegistryScreen

BOB = ("bob", "builder")


@pytest.fixture
def small_registry(tmp_path: Path) -> Iterator[RunningRegistry]:
    with bundled_registry(tmp_path / "registry") as registry:
        push_image(registry.url, "team/api", "v1", make_image([{"api": b"api v1"}]))
        push_image(registry.url, "team/web", "v1", make_image([{"web": b"web v1"}]))
        yield registry


async def open_events(pilot: Pilot[None]) -> EventsScreen:
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, RegistryScreen))
    await pilot.press("e")
    await wait_for(pilot, lambda: isinstance(app.screen, EventsScreen))
    screen = app.screen
    assert isinstance(screen, EventsScreen)
    await wait_for(pilot, lambda: screen.live or screen.problem is not None)
    return screen


def rows(screen: EventsScreen) -> list[list[str]]:
    table = screen.query_one("#events-table", DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


def status(screen: EventsScreen) -> str:
    return str(screen.query_one("#events-status", Static).render())


async def test_events_are_live_and_filtered(
    small_registry: RunningRegistry, app_for: AppFactory
) -> None:
    app = app_for(small_registry)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_events(pilot)
        assert len(rows(screen)) == 6  # two images: config, layer, manifest each
        assert rows(screen)[0][1:3] == ["push", "team/web"]
        assert rows(screen)[0][3].startswith("v1 @")
        assert all(r[5] == "anonymous" and r[6].startswith("127.0.0.1:") for r in rows(screen))

        # Live: a push and a pull made now show up without a key.
        await asyncio.to_thread(
            push_image, small_registry.url, "team/db", "v2", make_image([{"db": b"db"}])
        )
        await wait_for(pilot, lambda: len(rows(screen)) == 9)
        assert rows(screen)[0][1:3] == ["push", "team/db"]
        pulled = await asyncio.to_thread(
            httpx.get, f"{small_registry.url}/v2/team/api/manifests/v1"
        )
        assert pulled.status_code == 200
        await wait_for(pilot, lambda: len(rows(screen)) == 10)
        assert rows(screen)[0][1:3] == ["pull", "team/api"]
        assert rows(screen)[0][3].startswith("v1 @")

        await pilot.press("a")  # push only
        assert {r[1] for r in rows(screen)} == {"push"} and len(rows(screen)) == 9
        await pilot.press("a")  # pull only
        assert [r[1:3] for r in rows(screen)] == [["pull", "team/api"]]
        assert "action: pull" in status(screen)
        await pilot.press("c")
        assert len(rows(screen)) == 10

        await pilot.press("slash", *"web")
        await wait_for(pilot, lambda: len(rows(screen)) == 3)
        assert {r[2] for r in rows(screen)} == {"team/web"}
        assert "repository contains 'web'" in status(screen)
        await pilot.press("escape")
        await wait_for(pilot, lambda: len(rows(screen)) == 10)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RegistryScreen))


async def test_events_keys_and_rows_fit_80x24(
    small_registry: RunningRegistry, app_for: AppFactory
) -> None:
    app = app_for(small_registry)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RegistryScreen))
        await assert_keys_in_view(pilot, app.screen, ["question_mark", "q", "e", "g", "r"])
        screen = await open_events(pilot)
        await assert_keys_in_view(pilot, screen, ["question_mark", "q", "a", "c", "escape"])
        assert len(rows(screen)) == 6
        table = screen.query_one("#events-table", DataTable)
        assert table.region.height >= 8 and table.region.bottom <= 24


async def test_a_refusal_is_a_notification_and_the_app_stays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    htpasswd = tmp_path / "htpasswd"
    hashed = bcrypt.hashpw(BOB[1].encode(), bcrypt.gensalt(rounds=5)).decode()
    htpasswd.write_text(f"{BOB[0]}:{hashed}\n")
    config = {"auth": {"htpasswd": {"realm": "regtui", "path": str(htpasswd)}}}
    with bundled_registry(tmp_path / "registry", config=config) as registry:
        push_image(registry.url, "team/api", "v1", make_image([{"a": b"a"}]), auth=BOB)
        monkeypatch.setenv(ADMIN_DIR_ENV, str(tmp_path / "elsewhere"))  # not the server's machine
        settings = AppSettings(
            registry=registry.host, username=BOB[0], password=BOB[1], insecure=True, timeout=10
        )
        app = make_app(settings)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await open_events(pilot)
            await wait_for(pilot, lambda: notifications(app))
            assert any("denied" in text for text in notifications(app)), notifications(app)
            assert "administrators only" in status(screen)
            assert rows(screen) == []
            await pilot.press("escape")
            await wait_for(pilot, lambda: isinstance(app.screen, RegistryScreen))


async def test_another_registry_has_no_events_and_says_so(
    distribution: RunningRegistry, app_for: AppFactory
) -> None:
    app = app_for(distribution)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_events(pilot)
        await wait_for(pilot, lambda: notifications(app))
        assert "has none to show" in status(screen)
        assert rows(screen) == []


async def test_an_empty_registry_is_waited_on_not_polled(
    tmp_path: Path, app_for: AppFactory
) -> None:
    with bundled_registry(tmp_path / "registry") as registry:
        app = app_for(registry)
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await open_events(pilot)
            assert rows(screen) == [] and "0 of 0 events" in status(screen)
            await pilot.pause(2.0)
            await asyncio.to_thread(
                push_image, registry.url, "first/app", "v1", make_image([{"f": b"f"}])
            )
            await wait_for(pilot, lambda: len(rows(screen)) == 3)
        asked = registry.log().count("/v2/_regtui/ext/events")
        assert 2 <= asked <= 4, asked  # the first read, one long poll per answer: no busy loop
