"""The "Copy to…" (``C``) and retag (``t``) in the app, against real registries: the copy lands on
another bundled registry by the same digest, new tags land on the same manifest, and a bad
destination is said in the dialog without leaving it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from textual.widgets import Input, Static

from tests.helpers.servers import RunningRegistry, bundled_registry
from tests.tui.conftest import AppFactory, wait_for
from tests.tui.helpers import notifications
from tui.dialogs.copy import CopyDialog
from tui.dialogs.prompt import PromptDialog
from tui.screens.image import ImageScreen
from tui.screens.repository import RepositoryScreen

ACCEPT = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"


def digest_of(registry: RunningRegistry, repo: str, ref: str) -> str | None:
    response = httpx.head(f"{registry.url}/v2/{repo}/manifests/{ref}", headers={"Accept": ACCEPT})
    return response.headers.get("Docker-Content-Digest") if response.status_code == 200 else None


@pytest.fixture
def other(tmp_path: Path) -> Iterator[RunningRegistry]:
    with bundled_registry(tmp_path / "other") as running:
        yield running


async def open_repo(pilot, app, repo: str) -> RepositoryScreen:  # type: ignore[no-untyped-def]
    await app.push_screen(RepositoryScreen(repo))
    screen = app.screen
    assert isinstance(screen, RepositoryScreen)
    await wait_for(pilot, lambda: screen.details_done)
    return screen


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_copy_a_tag_to_another_registry(
    fresh_demo: RunningRegistry, other: RunningRegistry, app_for: AppFactory, size: tuple[int, int]
) -> None:
    app = app_for(fresh_demo)
    async with app.run_test(size=size) as pilot:
        screen = await open_repo(pilot, app, "acme/web")
        table = screen.table
        table.move_cursor(row=table.get_row_index("stable"))
        await pilot.pause()
        await pilot.press("C")
        await wait_for(pilot, lambda: isinstance(app.screen, CopyDialog))
        dialog = app.screen
        field = dialog.query_one("#copy-destination", Input)
        assert field.value.endswith("/acme/web:stable")
        assert field.region.bottom <= size[1]  # in view, even at 80x24

        field.value = "not a reference!"
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is dialog
        assert str(dialog.query_one("#copy-error", Static).render())  # said, dialog stays

        field.value = f"{other.host}/copied/web:stable"
        await pilot.press("enter")
        await wait_for(pilot, lambda: any("Copied" in n for n in notifications(app)))
        assert app.screen is screen
    source = digest_of(fresh_demo, "acme/web", "stable")
    assert source is not None and digest_of(other, "copied/web", "stable") == source


async def test_retag_puts_new_tags_on_the_same_manifest(
    fresh_demo: RunningRegistry, app_for: AppFactory
) -> None:
    app = app_for(fresh_demo)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_repo(pilot, app, "acme/web")
        table = screen.table
        table.move_cursor(row=table.get_row_index("stable"))
        await pilot.pause()
        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptDialog))
        app.screen.query_one(Input).value = "v9 blessed"
        await pilot.press("enter")
        await wait_for(pilot, lambda: "blessed" in screen.rows and "v9" in screen.rows)
    digest = digest_of(fresh_demo, "acme/web", "stable")
    assert digest is not None
    assert digest_of(fresh_demo, "acme/web", "v9") == digest
    assert digest_of(fresh_demo, "acme/web", "blessed") == digest


async def test_copy_from_the_image_screen_and_escape_copies_nothing(
    fresh_demo: RunningRegistry, other: RunningRegistry, app_for: AppFactory
) -> None:
    app = app_for(fresh_demo)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.push_screen(ImageScreen("acme/web", "latest"))
        screen = app.screen
        assert isinstance(screen, ImageScreen)
        await wait_for(pilot, lambda: screen.result is not None)
        await pilot.press("C")
        await wait_for(pilot, lambda: isinstance(app.screen, CopyDialog))
        await pilot.press("escape")
        await wait_for(pilot, lambda: any("Nothing was copied" in n for n in notifications(app)))
        await pilot.press("C")
        await wait_for(pilot, lambda: isinstance(app.screen, CopyDialog))
        app.screen.query_one("#copy-destination", Input).value = f"{other.host}/img/web:latest"
        await pilot.press("enter")
        await wait_for(pilot, lambda: any("Copied" in n for n in notifications(app)))
    assert digest_of(other, "img/web", "latest") == digest_of(fresh_demo, "acme/web", "latest")
