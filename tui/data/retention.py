"""Retention's I/O (no Textual): read a registry's state, load policy files, apply a plan.

Reading: on the bundled registry the ``_regtui/tags`` endpoint gives push times, every manifest
revision and exact blob sizes (``exact``); on any other registry the API gives tags, the
manifests they reach and the sizes their descriptors claim (an estimate; no push times, no
untagged manifests). Applying goes through :class:`RegistryClient` only: delete by digest when
every tag on it goes, otherwise untag (which works on Distribution 2.8 too).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence

from regtui_retention.outcomes import ApplyOutcome, apply_note, listed
from regtui_retention.policyfile import load_policy, read_policy_file
from tui.client import (
    AuthError,
    ImageIndex,
    ImageManifest,
    NotFoundError,
    RegistryClient,
    RegistryClientError,
    RepositoryStorage,
    TagMovedError,
    repository_storage,
)
from tui.client.estimate import blobs_of
from tui.client.survey import survey_repository
from tui.logic.fmt import parse_created
from tui.logic.retention import (
    ActionKind,
    BulkAction,
    ManifestState,
    PrunePlan,
    RegistryState,
    RepoPlan,
    RepoState,
    TagState,
)

__all__ = [
    "ApplyOutcome",
    "apply_note",
    "apply_plan",
    "load_policy",
    "read_policy_file",
    "read_state",
]

Progress = Callable[[str, int, int], None]


# ---------------------------------------------------------------------- reading


def repo_state_from_storage(report: RepositoryStorage) -> RepoState:
    """One repository as storage sees it: exact sizes, push times, untagged revisions too."""
    created = {m.digest: parse_created(m.created) for m in report.manifests}
    for m in report.manifests:  # an index is as new as its newest platform
        dates = [d for child in m.children if (d := created.get(child)) is not None]
        if created.get(m.digest) is None and dates:
            created[m.digest] = max(dates)
    manifests = {
        m.digest: ManifestState(m.digest, dict(m.blobs), m.children, m.subject, m.pushed)
        for m in report.manifests
    }
    tags = tuple(
        TagState(t.tag, t.digest, created.get(t.digest), t.pushed, t.pulled, t.immutable)
        for t in report.tags
    )
    return RepoState(report.name, tags, manifests, complete=True)


async def _api_repo_state(
    client: RegistryClient, name: str, configs: dict[str, str | None]
) -> RepoState:
    content = await survey_repository(client, name)
    manifests: dict[str, ManifestState] = {}
    created: dict[str, str | None] = {}

    async def config_date(digest: str, manifest: ImageManifest) -> None:
        key = manifest.config.digest
        if key not in configs:
            try:
                configs[key] = (await client.get_config(name, manifest)).created
            except RegistryClientError:
                configs[key] = None
        created[digest] = configs[key]

    jobs = []
    for digest, result in content.manifests.items():
        manifest = result.manifest
        children: tuple[str, ...] = ()
        subject = None
        if isinstance(manifest, ImageIndex):
            children = tuple(d.digest for d in manifest.manifests)
        elif isinstance(manifest, ImageManifest):
            subject = manifest.subject.digest if manifest.subject else None
            if not manifest.is_artifact:
                jobs.append(config_date(digest, manifest))
        manifests[digest] = ManifestState(digest, blobs_of(digest, result), children, subject)
    await asyncio.gather(*jobs)
    dates = {d: parse_created(c) for d, c in created.items()}
    for digest, m in manifests.items():
        child_dates = [x for c in m.children if (x := dates.get(c)) is not None]
        if dates.get(digest) is None and child_dates:
            dates[digest] = max(child_dates)
    tags = tuple(
        TagState(tag, digest, dates.get(digest), None) for tag, digest in content.tags.items()
    )
    return RepoState(name, tags, manifests, complete=False)


async def read_state(
    client: RegistryClient,
    repos: Sequence[str] | None = None,
    *,
    progress: Progress | None = None,
    parallel: int = 8,
) -> RegistryState:
    """The state of every repository (``repos``: only these, yet bytes then count only them).

    The bundled registry answers from storage (exact); others through the API (estimate).
    """
    names = list(repos) if repos is not None else await client.catalog()
    bundled = None
    if names:
        try:
            bundled = await repository_storage(client, names[0])
        except AuthError:
            bundled = None  # a registry that guards paths it does not know
    done = 0
    semaphore = asyncio.Semaphore(max(1, parallel))
    configs: dict[str, str | None] = {}

    async def one(name: str) -> RepoState | None:
        nonlocal done
        async with semaphore:
            try:
                if bundled is not None:
                    report = bundled if name == names[0] else await repository_storage(client, name)
                    state = repo_state_from_storage(report) if report is not None else None
                else:
                    state = await _api_repo_state(client, name, configs)
            except NotFoundError:
                state = None  # deleted between the catalog and now
        done += 1
        if progress is not None:
            progress(name, done, len(names))
        return state

    states = await asyncio.gather(*(one(name) for name in names))
    return RegistryState(
        tuple(s for s in states if s is not None),
        exact=bundled is not None,
        source="storage" if bundled is not None else "api",
    )


# ---------------------------------------------------------------------- applying


async def _untag_each(
    client: RegistryClient, repo: str, digest: str, tags: Sequence[str]
) -> tuple[list[str], list[str]]:
    """Untag each of ``tags`` that still points at ``digest`` (checked right before each).

    Returns the tags removed and those left alone: moved to another image or deleted since.
    """
    removed: list[str] = []
    left: list[str] = []
    for tag in tags:
        try:
            await client.untag(repo, tag, expected_digest=digest)
        except (TagMovedError, NotFoundError):
            left.append(tag)
            continue
        removed.append(tag)
    return removed, left


class _TagMap:
    """A repository's tags -> digests as the registry has them, read again when it gets old.

    Listing the tags that point at a digest takes a tags/list and a HEAD per tag, so reading
    them before each of a repository's deletes makes pruning quadratic (200 tags, 89 deleted
    manifests: 8 s became 58 s here). Instead the map is read again as soon as it is older than
    twice the time one read took, counted from the read's start: what a delete is checked
    against is never older than that (a few milliseconds to a fraction of a second), and
    reading takes at most about half of the apply's time. Tags the apply removes itself are
    dropped from the map.
    """

    def __init__(self, client: RegistryClient, repo: str) -> None:
        self.client = client
        self.repo = repo
        self._map: dict[str, str] = {}
        self._started = 0.0
        self._took = -1.0

    async def tags_on(self, digest: str) -> set[str]:
        if self._took < 0 or time.monotonic() - self._started >= 2 * self._took:
            started = time.monotonic()
            self._map = await self.client.tag_digests(self.repo)
            self._started, self._took = started, time.monotonic() - started
        return {tag for tag, target in self._map.items() if target == digest}

    def removed(self, tags: Iterable[str]) -> None:
        for tag in tags:
            self._map.pop(tag, None)


async def _apply_action(tag_map: _TagMap, action: BulkAction) -> ApplyOutcome:
    """One digest of the plan, checked against the registry right before each change.

    A manifest is deleted only if the tags on it now (:class:`_TagMap`) are among the planned
    ones; with a tag the plan did not know, only the planned tags are removed. A tag is removed
    only while it still points at the planned digest: :meth:`RegistryClient.untag` HEADs it
    right before the request that removes it.
    """
    client, repo, digest = tag_map.client, tag_map.repo, action.digest
    tags = action.tags
    left_alone: list[str] = []
    newcomers: list[str] = []
    try:
        if action.kind is ActionKind.DELETE_MANIFEST:
            on_it = await tag_map.tags_on(digest)
            newcomers = sorted(on_it - set(action.tags))
            tags = tuple(t for t in action.tags if t in on_it)
            left_alone = [t for t in action.tags if t not in on_it]
            if tags and not newcomers:
                await client.delete_manifest(repo, digest)
                tag_map.removed(tags)
                return ApplyOutcome(repo, digest, "delete", tags, note=apply_note(left_alone, []))
        removed, left = await _untag_each(client, repo, digest, tags)
        tag_map.removed(removed)
    except RegistryClientError as error:
        return ApplyOutcome(repo, digest, "untag", tags, error=str(error))
    note = apply_note([*left_alone, *left], newcomers)
    if not removed:
        return ApplyOutcome(repo, digest, "skip", (), note=note)
    return ApplyOutcome(repo, digest, "untag", tuple(removed), note=note)


async def _delete_untagged(tag_map: _TagMap, digest: str) -> ApplyOutcome:
    """Delete an untagged manifest unless a tag points at it now."""
    client, repo, action = tag_map.client, tag_map.repo, "delete untagged"
    try:
        tagged = await tag_map.tags_on(digest)
        if tagged:
            return ApplyOutcome(
                repo, digest, action, (), note=f"tagged since the plan ({listed(tagged)})"
            )
        await client.delete_manifest(repo, digest)
    except NotFoundError:
        return ApplyOutcome(repo, digest, action, (), note="already gone")
    except RegistryClientError as error:
        return ApplyOutcome(repo, digest, action, (), error=str(error))
    return ApplyOutcome(repo, digest, action, ())


async def _apply_repo(client: RegistryClient, plan: RepoPlan) -> list[ApplyOutcome]:
    tag_map = _TagMap(client, plan.name)
    outcomes = [await _apply_action(tag_map, action) for action in plan.actions]
    outcomes += [await _delete_untagged(tag_map, u.digest) for u in plan.untagged]
    return outcomes


async def apply_plan(
    client: RegistryClient, plan: PrunePlan, *, progress: Progress | None = None
) -> list[ApplyOutcome]:
    """Carry out ``plan``, repository by repository; failures are recorded, not raised.

    Every change is checked against the registry right before it is made (see
    :func:`_apply_action`): a tag moved since the plan is left alone, and a digest that gained
    a tag since is only untagged, never deleted. The registry API has no compare-and-swap, so
    a push landing between that check and the change is still not seen: for a tag, the time of
    one request; for a manifest, twice the time of reading the repository's tags at most
    (:class:`_TagMap`).
    """
    outcomes: list[ApplyOutcome] = []
    busy = [repo for repo in plan.repos if not repo.is_empty]
    for n, repo in enumerate(busy, 1):
        outcomes += await _apply_repo(client, repo)
        if progress is not None:
            progress(repo.name, n, len(busy))
    return outcomes
