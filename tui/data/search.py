"""Search a registry: tags by pattern, and where a digest is used (tags, indexes, images).

Results come as an async iterator, each hit as soon as it is found. Repositories are scanned by
a few workers while the catalog is still being paged; every request goes through the client,
whose concurrency limit bounds the load on the registry. With a digest, a repository is only
read when it has that digest at all (one HEAD for the manifest, one for the blob): a registry
serves an image's layers, config and index children from the image's own repository.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from tui.client import (
    ImageIndex,
    ManifestResult,
    NotFoundError,
    RegistryClient,
    RegistryClientError,
)
from tui.logic.find import FindHit, HitKind, TagPattern, digest_uses

__all__ = ["SearchProgress", "search_registry"]

TAG_BATCH = 256
"""Tags whose manifests are requested together (the client bounds requests in flight)."""


@dataclass
class SearchProgress:
    repositories_done: int = 0
    repositories_seen: int = 0
    catalog_complete: bool = False
    manifests_read: int = 0
    hits: int = 0


ProgressCallback = Callable[[SearchProgress], None]
_DONE = object()


async def search_registry(
    client: RegistryClient,
    *,
    pattern: TagPattern | None = None,
    digest: str | None = None,
    repositories: list[str] | None = None,
    parallel_repos: int = 4,
    on_progress: ProgressCallback | None = None,
) -> AsyncIterator[FindHit]:
    """Every tag matching ``pattern`` (all tags without one) that points at or uses ``digest``.

    Without ``digest``, the hits are the matching tags (no manifest is read). ``repositories``
    limits the search; by default the whole catalog is searched, page by page.
    """
    progress = SearchProgress()
    names: asyncio.Queue[str | None] = asyncio.Queue(maxsize=1000)
    found: asyncio.Queue[object] = asyncio.Queue()
    workers = max(1, parallel_repos)

    def report() -> None:
        if on_progress is not None:
            on_progress(progress)

    async def feed() -> None:
        try:
            if repositories is not None:
                for name in repositories:
                    progress.repositories_seen += 1
                    await names.put(name)
            else:
                async for page in client.iter_catalog():
                    for name in page:
                        progress.repositories_seen += 1
                        await names.put(name)
            progress.catalog_complete = True
            report()
        finally:
            for _ in range(workers):
                await names.put(None)

    async def work() -> None:
        while (name := await names.get()) is not None:
            try:
                async for hit in _scan(client, name, pattern, digest, progress):
                    progress.hits += 1
                    await found.put(hit)
            except NotFoundError:
                pass  # deleted between the catalog and now
            progress.repositories_done += 1
            report()

    async def run() -> None:
        try:
            await asyncio.gather(feed(), *(work() for _ in range(workers)))
        except Exception as error:
            await found.put(error)  # raised to the reader, in order after the hits found
        finally:
            await found.put(_DONE)

    task = asyncio.create_task(run())
    try:
        while True:
            item = await found.get()
            if item is _DONE:
                break
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, FindHit)
            yield item
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def _has(client: RegistryClient, repo: str, digest: str) -> bool:
    """Does ``repo`` hold ``digest`` as a blob or as a manifest? (``True`` when unsure.)"""
    response = await client.request("HEAD", f"/v2/{repo}/blobs/{digest}")
    if response.status_code < 400:
        return True
    if response.status_code != 404:
        client.raise_for_status(response, f"blob {repo}@{digest}")
    try:
        await client.head_manifest(repo, digest)  # with Accept: Distribution hides OCI without
        return True
    except NotFoundError:
        return False
    except RegistryClientError as error:
        if error.status_code is not None and error.status_code >= 500:
            return True  # Distribution answers 500 for a layer digest asked as a manifest
        raise


async def _get(client: RegistryClient, repo: str, ref: str) -> ManifestResult | None:
    try:
        return await client.get_manifest(repo, ref)
    except NotFoundError:
        return None  # a tag deleted while we read, an index child never pushed here


async def _scan(
    client: RegistryClient,
    repo: str,
    pattern: TagPattern | None,
    digest: str | None,
    progress: SearchProgress,
) -> AsyncIterator[FindHit]:
    if digest is not None and not await _has(client, repo, digest):
        return
    children: dict[str, ManifestResult | None] = {}
    async for page in client.iter_tags(repo):
        tags = [tag for tag in page if pattern is None or pattern.matches(tag)]
        if digest is None:
            for tag in tags:
                yield FindHit(HitKind.TAG, repo, tag)
            continue
        for start in range(0, len(tags), TAG_BATCH):
            batch = tags[start : start + TAG_BATCH]
            results = await asyncio.gather(*(_get(client, repo, tag) for tag in batch))
            progress.manifests_read += len(batch)
            for tag, result in zip(batch, results, strict=True):
                if result is None:
                    continue
                async for hit in _uses(client, repo, tag, result, digest, children, progress):
                    yield hit


async def _uses(
    client: RegistryClient,
    repo: str,
    tag: str,
    result: ManifestResult,
    digest: str,
    children: dict[str, ManifestResult | None],
    progress: SearchProgress,
) -> AsyncIterator[FindHit]:
    """The hits of one tag: the tag itself, its index's children, their configs and layers."""
    if result.digest == digest:
        yield FindHit(HitKind.TAG, repo, tag, result.digest)
    manifest = result.manifest
    for kind in digest_uses(digest, manifest):
        if kind is not HitKind.INDEX_CHILD:
            yield FindHit(kind, repo, tag, result.digest)
    if not isinstance(manifest, ImageIndex):
        return
    wanted = [child.digest for child in manifest.manifests if child.digest not in children]
    if wanted:
        fetched = await asyncio.gather(*(_get(client, repo, d) for d in wanted))
        progress.manifests_read += len(wanted)
        children.update(zip(wanted, fetched, strict=True))
    for child in manifest.manifests:
        if child.digest == digest:
            yield FindHit(HitKind.INDEX_CHILD, repo, tag, child.digest, child.platform)
        child_result = children.get(child.digest)
        if child_result is None:
            continue
        for kind in digest_uses(digest, child_result.manifest):
            if kind is not HitKind.INDEX_CHILD:
                yield FindHit(kind, repo, tag, child.digest, child.platform)
