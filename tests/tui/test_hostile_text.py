"""The app shows text from a hostile image as text: escaped control characters, no markup.

The image's labels and env values hold an OSC 52 clipboard write and a screen clear, its history
a markup tag (``[/tmp]`` closes nothing: Rich raises on it) and a C1 CSI, one of its file names
a newline and a right-to-left override. The config tab, the layers tab and the merged filesystem
show each escaped (``\\x1b``, ``\\n``, ``\\u202e``), and the painted screen holds none of them.
A registry of our own sends a repository name and a tag no real one accepts (a screen clear, a
clipboard write, ``[/]``): the registry and repository screens show them the same way.
"""

from __future__ import annotations

import unicodedata

from aiohttp import web
from textual.content import Content
from textual.notifications import Notification
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from tests.helpers.hostile_registry import serve
from tests.helpers.images import make_image, push_image
from tests.helpers.servers import RunningRegistry
from tests.tui.conftest import AppFactory, wait_for
from tui.app import RegtuiApp
from tui.screens.image import ImageScreen
from tui.screens.merged_fs import MergedFsScreen
from tui.screens.repository import RepositoryScreen

OSC52 = "\x1b]52;c;ZXZpbA==\x07"
CLEAR = "\x1b[2J"
LABEL = f"{OSC52}owned{CLEAR}"
ENV = f"EVIL={CLEAR}\nforged"
COMMAND = "RUN ls [/tmp] \x9b31m[bold]red"
FILE = "etc/evil\n\u202egpj.exe"


def painted(app: RegtuiApp) -> str:
    """Every character the screen paints (its lines as the terminal would get them)."""
    lines = app.screen._compositor.render_update(full=True)  # type: ignore[union-attr]
    return "".join(segment.text for strip in lines.strips for segment in strip)  # type: ignore[union-attr]


def notes(app: RegtuiApp) -> list[Notification]:
    return list(app._notifications)


def toast_text(note: Notification) -> Content:
    """What a toast paints for ``note`` (as Textual's ``Toast.render`` reads it)."""
    return Content.from_markup(note.message) if note.markup else Content(note.message)


def controls_in(text: str) -> list[str]:
    return [c for c in text if unicodedata.category(c) == "Cc" or c == "\u202e"]


async def open_hostile(pilot: Pilot[None], app: RegtuiApp) -> ImageScreen:
    await app.push_screen(ImageScreen("hostile/app", "v1"))
    screen = app.screen
    assert isinstance(screen, ImageScreen)
    await wait_for(pilot, lambda: screen.raw_config != "")
    return screen


async def test_config_layers_and_files_of_a_hostile_image_are_shown_escaped(
    registry: RunningRegistry, app_for: AppFactory
) -> None:
    image = make_image(
        [{"etc/ok": b"fine"}, {FILE: b"payload"}],
        labels={"org.example.note": LABEL},
        env=("PATH=/usr/bin", ENV),
        commands=["COPY base /", COMMAND],
    )
    push_image(registry.url, "hostile/app", "v1", image)
    app = app_for(registry)
    async with app.run_test(size=(160, 50)) as pilot:
        screen = await open_hostile(pilot, app)
        await pilot.press("2")
        config = str(screen.query_one("#config-text", Static).render())
        assert not controls_in(config.replace("\n", ""))
        assert "org.example.note = \\x1b]52;c;ZXZpbA==\\x07owned\\x1b[2J" in config
        assert "EVIL=\\x1b[2J\\nforged" in config
        shown = painted(app)
        assert "org.example.note = \\x1b]52" in shown and not controls_in(shown)

        await pilot.press("3")
        layers = screen.query_one("#layer-table", DataTable)
        await wait_for(pilot, lambda: layers.row_count >= 2)
        await pilot.pause()
        shown = painted(app)  # rendered: the markup is text, not a (broken) tag
        assert "RUN ls [/tmp] \\x9b31m[bold]red" in shown
        assert not controls_in(shown)

        layers.move_cursor(row=1)
        await pilot.press("m")
        merged = app.screen
        assert isinstance(merged, MergedFsScreen)
        await wait_for(pilot, lambda: merged.view is not None and merged.view.layer == 1)
        files = merged.query_one("#merged-files", DataTable)
        await wait_for(pilot, lambda: files.row_count >= 3)
        await pilot.pause()
        paths = {str(files.get_row_at(n)[4]) for n in range(files.row_count)}
        assert "etc/evil\\n\\u202egpj.exe" in paths
        shown = painted(app)
        assert "etc/evil\\n\\u202egpj.exe" in shown and not controls_in(shown)


# -- names and tags no real registry accepts, from a registry of our own ---------------------

EVIL_REPO = f"evil{CLEAR}/app"
EVIL_TAG = f"[/]{OSC52}"


def hostile_registry() -> web.Application:
    async def base(_: web.Request) -> web.Response:
        return web.json_response({})

    async def catalog(_: web.Request) -> web.Response:
        return web.json_response({"repositories": [EVIL_REPO, "ok/app"]})

    async def tags(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name == "denied/app":
            error = {"code": "DENIED", "message": f"[@click=app.quit]no{CLEAR}[/]", "detail": None}
            return web.json_response({"errors": [error]}, status=403)
        return web.json_response({"name": name, "tags": ["v1", EVIL_TAG]})

    async def missing(_: web.Request) -> web.Response:
        error = {"code": "MANIFEST_UNKNOWN", "message": f"gone{CLEAR}"}
        return web.json_response({"errors": [error]}, status=404)

    app = web.Application()
    app.router.add_get("/v2/", base)
    app.router.add_get("/v2/_catalog", catalog)
    app.router.add_get("/v2/{name:.+}/tags/list", tags)
    app.router.add_route("*", "/v2/{name:.+}/manifests/{reference}", missing)
    return app


async def test_repository_names_and_tags_from_a_hostile_registry_are_shown_escaped(
    app_for: AppFactory,
) -> None:
    async with serve(hostile_registry()) as host:
        app = app_for(host)
        async with app.run_test(size=(160, 50)) as pilot:
            await wait_for(pilot, lambda: "evil" in painted(app))
            shown = painted(app)  # the registry screen's tree
            assert "evil\\x1b[2J/" in shown and not controls_in(shown)

            # No URL can hold that name (the app says so, and lives); its title is escaped.
            await app.push_screen(RepositoryScreen(EVIL_REPO))
            await pilot.pause()
            shown = painted(app)
            assert "evil\\x1b[2J/app" in shown and not controls_in(shown)
            app.pop_screen()

            await app.push_screen(RepositoryScreen("ok/app"))
            screen = app.screen
            assert isinstance(screen, RepositoryScreen)
            # A markup tag in a tag name is text, not a broken tag (Rich raised on it).
            await wait_for(pilot, lambda: "[/]\\x1b]52;c;ZXZpbA==\\x07" in painted(app))
            assert "v1" in screen.rows and not controls_in(painted(app))
            app.pop_screen()

            # An error message from the registry: a notification, as text (not a link that
            # quits the app when clicked).
            await app.push_screen(RepositoryScreen("denied/app"))
            await wait_for(pilot, lambda: any("denied/app" in n.message for n in notes(app)))
            (note,) = [n for n in notes(app) if "denied/app" in n.message]
            toast = toast_text(note)
            assert "[@click=app.quit]no\\x1b[2J[/]" in toast.plain
            assert not toast.spans and not controls_in(toast.plain)
