"""On a pull-through cache (the bundled registry with ``proxy:``), the Tags screen says whose
cache the repository is and when each cached tag expires; elsewhere it shows neither. Upstream:
Debian's docker-registry behind htpasswd; the first pull through the mirror is skopeo's."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from pathlib import Path

from textual.widgets import Static

from tests.helpers.servers import RunningRegistry, bundled_registry, require_tool
from tests.server.test_proxy import PASSWORD, USER, app_image, proxy_config, upstream
from tests.tui.conftest import AppFactory, wait_for
from tui.imagegen import push_image
from tui.screens.repository import RepositoryScreen
from tui.widgets.tag_table import EXPIRES_COLUMN


async def test_a_mirrors_tags_show_the_upstream_and_their_expiry(
    tmp_path: Path, app_for: AppFactory
) -> None:
    image = app_image()
    with contextlib.ExitStack() as stack:
        up = stack.enter_context(upstream(tmp_path))
        push_image(up.url, "team/app", "v1", image, auth=(USER, PASSWORD))
        mirror: RunningRegistry = stack.enter_context(
            bundled_registry(tmp_path / "mirror", config=proxy_config(up.url, ttl="2h"))
        )
        pulled = await asyncio.to_thread(
            subprocess.run,
            [
                require_tool("skopeo"),
                "copy",
                "--src-tls-verify=false",
                f"docker://{mirror.host}/team/app:v1",
                f"oci:{tmp_path / 'pulled'}:v1",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert pulled.returncode == 0, pulled.stderr
        app = app_for(mirror)
        async with app.run_test(size=(120, 40)) as pilot:
            await app.push_screen(RepositoryScreen("team/app"))
            screen = app.screen
            assert isinstance(screen, RepositoryScreen)
            await wait_for(pilot, lambda: screen.details_done and screen.cache is not None)
            assert screen.cache is not None
            assert screen.cache.upstream == f"{up.url}/team/app"
            heading = str(screen.query_one("#repo-heading", Static).render())
            assert f"cache of {up.url}/team/app, kept 2h" in heading
            table = screen.table
            assert EXPIRES_COLUMN[1] in [str(c.label) for c in table.columns.values()]
            expires = screen.rows["v1"].expires
            assert expires is not None and expires == screen.cache.tags["v1"].expires


async def test_an_ordinary_repository_has_no_expiry(
    fresh_demo: RunningRegistry, app_for: AppFactory
) -> None:
    app = app_for(fresh_demo)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.push_screen(RepositoryScreen("acme/web"))
        screen = app.screen
        assert isinstance(screen, RepositoryScreen)
        await wait_for(pilot, lambda: screen.details_done)
        assert screen.cache is None
        assert EXPIRES_COLUMN[1] not in [str(c.label) for c in screen.table.columns.values()]
        assert "cache of" not in str(screen.query_one("#repo-heading", Static).render())
