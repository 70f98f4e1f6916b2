"""What the storage lists: each repository's tags and revisions, the referrers of a manifest
and the catalog. With :class:`~embedded_registry.storage.local_listings.LocalListings` (the
factory's choice for a driver with directory times) they are kept in memory and checked against
directory stamps;
elsewhere (an object store) each call lists, sharing requests between concurrent callers and
trusting what the commit marker says has not changed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from embedded_registry import names
from embedded_registry.mediatypes import ManifestInfo
from embedded_registry.storage.catalog import page, path_order_key
from embedded_registry.storage.driver.base import PathNotFoundError, StorageDriver
from embedded_registry.storage.driver.capabilities import list_files, version_of
from embedded_registry.storage.links import CONCURRENCY, Links
from embedded_registry.storage.local_listings import LocalListings
from embedded_registry.storage.manifest_cache import ManifestCache
from embedded_registry.storage.paths import KEYS

TAG_CHECKS = 16
"""Names new to a repository's tag listing checked one by one; more: one recursive listing."""
TAG_CACHE_SIZE = 4096
"""Repositories whose known tags are kept (the least recently listed go first)."""
TAG_RECHECK_SECONDS = 10.0
"""Known tags are trusted this long at most: then one recursive listing checks them all again.
Only regtui rewrites the commit marker; a tag Distribution (or a hand) deletes on an engine that
keeps empty "directories" (SeaweedFS) stays listed at most this long."""

Tags = list[str] | None


@dataclass
class _TagListings:
    """The tags listing of one repository under way, and the one queued behind it."""

    running: asyncio.Future[Tags] | None = None
    queued: asyncio.Future[Tags] | None = None


class Listings:
    """Tags, revisions, referrers and the catalog of one storage."""

    def __init__(
        self,
        driver: StorageDriver,
        links: Links,
        manifests: ManifestCache,
        local: LocalListings | None = None,
    ) -> None:
        self.driver = driver
        self.links = links
        self.manifests = manifests
        self.local = local
        self._tag_cache: OrderedDict[tuple[str, str], tuple[str | None, frozenset[str], float]] = (
            OrderedDict()
        )
        """Per ("tags" or "revisions", repository): the commit marker's version, the names
        known to have their link, and when they were last all listed (``time.monotonic``)."""
        self._tag_listings: dict[str, _TagListings] = {}

    async def tags(self, name: str) -> Tags:
        """Tags with a ``current/link``, sorted; ``None`` when the repository holds neither
        manifests nor layer links.

        Concurrent calls for one repository share the storage requests: a call joins the one
        that starts after it arrived (never one already under way, whose answer may predate
        it), so at most one runs and one waits per repository.

        With local listings, the listing is kept in memory and checked with one ``stat`` of
        the ``tags`` directory (:mod:`embedded_registry.storage.tagindex`); ``None`` there
        means no ``tags`` directory, as Distribution answers.
        """
        if self.local is not None:
            return await self.local.tags.tags(self.local.tags_dir(name))
        listing = self._tag_listings.get(name)
        if listing is None:
            listing = self._tag_listings[name] = _TagListings()
        if listing.running is None:
            listing.running = self._start(name, listing, self._tags_now(name))
            return await asyncio.shield(listing.running)
        if listing.queued is None:
            running = listing.running

            async def after() -> Tags:
                with contextlib.suppress(Exception):
                    await running
                return await self._tags_now(name)

            listing.queued = self._start(name, listing, after())
        return await asyncio.shield(listing.queued)

    def _start(
        self, name: str, listing: _TagListings, work: Coroutine[Any, Any, Tags]
    ) -> asyncio.Future[Tags]:
        """Run ``work`` as ``listing``'s next listing; the queued one runs when it ends."""
        future = asyncio.ensure_future(work)

        def done(finished: asyncio.Future[Tags]) -> None:
            if not finished.cancelled():
                finished.exception()  # retrieved: every waiter may have gone meanwhile
            if listing.running is finished:
                listing.running, listing.queued = listing.queued, None
                if listing.running is None and self._tag_listings.get(name) is listing:
                    del self._tag_listings[name]

        future.add_done_callback(done)
        return future

    async def _tags_now(self, name: str) -> Tags:
        """One delimited listing of ``tags/`` and the version of the commit marker, at once.

        A tag is listed when its ``current/link`` exists. Checking every tag costs a request
        each, and a recursive listing costs the engine a walk of every tag's directories
        (SeaweedFS's filer lists each one), so what is known is kept: while the commit marker
        (rewritten after every tag or manifest delete) is unchanged, no tag known to have a
        link lost it, and only the names new to the listing are checked. A name whose link is
        gone (a deleted tag whose empty directory an engine such as SeaweedFS keeps) is checked
        again on every call, never assumed absent: a push may bring it back.
        """
        base = KEYS.tags_dir(name)
        listed, version = await asyncio.gather(
            self._children(base), version_of(self.driver, KEYS.commit_marker(name))
        )
        leaves = (path.rsplit("/", 1)[-1] for path in listed)
        candidates = {leaf for leaf in leaves if names.is_valid_tag(leaf)}

        async def has_link(tag: str) -> bool:
            return await self.links.tag_digest(name, tag) is not None

        async def full() -> set[str]:
            return set(await self._listed_tags(name))

        present = await self._with_links(("tags", name), version, candidates, has_link, full)
        if not present and not (
            await self._has_files(KEYS.manifests_dir(name))
            or await self._has_files(KEYS.layers_dir(name))
        ):
            return None
        return sorted(present)

    async def _with_links(
        self,
        cache_key: tuple[str, str],
        version: str | None,
        candidates: set[str],
        check: Callable[[str], Awaitable[bool]],
        full: Callable[[], Awaitable[set[str]]],
    ) -> set[str]:
        """The ``candidates`` (names a delimited listing shows) that really have their link:
        the ones known to while the commit marker stays at ``version``, the others checked
        (more than ``TAG_CHECKS`` of them: ``full()``, a recursive listing)."""
        known = self._tag_cache.get(cache_key)
        present: set[str] | None = None
        now = time.monotonic()
        if known is not None and known[0] == version and now - known[2] < TAG_RECHECK_SECONDS:
            unknown = sorted(candidates - known[1])
            if len(unknown) <= TAG_CHECKS:
                found = await asyncio.gather(*(check(n) for n in unknown))
                present = set(known[1] & candidates) | {
                    n for n, ok in zip(unknown, found, strict=True) if ok
                }
        checked_at = known[2] if present is not None and known is not None else now
        if present is None:
            present = await full()
        self._tag_cache[cache_key] = (version, frozenset(present), checked_at)
        self._tag_cache.move_to_end(cache_key)
        while len(self._tag_cache) > TAG_CACHE_SIZE:
            self._tag_cache.popitem(last=False)
        return present

    async def _children(self, path: str) -> list[str]:
        try:
            return await self.driver.list(path)
        except PathNotFoundError:
            return []

    async def _listed_tags(self, name: str) -> list[str]:
        """The tags with a ``current/link`` from one recursive listing of ``tags/``."""
        base = KEYS.tags_dir(name)
        found = []
        async for info in list_files(self.driver, base):
            tag, _, rest = info.path[len(base) + 1 :].partition("/")
            if rest == "current/link" and names.is_valid_tag(tag):
                found.append(tag)
        return found

    async def _has_files(self, path: str) -> bool:
        async for _info in list_files(self.driver, path):
            return True
        return False

    async def revisions(self, name: str) -> list[str]:
        """The digests with a revision link, sorted, from one recursive listing. (Not the
        tags' shortcut: GC deletes revision links without rewriting the commit marker.)"""
        base = KEYS.revisions_dir(name)
        found = []
        async for info in list_files(self.driver, base):
            parts = info.path[len(base) + 1 :].split("/")
            if len(parts) == 3 and parts[2] == "link":
                digest = f"{parts[0]}:{parts[1]}"
                if names.is_valid_digest(digest):
                    found.append(digest)
        return sorted(found)

    async def referrers(self, name: str, subject: str) -> list[dict[str, object]]:
        """Descriptors of the manifests of ``name`` whose ``subject`` is ``subject``."""
        if self.local is not None:
            return await self.local.referrers.referrers(name, subject)
        limit = asyncio.Semaphore(CONCURRENCY)

        async def describe(digest: str) -> ManifestInfo | None:
            async with limit:
                return await self.manifests.info(digest)

        digests = await self.revisions(name)
        infos = await asyncio.gather(*(describe(d) for d in digests))
        return [
            info.referrer_descriptor(digest)
            for digest, info in zip(digests, infos, strict=True)
            if info is not None and info.subject == subject
        ]

    async def warm_up(self) -> None:
        """The first walk of the catalog (with local listings)."""
        if self.local is not None:
            await self.local.catalog.refresh()

    async def catalog_page(self, last: str | None, count: int) -> tuple[list[str], bool]:
        """The ``count`` repositories after ``last``, and whether more follow."""
        if self.local is not None:
            return await self.local.catalog.page(last, count)
        return page(await self.repositories(), last, count)

    async def repositories(self) -> list[str]:
        """Every name with a ``_layers`` or ``_manifests`` below it, in Distribution's order."""
        if self.local is not None:
            await self.local.catalog.refresh()
            return self.local.catalog.index.current()
        base = KEYS.repositories_dir
        found: set[str] = set()
        async for info in list_files(self.driver, base):
            parts = info.path[len(base) + 1 :].split("/")
            for index, part in enumerate(parts[:-1]):
                if part in ("_layers", "_manifests") and index > 0:
                    found.add("/".join(parts[:index]))
                    break
                if part.startswith("_"):
                    break
        valid = [name for name in found if names.is_valid_name(name)]
        return sorted(valid, key=path_order_key)
