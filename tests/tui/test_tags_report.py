"""A repository of 2,000 tags on the bundled registry: every row's details come from ONE
request (its ``_regtui/tags`` report), none from a read per tag.

The storage is written in Distribution's layout (tests/helpers/layout.py: each tag its own
image, with its own date and platform) and served by the real bundled registry; the requests
are counted in its access log.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest

from tests.helpers.layout import LayoutWriter
from tests.helpers.servers import RunningRegistry, bundled_registry
from tests.tui.conftest import AppFactory, open_repository, wait_for
from tui.client import RegistryClient
from tui.client.models import OCI_CONFIG, OCI_MANIFEST
from tui.data.details import TagFacts, tag_facts
from tui.logic.fmt import short_digest
from tui.screens import repository
from tui.screens.repository import RepositoryScreen
from tui.widgets.tag_table import ADD_CHUNK, TagTable

REPO = "big/tags"
TAGS = 2000
START = datetime(2024, 1, 1, tzinfo=UTC)
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
T = TypeVar("T")


@dataclass(frozen=True)
class Expected:
    digest: str
    size: int
    created: datetime
    platform: str


@pytest.fixture(scope="module")
def big_repository(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RunningRegistry, dict[str, Expected]]]:
    root = tmp_path_factory.mktemp("report") / "registry"
    writer = LayoutWriter(root)
    writer.ensure()
    layer = writer.add_blob(REPO, b"\x1f\x8b" + bytes(64))
    layer["mediaType"] = OCI_LAYER
    expected: dict[str, Expected] = {}
    for n in range(TAGS):
        created = START + timedelta(minutes=(n * 7919) % TAGS)  # not in name order
        architecture = ("amd64", "arm64", "s390x")[n % 3]
        config = writer.add_blob(
            REPO,
            json.dumps(
                {
                    "architecture": architecture,
                    "os": "linux",
                    "created": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "rootfs": {"type": "layers", "diff_ids": []},
                    "padding": "x" * (n % 97),  # sizes differ
                }
            ).encode(),
        )
        config["mediaType"] = OCI_CONFIG
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config,
            "layers": [layer],
        }
        tag = f"build-{n:04d}"
        digest = writer.put(REPO, json.dumps(manifest).encode(), tag=tag)
        size = int(str(config["size"])) + int(str(layer["size"]))
        expected[tag] = Expected(digest, size, created, f"linux/{architecture}")
    with bundled_registry(root) as registry:
        yield registry, expected


REQUEST = re.compile(r'"(GET|HEAD) (/v2/[^ ?]*)')


def requests_of(registry: RunningRegistry, repo: str) -> Counter[str]:
    """The requests on ``repo``'s paths in the registry's access log, by kind."""
    counted: Counter[str] = Counter()
    for match in REQUEST.finditer(registry.log()):
        method, path = match.groups()
        if not path.startswith(f"/v2/{repo}/"):
            continue
        rest = path.removeprefix(f"/v2/{repo}/")
        kind = rest.split("/", 1)[0] if "/" in rest else rest
        counted[f"{method} {kind}" if kind in ("manifests", "blobs") else f"{method} {rest}"] += 1
    return counted


async def test_two_thousand_tags_are_shown_with_their_details_from_one_request(
    big_repository: tuple[RunningRegistry, dict[str, Expected]], app_for: AppFactory
) -> None:
    registry, expected = big_repository
    app = app_for(registry, timeout=60.0)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_repository(app, REPO)
        await wait_for(
            pilot,
            lambda: (
                screen.details_done and screen.table.row_count == TAGS and not screen.table.adding
            ),
        )
        for tag, facts in expected.items():
            row = screen.rows[tag]
            assert row.loaded and not row.error, row
            assert row.digest == facts.digest, tag
            assert row.size == facts.size, tag
            assert row.created == facts.created, tag
            assert row.platforms == (facts.platform,), tag
            assert row.pushed is not None, tag
        # In the table too: the digest and platform cells of the first and last rows.
        for tag in ("build-0000", f"build-{TAGS - 1:04d}"):
            cells = [str(cell) for cell in screen.table.get_row(tag)]
            assert cells[2] == short_digest(expected[tag].digest)
            assert cells[5] == expected[tag].platform
    counted = requests_of(registry, REPO)
    # The tags listed (in pages), the report once, whether a cache holds them; no manifest
    # or config read, by tag or by digest.
    assert counted["GET _regtui/tags"] == 1, counted
    assert set(counted) == {"GET tags/list", "GET _regtui/tags", "GET _regtui/cache"}, counted


async def test_the_report_is_asked_once_the_tags_are_listed(
    big_repository: tuple[RunningRegistry, dict[str, Expected]],
    app_for: AppFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The registry builds the report from every manifest and config of the repository
    (seconds for 10,000 tags): asked together with the tag list, it held the listing up behind
    it (1.9 s where the listing alone takes 0.2 s). So the rows come first, then the report."""
    registry, _ = big_repository
    listed_when_asked: list[int] = []
    app = app_for(registry, timeout=60.0)

    async def report(client: RegistryClient, repository: str) -> TagFacts:
        screen = app.screen
        assert isinstance(screen, RepositoryScreen)
        listed_when_asked.append(len(screen.rows))
        return await tag_facts(client, repository)

    monkeypatch.setattr(repository, "tag_facts", report)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.push_screen(RepositoryScreen(REPO))
        screen = app.screen
        assert isinstance(screen, RepositoryScreen)
        await wait_for(pilot, lambda: screen.details_done and not screen.table.adding)
        assert len(screen.rows) == TAGS and all(row.loaded for row in screen.rows.values())
    assert listed_when_asked == [TAGS]


async def test_no_step_of_the_event_loop_makes_more_than_a_chunk_of_rows(
    big_repository: tuple[RunningRegistry, dict[str, Expected]],
    app_for: AppFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Listing 2,000 tags and filling every row from the report, no step of the event loop
    (one callback or task step: nothing else runs meanwhile, no key, no frame) builds or
    writes more rows than a chunk (``ADD_CHUNK``): a bound in work, where 1,000 rows at once
    (the table's old chunk) or every row (the screen's) held the loop 50-250 ms on a loaded
    machine. Rows are counted where they are made (``_row``) and made into cells
    (``TagTable.cells``)."""
    registry, expected = big_repository
    made: list[int] = [0]
    most: list[int] = [0]
    steps: list[int] = [0]
    run = asyncio.events.Handle._run

    def step(handle: asyncio.events.Handle) -> None:
        made[0] = 0
        try:
            run(handle)
        finally:
            steps[0] += 1
            most[0] = max(most[0], made[0])

    def counted(function: Callable[..., T]) -> Callable[..., T]:
        def call(*args: Any, **kwargs: Any) -> T:
            made[0] += 1
            return function(*args, **kwargs)

        return call

    monkeypatch.setattr(asyncio.events.Handle, "_run", step)
    monkeypatch.setattr(repository, "_row", counted(repository._row))
    monkeypatch.setattr(TagTable, "cells", counted(TagTable.cells))
    app = app_for(registry, timeout=60.0)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_repository(app, REPO)
        await wait_for(
            pilot,
            lambda: (
                screen.details_done and screen.table.row_count == TAGS and not screen.table.adding
            ),
        )
        assert all(screen.rows[tag].loaded for tag in expected)
    assert steps[0] > TAGS // ADD_CHUNK  # the steps were counted
    assert 0 < most[0] <= ADD_CHUNK, most[0]
