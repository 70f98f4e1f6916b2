"""The app never dies: refused connection, 401, 404, timeout, malformed manifest, no catalog."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widgets import Input, Static

from tests.helpers.servers import RunningRegistry, bundled_registry, require_tool
from tests.tui.conftest import AppFactory, wait_for
from tests.tui.helpers import notifications
from tests.tui.odd_registry import odd_registry
from tui.dialogs.prompt import PromptDialog
from tui.screens.image import ImageScreen
from tui.screens.registry import RegistryScreen
from tui.screens.repository import RepositoryScreen


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_refused_connection_is_a_notification(app_for: AppFactory) -> None:
    app = app_for(f"127.0.0.1:{unused_port()}")
    async with app.run_test(size=(120, 40)) as pilot:
        screen = app.screen
        assert isinstance(screen, RegistryScreen)
        await wait_for(pilot, lambda: notifications(app))
        assert "Cannot reach the registry" in notifications(app)[0]
        assert "Cannot list repositories" in str(screen.query_one("#status", Static).render())
        await pilot.press("question_mark", "escape", "r")  # still responsive, retry works
        await wait_for(pilot, lambda: len(notifications(app)) >= 2)
        assert app.is_running


@pytest.fixture
def protected_registry(tmp_path: Path) -> Iterator[RunningRegistry]:
    htpasswd = require_tool("htpasswd")
    users = tmp_path / "htpasswd"
    subprocess.run(
        [htpasswd, "-Bbc", str(users), "alice", "s3cret"], check=True, capture_output=True
    )
    config = {
        "version": "0.1",
        "auth": {"htpasswd": {"realm": "test", "path": str(users)}},
    }
    with bundled_registry(tmp_path / "registry", config=config) as running:
        yield running


async def test_unauthorized_is_a_notification(
    protected_registry: RunningRegistry, app_for: AppFactory
) -> None:
    app = app_for(protected_registry)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: notifications(app))
        assert "Not authorized" in notifications(app)[0]
        assert app.is_running


async def test_unknown_repository_is_a_notification(
    demo_registry: RunningRegistry, app_for: AppFactory
) -> None:
    app = app_for(demo_registry)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.push_screen(RepositoryScreen("no/such-repo"))
        await wait_for(pilot, lambda: notifications(app))
        assert notifications(app)[0].startswith("Not found")
        await pilot.press("escape")
        assert isinstance(app.screen, RegistryScreen)


async def test_no_catalog_asks_for_a_name_and_malformed_manifest_is_survived(
    app_for: AppFactory,
) -> None:
    with odd_registry() as host:
        app = app_for(host)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, PromptDialog))
            await pilot.press(*"Broken", "enter")  # uppercase is refused with a reason
            error = str(app.screen.query_one("#prompt-error", Static).render())
            assert "lowercase" in error
            app.screen.query_one(Input).value = "broken"
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, RepositoryScreen))
            screen = app.screen
            assert isinstance(screen, RepositoryScreen)
            await wait_for(pilot, lambda: screen.details_done)
            assert screen.rows["bad"].error == "Unexpected answer"
            await app.push_screen(ImageScreen("broken", "bad"))
            await wait_for(pilot, lambda: any("Unexpected answer" in n for n in notifications(app)))
            assert app.is_running


async def test_timeout_is_a_notification(app_for: AppFactory) -> None:
    with odd_registry() as host:
        app = app_for(host, timeout=0.5)
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, PromptDialog))
            await pilot.press("escape")
            await app.push_screen(RepositoryScreen("slow"))
            await wait_for(pilot, lambda: notifications(app), seconds=20)
            assert (
                "Cannot reach the registry" in notifications(app)[-1]
                or "Timed out" in (notifications(app)[-1])
            )
            assert app.is_running
