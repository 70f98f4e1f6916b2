"""The tag details of a big repository read pipelined (tui/client/bulk.py), on a real Distribution.

The storage is written in Distribution's layout (as bench/bench_tui.py writes it): many tags,
each its own manifest, a few tags on each config, plus an index and an artifact, which the
pipelined reader leaves (in part) to the client. Distribution serves it; a counting proxy
(tests/helpers/hookproxy.py) sits between, or nginx with TLS and Basic auth.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import bcrypt

from embedded_registry.storage.paths import Layout
from tests.helpers.hookproxy import hook_proxy
from tests.helpers.servers import distribution_registry, nginx_proxy
from tests.helpers.tls import self_signed
from tests.helpers.tokens import distribution_token_service
from tests.tui.conftest import AppFactory, wait_for
from tui.client import RegistryClient
from tui.data.details import BULK_CONNECTIONS, BULK_FROM, DetailsLoader
from tui.logic.tags import TagRow
from tui.screens.repository import RepositoryScreen

REPO = "big/tags"
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
ARTIFACT_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _blob(layout: Layout, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    _write(layout.blob_data(digest), data)
    return digest


def _descriptor(media_type: str, digest: str, size: int) -> dict[str, object]:
    return {"mediaType": media_type, "digest": digest, "size": size}


class Storage:
    """``tags`` image tags, ``per_config`` of them on each config, and the tags ``index`` (two
    of the images' manifests) and ``sig`` (an artifact); what each tag's row should say."""

    def __init__(self, root: Path, tags: int, per_config: int) -> None:
        layout = Layout(root)
        layer = b"\x1f\x8b" + b"\0" * 64
        layer_digest = _blob(layout, layer)
        self.layout = layout
        self.configs: set[str] = set()
        self.manifests: list[str] = []
        self.expected: dict[str, tuple[int, datetime | None, tuple[str, ...]]] = {}
        self._link(layer_digest)
        for n in range(tags):
            group = n // per_config
            created = EPOCH + timedelta(minutes=group)
            config = json.dumps(
                {
                    "architecture": "amd64" if group % 2 else "arm64",
                    "os": "linux",
                    "created": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "rootfs": {"type": "layers", "diff_ids": []},
                    "n": group,
                }
            ).encode()
            config_digest = _blob(layout, config)
            self.configs.add(config_digest)
            self._link(config_digest)
            layer_size = 1000 + (n * 7919) % 100_000
            manifest = {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": _descriptor(OCI_CONFIG, config_digest, len(config)),
                "layers": [
                    _descriptor(
                        "application/vnd.oci.image.layer.v1.tar+gzip", layer_digest, layer_size
                    )
                ],
            }
            digest = self._tag(f"build-{n:04d}", manifest)
            self.manifests.append(digest)
            platform = "linux/amd64" if group % 2 else "linux/arm64"
            self.expected[f"build-{n:04d}"] = (len(config) + layer_size, created, (platform,))
        signature = json.dumps({"critical": {}}).encode()
        signature_digest = _blob(layout, signature)
        self._link(signature_digest)
        self._tag(
            "sig",
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "artifactType": ARTIFACT_TYPE,
                "config": _descriptor("application/vnd.oci.empty.v1+json", signature_digest, 2),
                "layers": [],
            },
        )
        self.expected["sig"] = (2, None, (ARTIFACT_TYPE,))

    def _link(self, digest: str) -> None:
        _write(self.layout.layer_link(REPO, digest), digest.encode())

    def _tag(self, tag: str, manifest: dict[str, object]) -> str:
        raw = json.dumps(manifest).encode()
        digest = _blob(self.layout, raw)
        _write(self.layout.revision_link(REPO, digest), digest.encode())
        _write(self.layout.tag_current_link(REPO, tag), digest.encode())
        _write(self.layout.tag_index_link(REPO, tag, digest), digest.encode())
        return digest

    def add_index(self, tag: str, children: list[str]) -> None:
        sizes = [len(self.layout.blob_data(digest).read_bytes()) for digest in children]
        platforms = ["linux/amd64", "linux/arm64"]
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    **_descriptor(OCI_MANIFEST, digest, size),
                    "platform": dict(zip(("os", "architecture"), p.split("/"), strict=True)),
                }
                for digest, size, p in zip(children, sizes, platforms, strict=False)
            ],
        }
        self._tag(tag, index)


def _rows(tags: list[str]) -> list[TagRow]:
    return [TagRow(tag) for tag in tags]


async def _load(
    client: RegistryClient, *, bulk_from: int
) -> tuple[DetailsLoader, dict[str, TagRow]]:
    tags = await client.list_tags(REPO)
    loader = DetailsLoader(client, REPO, _rows(tags), bulk_from=bulk_from)
    rows: dict[str, TagRow] = {}
    await loader.run(lambda row: rows.__setitem__(row.tag, row))
    assert sorted(rows) == sorted(tags)
    return loader, rows


def _facts(row: TagRow) -> tuple[object, ...]:
    return (row.digest, row.media_type, row.size, row.created, row.platforms, row.error)


def test_pipelined_details_are_the_clients_on_a_few_connections_each_config_once(
    tmp_path: Path,
) -> None:
    storage = Storage(tmp_path / "root", tags=240, per_config=4)
    storage.add_index("multi", storage.manifests[:2])
    asked: Counter[str] = Counter()
    connections: dict[str, set[int]] = {}
    lock = threading.Lock()
    phase = ["pipelined"]

    def hook(method: str, path: str) -> None:
        with lock:
            asked[f"{method} {path}"] += 1
            if "/manifests/build-" in path:  # one handler thread per connection
                connections.setdefault(phase[0], set()).add(threading.get_ident())

    async def both(host: str) -> tuple[DetailsLoader, dict[str, TagRow], dict[str, TagRow]]:
        async with RegistryClient(host, fast_after=0) as client:
            loader, pipelined = await _load(client, bulk_from=0)
            tag_requests = dict(asked)
            asked.clear()
            phase[0] = "client"
            _, plain = await _load(client, bulk_from=10**9)
            asked.clear()
            asked.update(tag_requests)
            return loader, pipelined, plain

    with (
        distribution_registry(tmp_path / "root") as registry,
        hook_proxy(registry.url, hook) as host,
    ):
        loader, pipelined, plain = asyncio.run(both(host))

    # The rows are what the client alone makes of each tag, an index and an artifact included.
    assert {tag: _facts(row) for tag, row in pipelined.items()} == {
        tag: _facts(row) for tag, row in plain.items()
    }
    for tag, (size, created, platforms) in storage.expected.items():
        row = pipelined[tag]
        assert (row.size, row.created, row.platforms) == (size, created, platforms), tag
        assert row.error is None and row.loaded
    assert pipelined["multi"].platforms == ("linux/amd64", "linux/arm64")
    # Read pipelined: every tag's manifest once, each config once however many tags share it,
    # on at most BULK_CONNECTIONS connections (the client alone spreads them over 8).
    assert 1 <= len(connections["pipelined"]) <= BULK_CONNECTIONS < len(connections["client"])
    assert loader.bulk is not None and loader.bulk.stopped is None
    for tag in storage.expected:
        assert asked[f"GET /v2/{REPO}/manifests/{tag}"] == 1, tag
    for digest in storage.configs:
        assert asked[f"GET /v2/{REPO}/blobs/{digest}"] == 1, digest
    assert loader.bulk.requests == len(storage.expected) + 1 + len(storage.configs)


def test_pipelined_details_through_tls_and_basic_auth(tmp_path: Path) -> None:
    """nginx with TLS (a CA of the test's own, as ``--ca-cert``) and Basic auth in front of
    Distribution: the pipelined reads carry the credentials and trust the given CA; none is
    refused (no tag is left to the client)."""
    storage = Storage(tmp_path / "root", tags=60, per_config=3)
    certificate, key = self_signed(tmp_path / "tls")
    htpasswd = tmp_path / "nginx.htpasswd"
    hashed = bcrypt.hashpw(b"s3cret-pass", bcrypt.gensalt(rounds=5)).decode()
    htpasswd.write_text(f"dev:{hashed}\n")

    async def load(url: str) -> tuple[DetailsLoader, dict[str, TagRow]]:
        async with RegistryClient(
            url, username="dev", password="s3cret-pass", ca_cert=str(certificate), fast_after=0
        ) as client:
            return await _load(client, bulk_from=0)

    with (
        distribution_registry(tmp_path / "root") as registry,
        nginx_proxy(
            tmp_path / "nginx",
            registry,
            tls=(certificate, key),
            htpasswd=htpasswd,
            verify=str(certificate),
        ) as nginx,
    ):
        loader, rows = asyncio.run(load(nginx.url))
    assert loader.bulk is not None and loader.bulk.stopped is None
    assert loader.bulk.requests == len(storage.expected) + len(storage.configs)
    for tag, (size, created, platforms) in storage.expected.items():
        row = rows[tag]
        assert row.error is None, (tag, row.error)
        assert (row.size, row.created, row.platforms) == (size, created, platforms), tag


async def test_the_tags_screen_of_a_big_repository_on_distribution(
    tmp_path: Path, app_for: AppFactory
) -> None:
    """As many tags as make the screen read pipelined: every row's details, right."""
    storage = Storage(tmp_path / "root", tags=BULK_FROM + 20, per_config=5)
    with distribution_registry(tmp_path / "root") as registry:
        app = app_for(registry, timeout=60.0)
        async with app.run_test(size=(120, 40)) as pilot:
            await app.push_screen(RepositoryScreen(REPO))
            screen = app.screen
            assert isinstance(screen, RepositoryScreen)
            await wait_for(pilot, lambda: screen.details_done, seconds=240.0)
            for tag, (size, created, platforms) in storage.expected.items():
                row = screen.rows[tag]
                assert row.error is None, (tag, row.error)
                assert (row.size, row.created, row.platforms) == (size, created, platforms), tag


def test_a_cancelled_pipelined_read_closes_its_connections_and_asks_no_more(
    tmp_path: Path,
) -> None:
    """A reload cancels the read while the registry holds answers: the reader's threads end
    (its connections closed) and it asks nothing more than what it had sent."""
    Storage(tmp_path / "root", tags=400, per_config=4)
    gate = threading.Event()
    manifests: list[str] = []

    def hook(method: str, path: str) -> None:
        if "/manifests/build-" in path:
            manifests.append(path)
            if len(manifests) >= 20:
                gate.wait(30)  # the registry answers nothing more until the test says so

    async def cancel_midway(host: str) -> DetailsLoader:
        async with RegistryClient(host, fast_after=0) as client:
            tags = await client.list_tags(REPO)
            loader = DetailsLoader(client, REPO, _rows(tags), bulk_from=0)
            rows: list[TagRow] = []
            task = asyncio.create_task(loader.run(rows.append))
            while len(manifests) < 20:  # noqa: ASYNC110 (the proxy's thread counts)
                await asyncio.sleep(0.01)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            assert loader.bulk is not None
            assert await asyncio.to_thread(loader.bulk.done.wait, 30)
            return loader

    with (
        distribution_registry(tmp_path / "root") as registry,
        hook_proxy(registry.url, hook) as host,
    ):
        loader = asyncio.run(cancel_midway(host))
        assert loader.bulk is not None
        sent = loader.bulk.requests
        gate.set()
    assert sent < 400
    assert len(manifests) <= sent


def test_pipelined_details_carry_the_bearer_token_of_the_pull_scope(tmp_path: Path) -> None:
    """Distribution with token auth (tests/helpers/tokens.py): the token the client fetched for
    the repository's pull scope goes with every pipelined request, none is refused, and no
    other token is asked for."""
    storage = Storage(tmp_path / "root", tags=60, per_config=3)
    grants = {"bob": {"repository:*": ["pull"]}}

    async def load(host: str) -> tuple[DetailsLoader, dict[str, TagRow], int, int]:
        async with RegistryClient(host, username="bob", password="builder-pass") as client:
            tags = await client.list_tags(REPO)  # the token of repository:big/tags:pull
            before = client.auth.token_requests
            loader = DetailsLoader(client, REPO, _rows(tags), bulk_from=0)
            rows: dict[str, TagRow] = {}
            await loader.run(lambda row: rows.__setitem__(row.tag, row))
            return loader, rows, before, client.auth.token_requests

    with (
        distribution_token_service(tmp_path, grants) as (_, auth),
        distribution_registry(tmp_path / "root", config={"auth": {"token": auth}}) as running,
    ):
        loader, rows, before, after = asyncio.run(load(running.host))
    assert loader.bulk is not None and loader.bulk.stopped is None
    assert loader.bulk.requests == len(storage.expected) + len(storage.configs)
    assert after == before  # the pull scope's token, reused
    for tag, (size, created, platforms) in storage.expected.items():
        row = rows[tag]
        assert row.error is None, (tag, row.error)
        assert (row.size, row.created, row.platforms) == (size, created, platforms), tag
