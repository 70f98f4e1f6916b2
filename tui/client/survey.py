"""Read every tag and manifest of a registry (or of some repositories) for the usage estimate."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from tui.client.errors import NotFoundError
from tui.client.estimate import RepoContent, UsageEstimate, estimate_usage
from tui.client.models import ImageIndex, ManifestResult
from tui.client.registry import RegistryClient

__all__ = ["estimate_registry", "survey_repository"]

Progress = Callable[[str, int, int], None]
"""Called as ``progress(repo, done, total)`` after each repository."""


async def survey_repository(client: RegistryClient, repo: str) -> RepoContent:
    """Tags of ``repo`` and every manifest they reach (index children included).

    A tag's manifest is fetched once per distinct digest; a tag deleted while we read is skipped.
    """
    tags = await client.list_tags(repo)
    manifests: dict[str, ManifestResult] = {}
    tag_digests: dict[str, str] = {}

    async def fetch(tag: str) -> None:
        try:
            result = await client.get_manifest(repo, tag)
        except NotFoundError:
            return
        tag_digests[tag] = result.digest
        manifests.setdefault(result.digest, result)

    await asyncio.gather(*(fetch(tag) for tag in tags))
    pending = _children(manifests.values(), manifests)
    while pending:
        results = await asyncio.gather(
            *(_get_child(client, repo, digest) for digest in pending), return_exceptions=False
        )
        for result in results:
            if result is not None:
                manifests.setdefault(result.digest, result)
        pending = _children(results, manifests)
    return RepoContent(name=repo, tags=tag_digests, manifests=manifests)


async def _get_child(client: RegistryClient, repo: str, digest: str) -> ManifestResult | None:
    try:
        return await client.get_manifest(repo, digest)
    except NotFoundError:
        return None  # an index may name children that were never pushed to this repo


def _children(
    results: Iterable[ManifestResult | None], known: dict[str, ManifestResult]
) -> set[str]:
    wanted: set[str] = set()
    for result in results:
        if result is not None and isinstance(result.manifest, ImageIndex):
            wanted.update(d.digest for d in result.manifest.manifests if d.digest not in known)
    return wanted


async def estimate_registry(
    client: RegistryClient,
    repos: list[str] | None = None,
    *,
    progress: Progress | None = None,
    parallel_repos: int = 16,
) -> UsageEstimate:
    """The usage estimate of ``repos`` (default: the whole catalog)."""
    names = repos if repos is not None else await client.catalog()
    contents: list[RepoContent] = []
    vanished: list[str] = []
    queue: asyncio.Queue[str] = asyncio.Queue()
    for name in names:
        queue.put_nowait(name)

    async def worker() -> None:
        while True:
            try:
                name = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            try:
                contents.append(await survey_repository(client, name))
            except NotFoundError:
                vanished.append(name)  # deleted between the catalog and now: nothing to count
            if progress is not None:
                progress(name, len(contents) + len(vanished), len(names))

    await asyncio.gather(*(worker() for _ in range(max(1, min(parallel_repos, len(names))))))
    return estimate_usage(contents)
