"""The image screen on the bundled registry: sizes, raw headings, referrers, artifacts, deletion.

Every test runs at 80x24 and at 200x60. Sizes are checked against what the registry itself
says about each blob (a HEAD per blob), deletions against a HEAD through the client afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Static
from textual.widgets.data_table import ColumnKey

from tests.helpers.images import Blob, Image, make_artifact, make_image, push_image
from tests.helpers.servers import RunningRegistry, bundled_registry, distribution_registry
from tests.tui.conftest import AppFactory, wait_for
from tests.tui.helpers import notifications
from tui.app import RegtuiApp
from tui.client import NotFoundError, RegistryClient
from tui.client.models import OCI_CONFIG, OCI_INDEX, OCI_MANIFEST
from tui.demo import populate
from tui.dialogs.confirm import ConfirmDialog
from tui.logic.fmt import human_size
from tui.logic.image_view import NO_REFERRERS
from tui.screens.image import ImageScreen
from tui.screens.repository import RepositoryScreen

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((200, 60), id="200x60")]
ACCEPT = f"{OCI_INDEX}, {OCI_MANIFEST}"

HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"


# -- reading the registry directly (not through the app) -------------------------------------


async def registry_json(registry: RunningRegistry, path: str) -> Any:
    async with httpx.AsyncClient(base_url=registry.url) as http:
        response = await http.get(path, headers={"Accept": ACCEPT})
    response.raise_for_status()
    return json.loads(response.content)


async def blob_length(registry: RunningRegistry, repo: str, digest: str) -> int:
    async with httpx.AsyncClient(base_url=registry.url) as http:
        response = await http.head(f"/v2/{repo}/blobs/{digest}")
    assert response.status_code == 200, (digest, response.status_code)
    return int(response.headers["Content-Length"])


async def head_digest(registry: RunningRegistry, repo: str, ref: str) -> str:
    async with httpx.AsyncClient(base_url=registry.url) as http:
        response = await http.head(f"/v2/{repo}/manifests/{ref}", headers={"Accept": ACCEPT})
    assert response.status_code == 200
    return response.headers["Docker-Content-Digest"]


async def still_there(registry: RunningRegistry, repo: str, digest: str) -> bool:
    """A HEAD through regtui's client: False once the registry no longer has the manifest."""
    async with RegistryClient(registry.host, insecure=True) as client:
        try:
            await client.head_manifest(repo, digest)
        except NotFoundError:
            return False
    return True


# -- driving the app ---------------------------------------------------------------------------


def text_of(screen: ImageScreen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


def shown_actions(screen: ImageScreen) -> set[str]:
    return {active.binding.action for active in screen.active_bindings.values()}


async def open_image(
    pilot: Pilot[None], app: RegtuiApp, repo: str, ref: str, **kw: Any
) -> ImageScreen:
    await app.push_screen(ImageScreen(repo, ref, **kw))
    screen = app.screen
    assert isinstance(screen, ImageScreen)
    await wait_for(pilot, lambda: screen.result is not None and screen.referrers_loaded)
    return screen


async def dialog_body(pilot: Pilot[None], app: RegtuiApp) -> str:
    await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
    return str(app.screen.query_one("#confirm-body", Static).render())


# -- sizes -------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
async def test_index_total_and_platform_sizes_match_the_registrys_blobs(
    demo_registry: RunningRegistry, app_for: AppFactory, size: tuple[int, int]
) -> None:
    repo = "library/python-demo"
    index = await registry_json(demo_registry, f"/v2/{repo}/manifests/3.12")
    expected_rows: dict[str, int] = {}
    unique: dict[str, int] = {}
    for entry in index["manifests"]:
        child = await registry_json(demo_registry, f"/v2/{repo}/manifests/{entry['digest']}")
        blobs = [child["config"]["digest"], *(layer["digest"] for layer in child["layers"])]
        lengths = {digest: await blob_length(demo_registry, repo, digest) for digest in blobs}
        expected_rows[entry["digest"]] = sum(lengths[digest] for digest in blobs)
        unique.update(lengths)
    expected_total = sum(unique.values())
    # The demo's two platforms share their layers: counted once, the total is well below the sum.
    assert expected_total < sum(expected_rows.values())

    app = app_for(demo_registry)
    async with app.run_test(size=size) as pilot:
        screen = await open_image(pilot, app, repo, "3.12")
        await wait_for(pilot, lambda: screen.index_total is not None)
        assert screen.index_total is not None
        assert screen.index_total.unique_bytes == expected_total
        assert screen.index_total.summed_bytes == sum(expected_rows.values())
        overview = text_of(screen, "#overview-text")
        assert f"{human_size(expected_total)} for 2 platforms" in overview
        assert "shared layers counted once" in overview

        table = screen.query_one("#platforms", DataTable)
        assert table.row_count == 2
        for entry in index["manifests"]:
            cell = table.get_cell(entry["digest"], "size")
            assert cell == human_size(expected_rows[entry["digest"]])
            assert cell != human_size(entry["size"])  # not the manifest document's size
        assert "Image size" in str(table.columns[ColumnKey("size")].label)


# -- raw documents -----------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
async def test_raw_tab_heads_each_document(
    demo_registry: RunningRegistry, app_for: AppFactory, size: tuple[int, int]
) -> None:
    repo = "library/python-demo"
    index_digest = await head_digest(demo_registry, repo, "3.12")
    index = await registry_json(demo_registry, f"/v2/{repo}/manifests/{index_digest}")
    amd64 = next(m for m in index["manifests"] if m["platform"]["architecture"] == "amd64")
    child = await registry_json(demo_registry, f"/v2/{repo}/manifests/{amd64['digest']}")

    app = app_for(demo_registry)
    async with app.run_test(size=size) as pilot:
        screen = await open_image(pilot, app, repo, "3.12")
        await pilot.press("4")
        heading = text_of(screen, "#raw-manifest-heading").splitlines()
        assert heading[0].split() == ["Index", f"{screen.result.size:,}", "bytes"]  # type: ignore[union-attr]
        assert heading[1:] == [f"  {index_digest}", f"  {OCI_INDEX}"]
        assert text_of(screen, "#raw-config-heading") == ""  # an index has no config

        await pilot.press("1")
        table = screen.query_one("#platforms", DataTable)
        table.move_cursor(row=table.get_row_index(amd64["digest"]))
        table.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is not screen)
        platform = app.screen
        assert isinstance(platform, ImageScreen)
        await wait_for(pilot, lambda: platform.raw_config != "")
        await pilot.press("4")
        heading = text_of(platform, "#raw-manifest-heading").splitlines()
        assert heading[0].startswith(" Manifest for linux/amd64 ")
        assert heading[1:] == [f"  {amd64['digest']}", f"  {OCI_MANIFEST}"]
        config_heading = text_of(platform, "#raw-config-heading").splitlines()
        assert config_heading[0].split()[:3] == ["Config", "of", "linux/amd64"]
        assert config_heading[1:] == [f"  {child['config']['digest']}", f"  {OCI_CONFIG}"]
        assert '"architecture": "amd64"' in platform.raw_config


# -- referrers and artifacts -------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
async def test_empty_referrers_tab_says_so(
    demo_registry: RunningRegistry, app_for: AppFactory, size: tuple[int, int]
) -> None:
    app = app_for(demo_registry)
    async with app.run_test(size=size) as pilot:
        screen = await open_image(pilot, app, "acme/api", "2.0.0")
        await pilot.press("5")
        empty = screen.query_one("#referrers-empty", Static)
        assert empty.display and str(empty.render()) == NO_REFERRERS
        assert not screen.query_one("#referrer-table", DataTable).display
        assert empty.region.height > 0  # laid out on screen, not only present

        signed = await open_image(pilot, app, "acme/web", "latest")  # one signature
        await pilot.press("5")
        assert not signed.query_one("#referrers-empty", Static).display
        assert signed.query_one("#referrer-table", DataTable).row_count == 1


def helm_chart() -> Image:
    """An artifact without ``artifactType``: only its config media type says it is no image."""
    config = Blob(b'{"name":"demo-chart","version":"0.1.0"}', HELM_CONFIG)
    chart = Blob(b"not really a chart", "application/vnd.cncf.helm.chart.content.v1.tar+gzip")
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [chart.descriptor()],
    }
    return Image(Blob(json.dumps(document).encode(), OCI_MANIFEST), config, (chart,))


@pytest.fixture
def artifacts(demo_registry: RunningRegistry) -> Iterator[dict[str, str]]:
    """A helm chart, and an SBOM referring to it, pushed by this test."""
    chart = helm_chart()
    chart_digest = push_image(demo_registry.url, "test/charts", "0.1.0", chart)
    sbom = make_artifact(chart, artifact_type="application/spdx+json", payload=b'{"spdx":1}')
    sbom_digest = push_image(demo_registry.url, "test/charts", None, sbom)
    yield {"chart": chart_digest, "sbom": sbom_digest}


@pytest.mark.parametrize("size", SIZES)
async def test_an_artifact_offers_no_docker_pull(
    demo_registry: RunningRegistry,
    app_for: AppFactory,
    artifacts: dict[str, str],
    size: tuple[int, int],
) -> None:
    app = app_for(demo_registry)
    async with app.run_test(size=size) as pilot:
        chart = await open_image(pilot, app, "test/charts", "0.1.0")
        assert "docker pull" not in text_of(chart, "#overview-text")
        assert "copy_pull" not in shown_actions(chart)
        await pilot.press("c")
        await pilot.pause(0.1)
        assert app.clipboard == "" and not any("Pull" in n for n in notifications(app))
        blobs = chart.query_one("#layer-table", DataTable)
        assert [str(column.label) for column in blobs.columns.values()] == [
            "#",
            "Blob",
            "Size",
            "Media type",
        ]

        # The chart's referrer (an SBOM), opened from the Referrers tab: no pull either.
        await pilot.press("5")
        assert [ref.digest for ref in chart.referrers] == [artifacts["sbom"]]
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is not chart)
        sbom = app.screen
        assert isinstance(sbom, ImageScreen)
        await wait_for(pilot, lambda: sbom.result is not None)
        overview = text_of(sbom, "#overview-text")
        assert "application/spdx+json" in overview and "docker pull" not in overview
        assert "copy_pull" not in shown_actions(sbom)
        await pilot.press("c")
        await pilot.pause(0.1)
        assert app.clipboard == ""

        image = await open_image(pilot, app, "acme/web", "latest")  # an image does offer it
        assert "copy_pull" in shown_actions(image)


@pytest.mark.parametrize("size", SIZES)
async def test_c_shows_the_pull_command_it_sent(
    demo_registry: RunningRegistry, app_for: AppFactory, size: tuple[int, int]
) -> None:
    app = app_for(demo_registry)
    async with app.run_test(size=size) as pilot:
        await open_image(pilot, app, "acme/web", "latest")
        await pilot.press("c")
        await wait_for(pilot, lambda: notifications(app))
        [notice] = notifications(app)
        assert "Sent to the terminal's clipboard" in notice
        assert notice.endswith("\ndocker pull registry.example/acme/web:latest")
        assert "Copied" not in notice
        assert app.clipboard == "docker pull registry.example/acme/web:latest"


# -- deletion ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
async def test_delete_the_manifest_on_screen_after_naming_every_tag(
    fresh_demo: RunningRegistry, app_for: AppFactory, size: tuple[int, int]
) -> None:
    repo = "library/alpine-demo"
    digest = await head_digest(fresh_demo, repo, "latest")
    app = app_for(fresh_demo)
    async with app.run_test(size=size) as pilot:
        await app.push_screen(RepositoryScreen(repo))
        repository = app.screen
        assert isinstance(repository, RepositoryScreen)
        await wait_for(pilot, lambda: repository.details_done)
        screen = await open_image(pilot, app, repo, "latest")
        assert "delete" in shown_actions(screen)
        await pilot.press("d")
        body = await dialog_body(pilot, app)
        assert digest in body
        assert "These 4 tags point at it and will ALL disappear:" in body
        for tag in ("3.18", "3.19", "3.20", "latest"):  # every tag sharing the digest
            assert f"• {tag}" in body
        await pilot.press("y")
        await wait_for(pilot, lambda: app.screen is repository)
        assert not await still_there(fresh_demo, repo, digest)
        assert any(n.startswith("Deleted:") for n in notifications(app))
        await wait_for(pilot, lambda: not repository.rows)  # reloaded: its tags are gone
        assert not [n for n in app._notifications if n.severity == "error"]


@pytest.mark.parametrize("size", SIZES)
async def test_delete_a_platform_manifest_names_the_index_it_breaks(
    fresh_demo: RunningRegistry, app_for: AppFactory, size: tuple[int, int]
) -> None:
    repo = "library/python-demo"
    index_digest = await head_digest(fresh_demo, repo, "3.12")
    app = app_for(fresh_demo)
    async with app.run_test(size=size) as pilot:
        screen = await open_image(pilot, app, repo, "3.12")
        await wait_for(pilot, lambda: screen.index_total is not None)
        table = screen.query_one("#platforms", DataTable)
        table.focus()
        await pilot.press("down")  # linux/arm64/v8
        child = screen.selected_platform()
        assert child is not None and table.get_row(child)[0] == "linux/arm64/v8"
        assert "delete_platform" in shown_actions(screen)
        await pilot.press("x")
        body = await dialog_body(pilot, app)
        title = str(app.screen.query_one(".dialog-title", Static).render())
        assert title.startswith("Delete the linux/arm64/v8 manifest")
        assert child in body and "No tag points at it." in body
        assert "BREAKS that index" in body
        assert f"• index {index_digest}" in body
        assert "Tagged 3.12, 3.12-slim and latest; lists it as linux/arm64/v8." in body

        await pilot.press("n")  # cancel: nothing happens
        await wait_for(pilot, lambda: app.screen is screen)
        assert await still_there(fresh_demo, repo, child)

        await pilot.press("x")
        await dialog_body(pilot, app)
        await pilot.press("y")
        await wait_for(pilot, lambda: any("Broken index" in n for n in notifications(app)))
        assert not await still_there(fresh_demo, repo, child)
        assert await still_there(fresh_demo, repo, index_digest)
        await wait_for(pilot, lambda: table.get_cell(child, "size") == "missing")
        overview = text_of(screen, "#overview-text")
        assert "1 platform manifest unreadable, not counted" in overview


@pytest.mark.parametrize("size", SIZES)
async def test_delete_an_opened_platform_returns_to_its_broken_index(
    fresh_demo: RunningRegistry, app_for: AppFactory, size: tuple[int, int]
) -> None:
    repo = "library/python-demo"
    index_digest = await head_digest(fresh_demo, repo, "latest")
    app = app_for(fresh_demo)
    async with app.run_test(size=size) as pilot:
        index = await open_image(pilot, app, repo, "latest")
        await wait_for(pilot, lambda: index.index_total is not None)
        index.query_one("#platforms", DataTable).focus()
        await pilot.press("enter")  # linux/amd64
        await wait_for(pilot, lambda: app.screen is not index)
        platform = app.screen
        assert isinstance(platform, ImageScreen) and platform.parent_index == index_digest
        await wait_for(pilot, lambda: platform.result is not None)
        # The overview is painted after the result arrives: wait for it, not for a fixed time.
        await wait_for(
            pilot, lambda: f"In index    {index_digest}" in text_of(platform, "#overview-text")
        )
        await pilot.press("d")
        body = await dialog_body(pilot, app)
        assert f"• index {index_digest}" in body and "BREAKS that index" in body
        await pilot.press("y")
        await wait_for(pilot, lambda: app.screen is index)
        assert not await still_there(fresh_demo, repo, platform.reference)
        table = index.query_one("#platforms", DataTable)
        await wait_for(pilot, lambda: table.get_cell(platform.reference, "size") == "missing")


@pytest.mark.parametrize("size", SIZES)
async def test_delete_a_referrer_names_its_subject(
    fresh_demo: RunningRegistry, app_for: AppFactory, size: tuple[int, int]
) -> None:
    repo = "acme/web"
    subject = await head_digest(fresh_demo, repo, "latest")
    app = app_for(fresh_demo)
    async with app.run_test(size=size) as pilot:
        screen = await open_image(pilot, app, repo, "latest")
        await pilot.press("5")
        [referrer] = screen.referrers
        assert "delete_referrer" in shown_actions(screen)
        assert "delete_platform" not in shown_actions(screen)
        await pilot.press("x")
        body = await dialog_body(pilot, app)
        assert referrer.digest in body
        assert f"It refers to this manifest, which stays:\n  • {subject}" in body
        assert "Tagged 1.3.3, latest and stable." in body
        await pilot.press("y")
        await wait_for(pilot, lambda: screen.query_one("#referrers-empty", Static).display)
        assert not await still_there(fresh_demo, repo, referrer.digest)
        assert await still_there(fresh_demo, repo, subject)


@pytest.mark.parametrize("size", SIZES)
async def test_read_only_shows_no_delete_key(
    demo_registry: RunningRegistry, app_for: AppFactory, size: tuple[int, int]
) -> None:
    app = app_for(demo_registry, read_only=True)
    async with app.run_test(size=size) as pilot:
        screen = await open_image(pilot, app, "library/python-demo", "3.12")
        assert not shown_actions(screen) & {"delete", "delete_platform", "delete_referrer"}
        await pilot.press("d", "x")
        await pilot.pause(0.2)
        assert app.screen is screen
        await pilot.press("5")
        assert "delete_referrer" not in shown_actions(screen)


@pytest.fixture
def no_delete_registry(tmp_path: Path) -> Iterator[RunningRegistry]:
    """The demo on a bundled registry whose deletes are disabled (it answers 405)."""
    with bundled_registry(
        tmp_path / "registry", env={"REGISTRY_STORAGE_DELETE_ENABLED": "false"}
    ) as running:
        populate(running.url)
        yield running


@pytest.mark.parametrize("size", SIZES)
async def test_a_405_gives_one_notification_and_hides_the_delete_keys(
    no_delete_registry: RunningRegistry, app_for: AppFactory, size: tuple[int, int]
) -> None:
    repo = "library/alpine-demo"
    digest = await head_digest(no_delete_registry, repo, "latest")
    app = app_for(no_delete_registry)
    async with app.run_test(size=size) as pilot:
        screen = await open_image(pilot, app, repo, "latest")
        await pilot.press("d")
        await dialog_body(pilot, app)
        await pilot.press("y")
        await wait_for(pilot, lambda: notifications(app))
        await pilot.pause(0.2)
        assert notifications(app) == [
            "Deletes disabled: Deletes are disabled on this registry (it answered 405 Method "
            "Not Allowed): nothing was deleted."
        ]
        assert app.screen is screen
        assert await still_there(no_delete_registry, repo, digest)
        assert "delete" not in shown_actions(screen)


@pytest.fixture
def distribution_no_delete(tmp_path: Path) -> Iterator[RunningRegistry]:
    """Debian's docker-registry (Distribution 2.8) as it ships: deletes disabled (405)."""
    with distribution_registry(
        tmp_path / "distribution", config={"storage": {"delete": {"enabled": False}}}
    ) as running:
        push_image(running.url, "library/small", "latest", make_image([{"etc/hostname": b"x"}]))
        yield running


@pytest.mark.parametrize("size", SIZES)
async def test_distribution_with_deletes_disabled_gives_one_notification(
    distribution_no_delete: RunningRegistry, app_for: AppFactory, size: tuple[int, int]
) -> None:
    digest = await head_digest(distribution_no_delete, "library/small", "latest")
    app = app_for(distribution_no_delete)
    async with app.run_test(size=size) as pilot:
        screen = await open_image(pilot, app, "library/small", "latest")
        await pilot.press("d")
        body = await dialog_body(pilot, app)
        assert "This tag points at it and will disappear:\n  • latest" in body
        await pilot.press("y")
        await wait_for(pilot, lambda: notifications(app))
        await pilot.pause(0.2)
        [notice] = notifications(app)
        assert notice.startswith("Deletes disabled: Deletes are disabled on this registry")
        assert await still_there(distribution_no_delete, "library/small", digest)
        assert "delete" not in shown_actions(screen)
