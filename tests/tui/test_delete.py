"""Deleting from the repository screen, checked against the registry afterwards."""

from __future__ import annotations

import httpx
from textual.widgets import Input, Static

from tests.helpers.servers import RunningRegistry
from tests.tui.conftest import AppFactory, wait_for
from tests.tui.helpers import notifications
from tui.app import RegtuiApp
from tui.dialogs.confirm import ConfirmDialog
from tui.dialogs.prompt import PromptDialog
from tui.dialogs.results import ResultsDialog
from tui.screens.repository import RepositoryScreen

ACCEPT = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"


async def tags_of(registry: RunningRegistry, repo: str) -> list[str]:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{registry.url}/v2/{repo}/tags/list")
    if response.status_code == 404:
        return []
    return sorted(response.json().get("tags") or [])


async def manifest_status(registry: RunningRegistry, repo: str, ref: str) -> int:
    async with httpx.AsyncClient() as http:
        response = await http.head(
            f"{registry.url}/v2/{repo}/manifests/{ref}", headers={"Accept": ACCEPT}
        )
    return response.status_code


async def open_repo(pilot, app: RegtuiApp, repo: str) -> RepositoryScreen:  # type: ignore[no-untyped-def]
    await app.push_screen(RepositoryScreen(repo))
    screen = app.screen
    assert isinstance(screen, RepositoryScreen)
    await wait_for(pilot, lambda: screen.details_done)
    return screen


async def move_to(pilot, screen: RepositoryScreen, tag: str) -> None:  # type: ignore[no-untyped-def]
    table = screen.table
    table.move_cursor(row=table.get_row_index(tag))
    await pilot.pause()
    assert table.current_tag == tag


async def test_delete_by_digest_names_every_tag_and_removes_them(
    fresh_demo: RunningRegistry, app_for: AppFactory
) -> None:
    app = app_for(fresh_demo)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_repo(pilot, app, "library/alpine-demo")
        digest = screen.rows["3.19"].digest
        assert digest is not None
        await move_to(pilot, screen, "3.19")
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        body = str(app.screen.query_one("#confirm-body", Static).render())
        assert digest in body
        for tag in ("3.18", "3.19", "3.20", "latest"):  # all four share the digest
            assert f"• {tag}" in body

        await pilot.press("n")  # cancel first: nothing happens
        await wait_for(pilot, lambda: app.screen is screen)
        assert await tags_of(fresh_demo, "library/alpine-demo") == [
            "3.18",
            "3.19",
            "3.20",
            "latest",
        ]

        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        await pilot.press("y")
        await wait_for(pilot, lambda: any("Deleted" in n for n in notifications(app)))
        assert await tags_of(fresh_demo, "library/alpine-demo") == []
        assert await manifest_status(fresh_demo, "library/alpine-demo", digest) == 404
        await wait_for(pilot, lambda: screen.table.row_count == 0)


async def test_untag_keeps_siblings(fresh_demo: RunningRegistry, app_for: AppFactory) -> None:
    app = app_for(fresh_demo)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_repo(pilot, app, "acme/web")
        digest = screen.rows["stable"].digest
        await move_to(pilot, screen, "stable")
        await pilot.press("u")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        body = str(app.screen.query_one("#confirm-body", Static).render())
        assert "1.3.3, latest" in body  # the siblings that stay
        await pilot.press("y")
        await wait_for(pilot, lambda: "stable" not in screen.rows and screen.details_done)
        tags = await tags_of(fresh_demo, "acme/web")
        assert "stable" not in tags and "latest" in tags and "1.3.3" in tags
        assert await manifest_status(fresh_demo, "acme/web", str(digest)) == 200


async def test_keep_newest_marks_then_bulk_delete_with_results(
    fresh_demo: RunningRegistry, app_for: AppFactory
) -> None:
    app = app_for(fresh_demo)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_repo(pilot, app, "acme/web")
        await pilot.press("k")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptDialog))
        app.screen.query_one(Input).value = ""
        await pilot.press("1", "2", "enter")
        await wait_for(pilot, lambda: app.screen is screen)
        # 16 versions + latest/stable on 1.3.3: keeping the 12 newest dated tags marks 1.0.0-1.1.1
        assert sorted(screen.marked) == ["1.0.0", "1.0.1", "1.0.2", "1.0.3", "1.1.0", "1.1.1"]

        # space toggles one more mark by hand: 1.1.2 (cursor moves down after marking)
        await move_to(pilot, screen, "1.1.2")
        await pilot.press("space")
        assert "1.1.2" in screen.marked
        await move_to(pilot, screen, "1.1.2")
        await pilot.press("space")
        assert "1.1.2" not in screen.marked

        await pilot.press("D")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        body = str(app.screen.query_one("#confirm-body", Static).render())
        assert body.count("• sha256:") == 6
        for tag in sorted(screen.marked):
            assert tag in body
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, ResultsDialog))
        results = app.screen
        assert isinstance(results, ResultsDialog)
        assert len(results.results) == 6 and all(r.ok for r in results.results)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is screen and screen.details_done)
        tags = await tags_of(fresh_demo, "acme/web")
        assert len(tags) == 12 and "1.0.0" not in tags and "1.1.2" in tags


async def test_bulk_delete_untags_when_a_sibling_is_not_marked(
    fresh_demo: RunningRegistry, app_for: AppFactory
) -> None:
    app = app_for(fresh_demo)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_repo(pilot, app, "library/alpine-demo")
        screen.marked = {"3.18", "3.19"}
        await pilot.press("D")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        body = str(app.screen.query_one("#confirm-body", Static).render())
        assert "remove: 3.18, 3.19" in body and "keep:   3.20, latest" in body
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, ResultsDialog))
        await pilot.press("escape")
        assert await tags_of(fresh_demo, "library/alpine-demo") == ["3.20", "latest"]


async def test_read_only_hides_every_deletion(
    fresh_demo: RunningRegistry, app_for: AppFactory
) -> None:
    app = app_for(fresh_demo, read_only=True)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_repo(pilot, app, "library/alpine-demo")
        shown = {active.binding.action for active in screen.active_bindings.values()}
        assert not shown & {"delete", "untag", "mark", "delete_marked", "keep_newest"}
        await pilot.press("d", "u", "space", "D", "k")
        await pilot.pause(0.2)
        assert app.screen is screen and not screen.marked
        assert len(await tags_of(fresh_demo, "library/alpine-demo")) == 4


async def test_a_tag_pushed_onto_the_digest_while_the_dialog_is_open_stops_the_delete(
    fresh_demo: RunningRegistry, app_for: AppFactory
) -> None:
    """The dialog named four tags; a fifth pushed before ``y`` means the operator has not seen
    everything the delete would take: nothing is deleted, and the screen says which tag."""
    app = app_for(fresh_demo)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_repo(pilot, app, "library/alpine-demo")
        digest = screen.rows["3.19"].digest
        assert digest is not None
        await move_to(pilot, screen, "3.19")
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        async with httpx.AsyncClient(base_url=fresh_demo.url) as http:
            got = await http.get(
                f"/v2/library/alpine-demo/manifests/{digest}", headers={"Accept": ACCEPT}
            )
            put = await http.put(
                "/v2/library/alpine-demo/manifests/pinned-by-ci",
                content=got.content,
                headers={"Content-Type": got.headers["Content-Type"]},
            )
            assert put.status_code == 201
        await pilot.press("y")
        await wait_for(pilot, lambda: any("pinned-by-ci" in n for n in notifications(app)))
        assert "Nothing was deleted" in next(n for n in notifications(app) if "pinned-by-ci" in n)
        assert await manifest_status(fresh_demo, "library/alpine-demo", digest) == 200
        assert "pinned-by-ci" in await tags_of(fresh_demo, "library/alpine-demo")
