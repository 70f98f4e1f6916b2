"""Read every tag and manifest of a registry (or of some repositories) for the usage estimate."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from tui.client.errors import NotFoundError
from tui.client.estimate import RepoContent, UsageEstimate, estimate_usage
from tui.client.models import ImageIndex, ManifestResult
from tui.client.reference import is_loopback_host
from tui.client.registry import RegistryClient

__all__ = ["estimate_registry", "survey_repository"]

Progress = Callable[[str, int, int], None]
"""Called as ``progress(repo, done, total)`` after each repository."""


async def survey_repository(
    client: RegistryClient,
    repo: str,
    known: dict[str, ManifestResult] | None = None,
    *,
    head_first: bool = False,
) -> RepoContent:
    """Tags of ``repo`` and every manifest they reach (index children included).

    ``known`` (digest -> manifest, shared across repositories) saves downloads: a manifest is
    the same bytes wherever its digest is found, so for a digest already read only its presence
    here is checked, with a HEAD. With ``head_first`` every tag is resolved by HEAD and only
    digests not yet read are fetched: fewer bytes and, on Docker Hub, no pull counted for tags
    that share a manifest, at the price of one more round trip per new manifest. A tag deleted
    while we read is skipped.
    """
    known = {} if known is None else known
    tags = await client.list_tags(repo)
    manifests: dict[str, ManifestResult] = {}
    tag_digests: dict[str, str] = {}

    async def fetch(tag: str) -> None:
        try:
            if head_first:
                digest = (await client.head_manifest(repo, tag)).digest
                result = known.get(digest) or await client.get_manifest(repo, digest)
            else:
                result = await client.get_manifest(repo, tag)
        except NotFoundError:
            return
        tag_digests[tag] = result.digest
        manifests.setdefault(result.digest, result)
        known.setdefault(result.digest, result)

    await asyncio.gather(*(fetch(tag) for tag in tags))
    pending = _children(manifests.values(), manifests)
    while pending:
        results = await asyncio.gather(*(_get_child(client, repo, d, known) for d in pending))
        for result in results:
            if result is not None:
                manifests.setdefault(result.digest, result)
                known.setdefault(result.digest, result)
        pending = _children(results, manifests)
    return RepoContent(name=repo, tags=tag_digests, manifests=manifests)


async def _get_child(
    client: RegistryClient, repo: str, digest: str, known: dict[str, ManifestResult]
) -> ManifestResult | None:
    try:
        if digest in known:
            await client.head_manifest(repo, digest)  # read elsewhere: is it here too?
            return known[digest]
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
    head_first: bool | None = None,
) -> UsageEstimate:
    """The usage estimate of ``repos`` (default: the whole catalog).

    ``head_first`` (see :func:`survey_repository`) defaults to on for remote registries, where
    GETs may be counted and bytes cost time, and off on loopback, where every request costs CPU
    that the registry needs too.
    """
    names = repos if repos is not None else await client.catalog()
    if head_first is None:
        head_first = not is_loopback_host(client.host)
    known: dict[str, ManifestResult] = {}
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
                contents.append(await survey_repository(client, name, known, head_first=head_first))
            except NotFoundError:
                vanished.append(name)  # deleted between the catalog and now: nothing to count
            if progress is not None:
                progress(name, len(contents) + len(vanished), len(names))

    await asyncio.gather(*(worker() for _ in range(max(1, min(parallel_repos, len(names))))))
    return estimate_usage(contents)
