"""``regtui sync``'s engine: keep targets in step with sources, by digest (no Textual).

A run plans first, then copies. Planning reads, for each entry, the source's repositories (for
a whole registry: the catalog, filtered by ``repositories``), their tags (filtered by the
entry's :class:`~tui.logic.sync_spec.TagFilter`), and for each tag the digest on each side
(a ``HEAD`` each; a ``GET`` of the source's index when one platform is wanted, and the
referrers of both sides when they are wanted too). A tag whose target already points at the
digest the copy would write is unchanged: nothing moves for it, so a second run of an unchanged
file costs a few requests per tag. Every other tag is copied by :func:`tui.data.copy.copy_image`,
``parallel`` images at once, each writing its blobs, then its manifests, then its tag: a sync
killed at any instant leaves no tag on an incomplete image, and the next run finishes the work.

A second run of an unchanged file is the common case, so planning costs little: one client per
registry (its keep-alive connections reused by every request), ``REPOSITORIES_AT_ONCE``
repositories read at once, and the copy engine (:mod:`tui.data.copy` with the OCI layout and
archive formats behind it) imported only when something is to be copied.
"""

from __future__ import annotations

import asyncio
import fnmatch
from collections.abc import AsyncIterator, Callable

from tui.client import NotFoundError, RegistryClient, RegistryClientError
from tui.client.models import ImageIndex
from tui.data.sync_jobs import ImageJob, SyncOutcome
from tui.logic.copy_plan import PlatformError, choose_platform
from tui.logic.sync_spec import Entry, SyncSpec, SyncSpecError, target_repository

__all__ = ["ImageJob", "SyncOutcome", "plan_sync", "run_sync"]

REPOSITORIES_AT_ONCE = 32
"""Repositories whose tags are read (and compared) at once while planning (each registry's
client bounds the requests in flight)."""

Clients = Callable[[str], RegistryClient]
"""The client for a registry as the sync file names it (one per registry, shared)."""


async def _repositories(entry: Entry, client: RegistryClient) -> AsyncIterator[str]:
    if entry.source is not None:
        yield entry.source.repository
        return
    async for page in client.iter_catalog(1000):
        for name in page:
            if not entry.repositories or any(
                fnmatch.fnmatchcase(name, pattern) for pattern in entry.repositories
            ):
                yield name


async def _wanted_digest(entry: Entry, client: RegistryClient, repo: str, ref: str) -> str:
    """The digest the target's tag will point at: the source's, or its platform's child."""
    if entry.platform is None:
        return (await client.head_manifest(repo, ref)).digest
    result = await client.get_manifest(repo, ref)
    if not isinstance(result.manifest, ImageIndex):
        return result.digest
    return choose_platform(result.manifest.manifests, entry.platform).digest


async def _target_digest(client: RegistryClient, repo: str, ref: str) -> str | None:
    try:
        return (await client.head_manifest(repo, ref)).digest
    except NotFoundError:
        return None


async def _same_referrers(
    source: RegistryClient, source_repo: str, target: RegistryClient, target_repo: str, digest: str
) -> bool:
    wanted = {d.digest for d in await source.get_referrers(source_repo, digest)}
    if not wanted:
        return True
    try:
        have = {d.digest for d in await target.get_referrers(target_repo, digest)}
    except NotFoundError:
        return False
    return wanted <= have


async def _job(
    entry: Entry, source: RegistryClient, target: RegistryClient, repo: str, ref: str
) -> ImageJob:
    target_repo = target_repository(entry, repo)
    digest, have = await asyncio.gather(
        _wanted_digest(entry, source, repo, ref), _target_digest(target, target_repo, ref)
    )
    unchanged = have == digest
    if unchanged and entry.referrers:
        unchanged = await _same_referrers(source, repo, target, target_repo, digest)
    return ImageJob.compared(entry, repo, ref, digest, have, unchanged=unchanged)


async def _plan_entry(entry: Entry, clients: Clients) -> tuple[list[ImageJob], list[SyncOutcome]]:
    source = clients(entry.source_registry)
    target = clients(entry.target_registry)
    jobs: list[ImageJob] = []
    failures: list[SyncOutcome] = []

    async def one(repo: str, ref: str) -> None:
        try:
            jobs.append(await _job(entry, source, target, repo, ref))
        except (RegistryClientError, PlatformError, SyncSpecError) as error:
            failures.append(
                SyncOutcome(None, "failed", str(error), where=f"{entry.where}: {repo}:{ref}")
            )

    gate = asyncio.Semaphore(REPOSITORIES_AT_ONCE)

    async def repository(repo: str) -> None:
        async with gate:
            try:
                tags = await source.list_tags(repo)
            except NotFoundError:
                if entry.kind == "registry":
                    return  # deleted between the catalog and now
                failures.append(
                    SyncOutcome(None, "failed", f"{repo}: no such repository", where=entry.where)
                )
                return
            except RegistryClientError as error:
                failures.append(
                    SyncOutcome(None, "failed", str(error), where=f"{entry.where}: {repo}")
                )
                return
            await asyncio.gather(*(one(repo, tag) for tag in entry.tags.select(tags)))

    async with asyncio.TaskGroup() as group:
        try:
            async for repo in _repositories(entry, source):
                if entry.source is not None and entry.kind == "image":
                    group.create_task(one(repo, entry.source.digest or entry.source.tag or ""))
                else:
                    group.create_task(repository(repo))
        except RegistryClientError as error:  # the catalog: this entry stops here
            failures.append(SyncOutcome(None, "failed", str(error), where=entry.where))
    jobs.sort(key=lambda job: (job.source_repository, job.reference))
    return jobs, failures


async def plan_sync(spec: SyncSpec, clients: Clients) -> tuple[list[ImageJob], list[SyncOutcome]]:
    """Every image of every entry, each marked unchanged or not; failures to read a source
    are outcomes of their own (the other entries go on)."""
    jobs: list[ImageJob] = []
    failures: list[SyncOutcome] = []
    for entry in spec.entries:
        more, failed = await _plan_entry(entry, clients)
        jobs += more
        failures += failed
    return jobs, failures


async def run_sync(
    spec: SyncSpec,
    clients: Clients,
    *,
    dry_run: bool = False,
    progress: Callable[[SyncOutcome], None] | None = None,
) -> list[SyncOutcome]:
    """Plan, then copy what changed (``spec.parallel`` images at once); one outcome per image
    and per failure. A dry run copies nothing: what would move is ``planned``."""
    jobs, outcomes = await plan_sync(spec, clients)
    if dry_run or all(job.unchanged for job in jobs):
        return outcomes + [
            _told(progress, SyncOutcome(job, "unchanged" if job.unchanged else "planned"))
            for job in jobs
        ]
    # Something moves: the copy engine (and the formats beside it) is loaded only now.
    from tui.data.copy import copy_image
    from tui.data.copy_io import CopyError, RegistryDestination, RegistrySource, SharedWrites

    gate = asyncio.Semaphore(spec.parallel)
    shared: dict[tuple[str, str], SharedWrites] = {}
    """By target (registry, repository): the images copied there at once write each blob
    and manifest once (see :class:`SharedWrites`)."""

    def told(outcome: SyncOutcome) -> SyncOutcome:
        return _told(progress, outcome)

    async def one(job: ImageJob) -> SyncOutcome:
        if job.unchanged:
            return told(SyncOutcome(job, "unchanged"))
        async with gate:
            source_client = clients(job.source_registry)
            source = RegistrySource(
                source_client, job.source_repository, job.reference, name=job.source
            )
            target = (job.target_registry, job.target_repository)
            destination = RegistryDestination(
                clients(job.target_registry),
                job.target_repository,
                name=job.target,
                shared=shared.setdefault(target, SharedWrites()),
            )
            try:
                result = await copy_image(
                    source,
                    destination,
                    tags=[job.tag] if job.tag else [],
                    platform=job.entry.platform,
                    all_platforms=job.entry.platform is None,
                    referrers=job.entry.referrers,
                )
            except (RegistryClientError, CopyError, PlatformError) as error:
                return told(SyncOutcome(job, "failed", str(error)))
            finally:
                await destination.close()
        return told(SyncOutcome(job, "copied", result=result))

    outcomes += await asyncio.gather(*(one(job) for job in jobs))
    return outcomes


def _told(progress: Callable[[SyncOutcome], None] | None, outcome: SyncOutcome) -> SyncOutcome:
    if progress is not None:
        progress(outcome)
    return outcome
