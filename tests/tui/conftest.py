"""Fixtures for the explorer's Pilot tests: real bundled registries with real demo images."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from textual.pilot import Pilot

from tests.helpers.servers import RunningRegistry, bundled_registry
from tests.helpers.tmux import Tmux, running_tmux
from tui.app import AppSettings, RegtuiApp, make_app
from tui.data.storage import StorageBackend
from tui.demo import populate
from tui.screens.repository import RepositoryScreen


@pytest.fixture(scope="module")
def demo_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """A bundled registry filled with the demo images; shared by read-only tests of a module."""
    root = tmp_path_factory.mktemp("demo") / "registry"
    with bundled_registry(root) as running:
        populate(running.url)
        yield running


@pytest.fixture
def fresh_demo(tmp_path: Path) -> Iterator[RunningRegistry]:
    """A bundled registry with the demo images, private to one test (for deletions and GC)."""
    with bundled_registry(tmp_path / "registry") as running:
        populate(running.url)
        yield running


AppFactory = Callable[..., RegtuiApp]


@pytest.fixture
def app_for() -> AppFactory:
    def build(
        registry: RunningRegistry | str,
        *,
        read_only: bool = False,
        storage: StorageBackend | None = None,
        timeout: float = 10.0,
    ) -> RegtuiApp:
        host = registry if isinstance(registry, str) else registry.host
        settings = AppSettings(
            registry=host,
            insecure=True,
            read_only=read_only,
            timeout=timeout,
            title="demo registry",
            pull_host="registry.example",
        )
        return make_app(settings, storage=storage)

    return build


async def wait_for(
    pilot: Pilot[None], predicate: Callable[[], object], *, seconds: float = 60.0
) -> None:
    """Let the app run until ``predicate()`` is true (fails the test after ``seconds``: generous,
    since it returns as soon as the predicate holds and a loaded 2-core machine is slow)."""
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {getattr(predicate, '__name__', '?')}")
        await pilot.pause(0.05)
    await asyncio.sleep(0)


async def open_repository(app: RegtuiApp, repository: str) -> RepositoryScreen:
    """Push the Tags screen of ``repository`` on ``app``; the screen."""
    await app.push_screen(RepositoryScreen(repository))
    screen = app.screen
    assert isinstance(screen, RepositoryScreen)
    return screen


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    """A private tmux server: the app in a real terminal (tests/helpers/tmux.py)."""
    with running_tmux() as instance:
        yield instance
