"""A repository with a few hundred tags, many on the same image, an index and an artifact.

The app reaches the bundled registry through a small forwarding proxy written here (a real
aiohttp server on loopback): it counts every request, holds the manifests of a few tags until
the test lets them go (so "while the details load" is a state the test controls, not a race),
and answers 404 for two tags (deleted between the listing and the read, as happens).
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import json
import re
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiohttp
import httpx
import pytest
from aiohttp import web
from textual.widgets import Static

from tests.helpers.servers import RunningRegistry, bundled_registry
from tests.tui.conftest import AppFactory, wait_for
from tests.tui.helpers import notifications
from tui.imagegen import Image, make_artifact, make_image, make_index, push_image
from tui.imagegen import push_manifest as put_manifest
from tui.logic.tags import TagSort, natural_key
from tui.screens import repository
from tui.screens.repository import VISIBLE_MARGIN, RepositoryScreen

REPO = "team/many"
IMAGES = 60
TAGS_PER_IMAGE = 5
START = datetime(2024, 3, 1, tzinfo=UTC)
HELD = ("1.3.2", "1.7.4", "1.50.1")
"""Their manifests wait for the test: the first two are on screen at first, the third not."""
MISSING = ("1.20.3", "stable")
"""The proxy answers 404 for these manifests (an image tag and an index tag)."""
ARTIFACT_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"


@dataclass(frozen=True)
class Expected:
    digest: str
    size: int
    created: datetime | None
    platforms: tuple[str, ...]


def _bytes(seed: int, size: int) -> bytes:
    """Incompressible and deterministic: each image's layer has its own compressed size."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}/{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def _size(image: Image) -> int:
    return image.config.size + sum(layer.size for layer in image.layers)


@dataclass
class ManyTags:
    registry: RunningRegistry
    expected: dict[str, Expected]
    configs: set[str]
    """Config digests the details need (images and the index's platforms)."""
    children: set[str]
    """Platform manifests of the index."""
    not_read: set[str]
    """Blobs the details never need: layers, the artifact's config."""


@pytest.fixture(scope="module")
def many_tags(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManyTags]:
    root = tmp_path_factory.mktemp("many") / "registry"
    with bundled_registry(root) as registry, httpx.Client(base_url=registry.url) as client:
        expected: dict[str, Expected] = {}
        images: list[Image] = []
        for n in range(IMAGES):
            # Date and size orders differ from the name order and from each other.
            created = START + timedelta(hours=(n * 37) % IMAGES)
            image = make_image(
                [{f"data-{n}": _bytes(n, 2000 + ((n * 53) % IMAGES) * 300)}],
                created=created.strftime("%Y-%m-%dT%H:%M:%SZ"),
            )
            images.append(image)
            tags = [f"1.{n}.{k}" for k in range(TAGS_PER_IMAGE)]
            push_image(client, REPO, tags[0], image)
            for tag in tags[1:]:
                put_manifest(client, REPO, tag, image.manifest)
            for tag in tags:
                expected[tag] = Expected(image.digest, _size(image), created, ("linux/amd64",))
        arm_created = START + timedelta(days=30)
        arm = make_image(
            [{"arm": _bytes(999, 500)}],
            architecture="arm64",
            created=arm_created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        index = make_index([images[0], arm])  # a platform that is also a tagged image
        for tag in ("multi", "multi-latest", "stable"):
            push_image(client, REPO, tag, index)
            expected[tag] = Expected(
                index.digest,
                max(_size(images[0]), _size(arm)),
                arm_created,
                ("linux/amd64", "linux/arm64"),
            )
        artifact = make_artifact(images[1], artifact_type=ARTIFACT_TYPE)
        for tag in ("sig-a", "sig-b"):
            push_image(client, REPO, tag, artifact)
            expected[tag] = Expected(artifact.digest, _size(artifact), None, (ARTIFACT_TYPE,))
        layers = {layer.digest for image in [*images, arm, artifact] for layer in image.layers}
        yield ManyTags(
            registry,
            expected,
            configs={image.config.digest for image in [*images, arm]},
            children={images[0].digest, arm.digest},
            not_read=layers | {artifact.config.digest},
        )


@dataclass
class Proxy:
    """Forwards to the registry; counts, holds and refuses manifests by reference."""

    upstream: str
    held: set[str] = field(default_factory=set)
    missing: set[str] = field(default_factory=set)
    requests: Counter[str] = field(default_factory=Counter)
    asked: list[str] = field(default_factory=list)
    """Tags whose manifest was asked for, in order."""
    abandoned: list[str] = field(default_factory=list)
    """Held requests whose client went away (a reload cancelled them)."""
    release: asyncio.Event = field(default_factory=asyncio.Event)
    """Lets the ``held`` manifests go."""
    flowing: asyncio.Event = field(default_factory=asyncio.Event)
    """Until set, every manifest read by tag waits (nothing is read yet)."""
    host: str = ""
    session: aiohttp.ClientSession | None = None
    report_details: bool = False
    """Let the registry's ``_regtui/tags`` report carry the rows' details (the bundled
    registry's); off, the report only says when each tag was pushed, as an older bundled
    registry's did, and the app reads each tag's details itself: what these tests are about."""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests[f"{request.method} {request.path}"] += 1
        match = re.fullmatch(rf"/v2/{REPO}/manifests/(.+)", request.path)
        reference = match.group(1) if match else None
        if reference is not None and not reference.startswith("sha256:"):
            self.asked.append(reference)
        if reference in self.missing:
            return web.json_response(
                {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]},
                status=404,
            )
        gate = self.release if reference in self.held else self.flowing
        if reference is not None and not reference.startswith("sha256:"):
            while not gate.is_set():
                transport = request.transport
                if transport is None or transport.is_closing():
                    self.abandoned.append(reference)
                    return web.Response(status=499)  # nobody is there to read it
                await asyncio.sleep(0.02)
        assert self.session is not None
        headers = {
            name: value
            for name, value in request.headers.items()
            if name.lower() not in ("host", "content-length", "transfer-encoding")
        }
        async with self.session.request(
            request.method,
            f"{self.upstream}{request.path_qs}",
            headers=headers,
            data=await request.read(),
            allow_redirects=False,
        ) as answer:
            body = await answer.read()
            if request.path.endswith("/_regtui/tags") and not self.report_details:
                body = _without_row_details(body)
            keep = {
                name: value
                for name, value in answer.headers.items()
                if name.lower() not in ("content-length", "transfer-encoding", "content-encoding")
            }
            return web.Response(status=answer.status, body=body, headers=keep)

    def gets(self, path: str) -> int:
        return self.requests[f"GET {path}"]


ROW_DETAILS = (
    "mediaType",
    "artifactType",
    "config",
    "configMediaType",
    "size",
    "platform",
    "platforms",
)
"""What the bundled registry's report says of each manifest for the app's rows."""


def _without_row_details(body: bytes) -> bytes:
    report = json.loads(body)
    for manifest in report["manifests"]:
        for key in ROW_DETAILS:
            manifest.pop(key, None)
    return json.dumps(report).encode()


@pytest.fixture
async def proxy(many_tags: ManyTags) -> AsyncIterator[Proxy]:
    registry = many_tags.registry
    proxy = Proxy(upstream=registry.url)
    proxy.flowing.set()
    app = web.Application()
    app.router.add_route("*", "/{path:.*}", proxy.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    proxy.host = f"127.0.0.1:{port}"
    # The app sends its local admin secret to the proxy's port (push times): the same secret.
    assert registry.admin_dir is not None
    secret = registry.admin_dir / str(port)
    secret.write_text(registry.admin_secret())
    secret.chmod(0o600)
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        proxy.session = session
        try:
            yield proxy
        finally:
            proxy.release.set()
            proxy.flowing.set()
            await runner.cleanup()
            secret.unlink()


def order(screen: RepositoryScreen) -> list[str]:
    return [str(row.key.value) for row in screen.table.ordered_rows]


def expected_order(many: ManyTags, key: TagSort, read: set[str], *, needle: str = "") -> list[str]:
    """Newest or biggest first (ties: the later tag name first); unread or unreadable rows
    last, in name order."""

    def value(tag: str) -> object:
        facts = many.expected[tag]
        return facts.created if key is TagSort.DATE else facts.size

    tags = [tag for tag in many.expected if needle in tag]
    known = [tag for tag in tags if tag in read and value(tag) is not None]
    unknown = [tag for tag in tags if tag not in known]
    known.sort(key=lambda tag: (value(tag), tag), reverse=True)
    return known + sorted(unknown, key=natural_key)


def check_rows(
    screen: RepositoryScreen, many: ManyTags, read: set[str], missing: tuple[str, ...] = ()
) -> None:
    """Every read row holds what its manifest says; the others are unread or failed."""
    for tag, facts in many.expected.items():
        row = screen.rows[tag]
        if tag in missing:
            assert row.error and row.digest is None, row
        elif tag in read:
            assert row.loaded and not row.error, row
            assert row.digest == facts.digest, tag
            assert row.size == facts.size, tag
            assert row.created == facts.created, tag
            assert row.platforms == facts.platforms, tag
            assert row.pushed is not None, tag  # the Pushed column, from the registry
        else:
            assert not row.loaded, row


async def sort_by(pilot: object, screen: RepositoryScreen, key: TagSort) -> None:
    for _ in TagSort:
        if screen.sort_key is key:
            return
        await pilot.press("s")  # type: ignore[attr-defined]
    assert screen.sort_key is key


def status(screen: RepositoryScreen) -> str:
    return str(screen.query_one("#status", Static).render())


async def test_hundreds_of_tags_sort_and_filter_while_and_after_loading(
    many_tags: ManyTags, proxy: Proxy, app_for: AppFactory
) -> None:
    proxy.held.update(HELD)
    proxy.missing.update(MISSING)
    proxy.flowing.clear()
    everything = set(many_tags.expected)
    readable = everything - set(HELD) - set(MISSING)
    app = app_for(proxy.host, timeout=60.0)  # held requests wait for the test
    async with app.run_test(size=(120, 40)) as pilot:
        await app.push_screen(RepositoryScreen(REPO))
        screen = app.screen
        assert isinstance(screen, RepositoryScreen)
        # The tags are listed first; the Pushed column comes with the registry's report.
        await wait_for(
            pilot,
            lambda: screen.table.row_count == len(everything) and screen.table.shows_pushed,
        )
        # The rows on screen (and a page below) are read first: in name order, not the
        # registry's (which puts 1.10.0 to 1.19.4 before 1.2.0).
        first = screen.table.visible_tags(margin=VISIBLE_MARGIN)
        assert len(first) > 40 and "1.2.0" in first and "1.19.0" not in first
        await wait_for(pilot, lambda: len(proxy.asked) >= 8)

        # Sorted by date while the details load: rows move into order as they are read.
        await sort_by(pilot, screen, TagSort.DATE)
        for tag in ("1.1.0", "1.2.3"):  # on screen: the view stays where it is
            screen.table.move_cursor(row=screen.table.get_row_index(tag))
            await pilot.press("space")
        assert screen.marked == {"1.1.0", "1.2.3"}
        assert not any(row.loaded for row in screen.rows.values())
        proxy.flowing.set()
        await wait_for(pilot, lambda: len(proxy.asked) >= 20)
        assert set(proxy.asked[:20]) <= set(first), proxy.asked[:20]
        await wait_for(
            pilot, lambda: order(screen) == expected_order(many_tags, TagSort.DATE, readable)
        )
        assert not screen.details_done
        assert f"reading details {len(everything) - len(HELD)}/{len(everything)}" in status(screen)
        check_rows(screen, many_tags, readable, MISSING)

        # By size, still loading: the held rows wait at the bottom.
        await sort_by(pilot, screen, TagSort.SIZE)
        assert order(screen) == expected_order(many_tags, TagSort.SIZE, readable)

        # A filter while loading, kept when the last details come in.
        await pilot.press("slash", *"1.5")
        await pilot.pause(0.1)
        shown = expected_order(many_tags, TagSort.SIZE, readable, needle="1.5")
        assert order(screen) == shown and "1.50.1" in shown
        proxy.release.set()
        await wait_for(pilot, lambda: screen.details_done)
        # Read now: a notification goes after a few seconds (on a loaded machine, before
        # the steps below are done).
        assert any(f"2 tags of {REPO} could not be read" in n for n in notifications(app))
        check_rows(screen, many_tags, everything - set(MISSING), MISSING)
        loaded = everything - set(MISSING)
        assert order(screen) == expected_order(many_tags, TagSort.SIZE, loaded, needle="1.5")

        # After the load: the whole table by size, then by date; marks kept.
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert order(screen) == expected_order(many_tags, TagSort.SIZE, loaded)
        await sort_by(pilot, screen, TagSort.DATE)
        assert order(screen) == expected_order(many_tags, TagSort.DATE, loaded)
        assert screen.marked == {"1.1.0", "1.2.3"}
        marks = {tag: str(screen.table.get_row(tag)[0]) for tag in everything}
        assert {tag for tag, mark in marks.items() if mark == "●"} == {"1.1.0", "1.2.3"}
        assert str(screen.table.get_row("sig-a")[5]) == ARTIFACT_TYPE
        assert "2 could not be read" in status(screen)

    # Each tag's manifest was read once; what its digest leads to, once for all its tags.
    for tag in everything:
        assert proxy.gets(f"/v2/{REPO}/manifests/{tag}") == 1, tag
    for digest in many_tags.configs:
        assert proxy.gets(f"/v2/{REPO}/blobs/{digest}") == 1, digest
    for digest in many_tags.children:
        assert proxy.gets(f"/v2/{REPO}/manifests/{digest}") == 1, digest
    for digest in many_tags.not_read:
        assert proxy.gets(f"/v2/{REPO}/blobs/{digest}") == 0, digest


async def test_reload_cancels_the_details_still_being_read(
    many_tags: ManyTags, proxy: Proxy, app_for: AppFactory
) -> None:
    proxy.held.update(HELD)
    everything = set(many_tags.expected)
    app = app_for(proxy.host, timeout=60.0)  # held requests wait for the test
    async with app.run_test(size=(120, 40)) as pilot:
        await app.push_screen(RepositoryScreen(REPO))
        screen = app.screen
        assert isinstance(screen, RepositoryScreen)
        read = everything - set(HELD)
        await wait_for(
            pilot,
            lambda: (
                len(screen.rows) == len(everything) and all(screen.rows[tag].loaded for tag in read)
            ),
        )
        first = screen.rows["1.0.0"]
        await pilot.press("r")
        # The first load's held requests are given up, not left running beside the new one.
        await wait_for(pilot, lambda: sorted(proxy.abandoned) == sorted(HELD))
        await wait_for(pilot, lambda: screen.rows["1.0.0"] is not first and screen._loaded)
        proxy.release.set()
        await wait_for(pilot, lambda: screen.details_done)
        check_rows(screen, many_tags, everything)
        assert "could not be read" not in status(screen)
    for tag in everything:
        assert proxy.gets(f"/v2/{REPO}/manifests/{tag}") == 2, tag  # once per load


def test_expected_order_is_not_name_order(many_tags: ManyTags) -> None:
    """The fixture is worth its name: date, size and name orders all differ."""
    everything = set(many_tags.expected)
    by_date = expected_order(many_tags, TagSort.DATE, everything)
    by_size = expected_order(many_tags, TagSort.SIZE, everything)
    by_name = sorted(everything, key=natural_key)
    assert len({tuple(by_date), tuple(by_size), tuple(by_name), tuple(reversed(by_name))}) == 4


async def test_a_big_repository_keeps_the_collector_off_its_rows_while_open(
    many_tags: ManyTags, proxy: Proxy, app_for: AppFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Frozen while the screen is open (a full collection would walk every row); when it
    closes, everything is unfrozen and collected once, then what lives is frozen again (so a
    closed screen's rows are not kept frozen, and the catalog's stay frozen)."""
    monkeypatch.setattr(repository, "FREEZE_ROWS", 100)  # 305 tags count as "big" here
    monkeypatch.setattr(repository, "REFREEZE_DELAY", 0.1)
    collections: list[int] = []
    refreeze = repository._collect_and_refreeze

    def counted() -> None:
        collections.append(gc.get_count()[0])
        refreeze()

    monkeypatch.setattr(repository, "_collect_and_refreeze", counted)
    app = app_for(proxy.host)
    async with app.run_test(size=(120, 40)) as pilot:
        gc.unfreeze()  # whatever an earlier screen froze: this test counts its own
        await app.push_screen(RepositoryScreen(REPO))
        screen = app.screen
        assert isinstance(screen, RepositoryScreen)
        await wait_for(pilot, lambda: screen.details_done)
        assert gc.get_freeze_count() > 0
        check_rows(screen, many_tags, set(many_tags.expected))
        gc.unfreeze()
        assert gc.get_freeze_count() == 0
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, RepositoryScreen))
        await wait_for(pilot, lambda: len(collections) == 1)
        assert gc.get_freeze_count() > 0  # what lives is frozen again


async def test_the_bundled_registrys_report_carries_every_rows_details(
    many_tags: ManyTags, proxy: Proxy, app_for: AppFactory
) -> None:
    """The report of ``_regtui/tags`` holds what every row shows, images, the index and the
    artifact alike, exactly as the per-tag reads make it: no manifest or config is read."""
    proxy.report_details = True
    proxy.missing.update(MISSING)  # would fail those rows, were they read one by one
    everything = set(many_tags.expected)
    app = app_for(proxy.host)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.push_screen(RepositoryScreen(REPO))
        screen = app.screen
        assert isinstance(screen, RepositoryScreen)
        await wait_for(pilot, lambda: screen.details_done and not screen.table.adding)
        check_rows(screen, many_tags, everything)
        assert str(screen.table.get_row("sig-a")[5]) == ARTIFACT_TYPE
        assert "could not be read" not in status(screen)
    assert proxy.gets(f"/v2/{REPO}/_regtui/tags") == 1
    assert proxy.asked == []
    read = [path for path in proxy.requests if "/manifests/" in path or "/blobs/" in path]
    assert read == []
