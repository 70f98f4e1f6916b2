"""The bundled registry behind Debian's nginx (issue 20, item 2): the Storage & GC screen shows
the registry's refusal and what to do, not "no garbage-collection API"; the delete dialog does
not point at ``g`` there, and does on the bundled registry reached directly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widgets import Static

from tests.helpers.servers import RunningNginx, RunningRegistry, nginx_proxy
from tests.tui.conftest import AppFactory, wait_for
from tests.tui.test_delete import move_to, open_repo
from tui.data.backends import RefusedBackend
from tui.dialogs.confirm import ConfirmDialog
from tui.logic.deletion import GC_NOTE
from tui.screens.storage import StorageScreen

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]

SERVER_REASON = "call them on the registry's own machine over loopback"


@pytest.fixture
def proxied(demo_registry: RunningRegistry, tmp_path: Path) -> Iterator[RunningNginx]:
    with nginx_proxy(tmp_path / "nginx", demo_registry) as nginx:
        yield nginx


async def test_storage_screen_behind_nginx_shows_the_refusal_and_what_to_do(
    proxied: RunningNginx, app_for: AppFactory
) -> None:
    app = app_for(proxied.url.removeprefix("http://"))
    async with app.run_test(size=(80, 24)) as pilot:
        await app.push_screen(StorageScreen())
        screen = app.screen
        assert isinstance(screen, StorageScreen)
        await wait_for(pilot, lambda: screen.before is not None)
        assert isinstance(screen.backend, RefusedBackend)
        explain = " ".join(str(screen.query_one("#gc-explain", Static).render()).split())
        assert "403 DENIED" in explain and SERVER_REASON in explain
        assert "log in as an administrator" in explain and "--root DIR" in explain
        assert "offers no garbage-collection API" not in explain
        await pilot.press("g")
        await pilot.pause(0.1)
        assert app.screen is screen  # nothing to confirm: g cannot collect here


async def _delete_dialog_body(app_for: AppFactory, host: str) -> str:
    app = app_for(host)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_repo(pilot, app, "library/alpine-demo")
        await move_to(pilot, screen, "3.19")
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        body = " ".join(str(app.screen.query_one("#confirm-body", Static).render()).split())
        await pilot.press("n")  # nothing is deleted
        return body


async def test_delete_dialog_points_at_g_only_where_g_collects(
    proxied: RunningNginx, demo_registry: RunningRegistry, app_for: AppFactory
) -> None:
    refused = await _delete_dialog_body(app_for, proxied.url.removeprefix("http://"))
    assert "(g on the registry screen)" not in refused
    assert "regtui cannot run here" in refused and "403 DENIED" in refused
    direct = await _delete_dialog_body(app_for, demo_registry.host)
    assert GC_NOTE in direct
