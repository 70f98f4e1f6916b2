"""Fetch what the tag table and the image screen show: tag details, an index's manifests."""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from tui.client import (
    Descriptor,
    ImageConfig,
    ImageIndex,
    ImageManifest,
    ManifestResult,
    ManifestRevision,
    NotFoundError,
    RegistryClient,
    RegistryClientError,
    RepositoryStorage,
    Schema1Manifest,
    repository_storage,
)
from tui.client.bulk import BulkItem, BulkReader, origin_of
from tui.client.cache import CacheReport, cache_report
from tui.client.models import DOCKER_CONFIG, IMAGE_MEDIA_TYPES, INDEX_MEDIA_TYPES, OCI_CONFIG
from tui.logic.fmt import parse_created
from tui.logic.image_view import ChildManifest
from tui.logic.tags import TagRow

INDEX_CHILDREN_READ = 8
"""An index's row shows the largest and newest of its first 8 platforms (one request each)."""
BULK_FROM = 1000
"""From this many tags on, manifests and configs are read pipelined (:mod:`tui.client.bulk`).
Fewer are read in about a second by the client's concurrent requests, where one slow answer
holds up no other (on a pipelined connection the answers behind it wait for it)."""
BULK_CONNECTIONS = 4
"""Connections of the pipelined reads (at most the client's concurrency)."""


@dataclass(frozen=True)
class ImageFacts:
    """What a tag's row shows of the manifest it points at: the same for every tag on it."""

    media_type: str
    size: int | None = None
    created: datetime | None = None
    platforms: tuple[str, ...] = ()


T = TypeVar("T")
ConfigFacts = tuple[datetime | None, str | None]
"""What a row shows of an image's config: when it was made, its platform."""


class DetailsLoader:
    """Reads the details of many tags of one repository, each digest once.

    A manifest is read once per tag (what the tag points at is what is being asked), but what
    follows from its digest is shared: the tags on one manifest read its config (or an index's
    platform manifests) once, and a config blob or a platform manifest that several images list
    is read once too (they are content-addressed, so never stale). A fixed pool of
    ``workers`` tasks takes tags from a queue, so 10,000 tags are 10,000 queue entries, not
    10,000 coroutines; :meth:`prioritize` puts tags (the rows on screen) at the front.
    """

    def __init__(
        self,
        client: RegistryClient,
        repo: str,
        rows: Iterable[TagRow],
        *,
        workers: int = 8,
        bulk_from: int = BULK_FROM,
    ) -> None:
        self.client = client
        self.repo = repo
        self.workers = max(1, workers)
        self.bulk_from = bulk_from
        """Tags from which the pipelined reader is used (where the client allows it)."""
        self.bulk: BulkReader | None = None
        """The pipelined reader of the last :meth:`run`, if one was used."""
        self._lock = threading.Lock()
        """Guards the queues: the pipelined reader's threads take tags from them too."""
        self._rows = {row.tag: row for row in rows}
        self._queue: deque[str] = deque(self._rows)
        self._urgent: deque[str] = deque()
        self._started: set[str] = set()
        self._facts: dict[str, asyncio.Future[ImageFacts]] = {}
        """By manifest digest."""
        self._configs: dict[str, asyncio.Future[tuple[datetime | None, str | None]]] = {}
        """By config digest: (created, platform)."""
        self._children: dict[str, asyncio.Future[tuple[int | None, datetime | None]]] = {}
        """By platform manifest digest: (size, created)."""

    @property
    def total(self) -> int:
        return len(self._rows)

    def prioritize(self, tags: Iterable[str]) -> None:
        """Read these tags (those not started yet) before the others, in this order."""
        wanted = [tag for tag in tags if tag in self._rows]
        with self._lock:
            for tag in reversed(wanted):
                if tag not in self._started:
                    self._urgent.appendleft(tag)

    def _next(self) -> str | None:
        with self._lock:
            for queue in (self._urgent, self._queue):
                while queue:
                    tag = queue.popleft()
                    if tag not in self._started:
                        self._started.add(tag)
                        return tag
        return None

    async def run(self, on_row: Callable[[TagRow], None]) -> None:
        """Read every tag; ``on_row`` gets each row with its details (or its error) as soon as
        it is read. Cancelling this cancels every request it started."""

        origin = await origin_of(self.client) if self.total >= self.bulk_from else None
        if origin is None:
            await self._run_workers(on_row, None)
            return
        loop = asyncio.get_running_loop()
        leftovers: asyncio.Queue[BulkItem | None] = asyncio.Queue()
        arrived: list[tuple[BulkItem, TagRow | None, ConfigFacts | None]] = []
        lock = threading.Lock()
        scheduled = False
        open_ = True

        def take() -> None:
            """On the loop: the rows read since the last call, the unfinished to the workers."""
            nonlocal scheduled
            with lock:
                batch = arrived.copy()
                arrived.clear()
                scheduled = False
                if not open_:
                    return  # this run is over (cancelled): nobody takes them
            for item, row, config in batch:
                if row is not None:
                    on_row(row)
                else:
                    leftovers.put_nowait(item)
                if config is not None and item.result is not None:
                    self._know_config(item.result, config)

        def deliver(item: BulkItem) -> None:
            """In a reader's thread: the row made there, handed to the loop in batches."""
            nonlocal scheduled
            config = _config_facts(item.config) if item.config is not None else None
            row = None
            if item.complete and item.result is not None:
                row = _row_with(
                    self._rows[item.tag], item.result.digest, _facts(item.result, config)
                )
            with lock:
                arrived.append((item, row, config))
                if scheduled or not open_:
                    return
                scheduled = True
            loop.call_soon_threadsafe(take)

        def finished(_: object) -> None:
            take()
            leftovers.put_nowait(None)

        reader = self.bulk = BulkReader(
            origin,
            self.repo,
            self._next,
            deliver,
            connections=min(BULK_CONNECTIONS, self.workers),
        )
        reading = loop.run_in_executor(None, reader.run)
        reading.add_done_callback(finished)
        try:
            await self._run_workers(on_row, leftovers)
            await reading  # a failure of the reader's own is raised here
        finally:
            with lock:
                open_ = False
            if not reader.done.is_set():  # cancelled (a reload): its connections closed aside
                threading.Thread(target=reader.cancel, daemon=True).start()

    def _know_config(self, result: ManifestResult, config: ConfigFacts) -> None:
        """A config the pipelined reader read: not read again for an index's platform."""
        manifest = result.manifest
        assert isinstance(manifest, ImageManifest)
        if manifest.config.digest not in self._configs:
            known = asyncio.get_running_loop().create_future()
            known.set_result(config)
            self._configs[manifest.config.digest] = known

    async def _run_workers(
        self,
        on_row: Callable[[TagRow], None],
        leftovers: asyncio.Queue[BulkItem | None] | None,
    ) -> None:
        """``workers`` tasks read tags with the client: first what the pipelined reader left
        (until it ends: ``None``), then every tag not yet started."""

        async def worker() -> None:
            if leftovers is not None:
                while (item := await leftovers.get()) is not None:
                    on_row(await self._finish(item))
                leftovers.put_nowait(None)  # for the other workers
            while (tag := self._next()) is not None:
                on_row(await self.details(self._rows[tag]))

        workers = [asyncio.create_task(worker()) for _ in range(self.workers)]
        try:
            await asyncio.gather(*workers)
        finally:
            for task in workers:
                task.cancel()
            for cache in (self._facts, self._configs, self._children):
                for future in cache.values():
                    future.cancel()

    async def details(self, row: TagRow) -> TagRow:
        """``row`` with its details filled in; a failure is recorded on the row, not raised."""
        try:
            result = await self.client.get_manifest(self.repo, row.tag)
        except RegistryClientError as error:
            return row.with_details(error=error.title)
        return await self._with_facts(row, result)

    async def _finish(self, item: BulkItem) -> TagRow:
        """A tag the pipelined reader did not finish, read on with the client."""
        row = self._rows[item.tag]
        if item.result is None:
            return await self.details(row)
        return await self._with_facts(row, item.result)

    async def _with_facts(self, row: TagRow, result: ManifestResult) -> TagRow:
        try:
            facts = await self._once(self._facts, result.digest, lambda: self._facts_of(result))
        except RegistryClientError as error:
            return row.with_details(error=error.title)
        return _row_with(row, result.digest, facts)

    async def _once(
        self,
        cache: dict[str, asyncio.Future[T]],
        key: str,
        make: Callable[[], Coroutine[Any, Any, T]],
    ) -> T:
        """``make()``'s result, computed once per ``key`` however many tags ask at once."""
        future = cache.get(key)
        if future is None:
            future = cache[key] = asyncio.ensure_future(make())
        # Shielded: a waiter cancelled (a reload) does not cancel the others' answer.
        return await asyncio.shield(future)

    async def _facts_of(self, result: ManifestResult) -> ImageFacts:
        manifest = result.manifest
        if isinstance(manifest, ImageIndex):
            return await self._index_facts(manifest)
        if isinstance(manifest, ImageManifest) and not manifest.is_artifact:
            return _facts(result, await self._config(manifest))
        return _facts(result)

    async def _config(self, manifest: ImageManifest) -> tuple[datetime | None, str | None]:
        async def read() -> tuple[datetime | None, str | None]:
            return _config_facts(await self.client.get_config(self.repo, manifest))

        return await self._once(self._configs, manifest.config.digest, read)

    async def _index_facts(self, index: ImageIndex) -> ImageFacts:
        """An index: its platforms, the largest child's size and the newest child's date."""
        children = [
            child
            for child in index.manifests
            if not (child.platform and child.platform.os == "unknown")  # attestations
        ]
        platforms = tuple(str(child.platform) for child in children if child.platform)

        async def child_info(digest: str) -> tuple[int | None, datetime | None]:
            result = await self.client.get_manifest(self.repo, digest)
            if not isinstance(result.manifest, ImageManifest):
                return None, None
            created, _ = await self._config(result.manifest)
            return result.manifest.total_size, created

        infos = await asyncio.gather(
            *(
                self._once(self._children, child.digest, partial(child_info, child.digest))
                for child in children[:INDEX_CHILDREN_READ]
            )
        )
        sizes = [size for size, _ in infos if size is not None]
        dates = [created for _, created in infos if created is not None]
        return ImageFacts(
            index.media_type,
            max(sizes) if sizes else None,
            max(dates) if dates else None,
            platforms,
        )


def _config_facts(config: ImageConfig) -> ConfigFacts:
    """(created, platform) of an image's config, as its row shows them."""
    platform = config.platform
    return parse_created(config.created), str(platform) if platform else None


def _facts(
    result: ManifestResult, config: tuple[datetime | None, str | None] | None = None
) -> ImageFacts:
    """The row facts of a manifest that is not an index (an image's with its ``config``'s
    facts, an artifact's, a schema1's)."""
    manifest = result.manifest
    if isinstance(manifest, ImageManifest):
        if manifest.is_artifact:
            platforms = (manifest.artifact_type or manifest.config.media_type,)
            return ImageFacts(result.media_type, manifest.total_size, None, platforms)
        created, platform = config or (None, None)
        return ImageFacts(
            result.media_type, manifest.total_size, created, (platform,) if platform else ()
        )
    if isinstance(manifest, Schema1Manifest):
        created = None
        if manifest.history:
            created = parse_created(str(manifest.history[0].get("created", "")))
        return ImageFacts(result.media_type, None, created, (f"linux/{manifest.architecture}",))
    raise AssertionError(f"unexpected manifest model {type(manifest).__name__}")


def _row_with(row: TagRow, digest: str, facts: ImageFacts) -> TagRow:
    return row.with_details(
        digest=digest,
        media_type=facts.media_type,
        size=facts.size,
        created=facts.created,
        platforms=facts.platforms,
    )


MAX_INDEX_CHILDREN = 256
"""An index lists at most this many manifests that the image screen reads (the rest: unread)."""


async def index_children(
    client: RegistryClient, repo: str, index: ImageIndex, *, limit: int = MAX_INDEX_CHILDREN
) -> list[ChildManifest]:
    """Every manifest ``index`` lists (the first ``limit``), read; a failure is kept per child.

    The client bounds how many requests run at once. A child the registry no longer has is
    ``missing``: the index is broken (someone deleted a platform manifest).
    """

    async def read(descriptor: Descriptor) -> ChildManifest:
        try:
            result = await client.get_manifest(repo, descriptor.digest)
        except NotFoundError as error:
            return ChildManifest(descriptor, error=str(error), missing=True)
        except RegistryClientError as error:
            return ChildManifest(descriptor, error=str(error))
        return ChildManifest(descriptor, result.manifest)

    return list(await asyncio.gather(*(read(child) for child in index.manifests[:limit])))


@dataclass(frozen=True)
class TagDetails:
    """A tag's row details as the bundled registry's ``_regtui/tags`` document tells them: what
    :class:`DetailsLoader` reads with a request or two per tag elsewhere."""

    digest: str
    facts: ImageFacts


def _image_facts(
    revision: ManifestRevision, by_digest: dict[str, ManifestRevision]
) -> ImageFacts | None:
    """The row facts of one manifest revision, exactly as :class:`DetailsLoader` makes them
    from the manifest and its config; None where the document does not hold all of it (an
    older registry, a schema1 manifest, a missing config or platform manifest): such a tag is
    read as on any registry."""
    media_type = revision.media_type
    if media_type in IMAGE_MEDIA_TYPES:
        config = revision.config
        if revision.size is None or config is None or revision.config_media_type is None:
            return None
        if revision.artifact_type is not None or revision.config_media_type not in (
            DOCKER_CONFIG,
            OCI_CONFIG,
        ):
            kind = revision.artifact_type or revision.config_media_type
            return ImageFacts(media_type, revision.size, None, (kind,))
        if revision.blobs.get(config) is None:
            return None  # the config is not there: reading it fails, as the loader reports
        platforms = (revision.platform,) if revision.platform else ()
        return ImageFacts(media_type, revision.size, parse_created(revision.created), platforms)
    if media_type in INDEX_MEDIA_TYPES:
        children = [
            (digest, platform)
            for digest, platform in revision.platforms
            if not (platform and platform.split("/", 1)[0] == "unknown")  # attestations
        ]
        sizes: list[int] = []
        dates: list[datetime] = []
        for digest, _ in children[:INDEX_CHILDREN_READ]:
            child = by_digest.get(digest)
            if child is None or child.media_type is None:
                return None
            if child.media_type not in IMAGE_MEDIA_TYPES:
                continue  # the loader reads no size or date of a nested index
            if child.size is None or child.config is None or child.blobs.get(child.config) is None:
                return None
            sizes.append(child.size)
            if (created := parse_created(child.created)) is not None:
                dates.append(created)
        return ImageFacts(
            media_type,
            max(sizes) if sizes else None,
            max(dates) if dates else None,
            tuple(platform for _, platform in children if platform),
        )
    return None


def details_from_report(report: RepositoryStorage) -> dict[str, TagDetails]:
    """Every tag's row details the report holds (tags it cannot describe are left out)."""
    by_digest = {revision.digest: revision for revision in report.manifests}
    facts: dict[str, ImageFacts | None] = {}
    details: dict[str, TagDetails] = {}
    for tag in report.tags:
        if tag.digest not in facts:
            revision = by_digest.get(tag.digest)
            facts[tag.digest] = _image_facts(revision, by_digest) if revision else None
        found = facts[tag.digest]
        if found is not None:
            details[tag.tag] = TagDetails(tag.digest, found)
    return details


@dataclass(frozen=True)
class TagFacts:
    """What the bundled registry says of each tag beyond the API: when it was pushed, when its
    image was last pulled, the ``regtui.immutable`` rule that holds it (tags no rule holds
    are absent), and the details of its row (:func:`details_from_report`)."""

    pushed: dict[str, datetime] = field(default_factory=dict)
    pulled: dict[str, datetime] = field(default_factory=dict)
    immutable: dict[str, str] = field(default_factory=dict)
    details: dict[str, TagDetails] = field(default_factory=dict)


async def tag_facts(client: RegistryClient, repository: str) -> TagFacts:
    """The :class:`TagFacts` of ``repository``'s tags; empty from any other registry, or one
    that refuses."""
    try:
        report = await repository_storage(client, repository)
    except RegistryClientError:
        return TagFacts()
    if report is None:
        return TagFacts()
    # 10,000 tags' facts take a tenth of a second and more: made in a worker thread.
    return await asyncio.to_thread(_facts_of_report, report)


def _facts_of_report(report: RepositoryStorage) -> TagFacts:
    return TagFacts(
        {t.tag: t.pushed for t in report.tags if t.pushed is not None},
        {t.tag: t.pulled for t in report.tags if t.pulled is not None},
        {t.tag: t.immutable for t in report.tags if t.immutable is not None},
        details_from_report(report),
    )


async def cached_tags(client: RegistryClient, repository: str) -> CacheReport | None:
    """What of ``repository`` a pull-through cache holds and until when (the bundled registry
    as a mirror); ``None`` for a repository no cache covers, another registry, or a refusal."""
    try:
        return await cache_report(client, repository)
    except RegistryClientError:
        return None
