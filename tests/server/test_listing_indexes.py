"""The catalog and referrers kept in memory stay true to the disk when something else changes it.

In-process and on real files: the directory tree is aged first (as a registry that ran for a
while), so the indexes trust what they cached and only the ``stat`` checks stand between a
change on disk and a stale answer. Each change is made the way another process makes it (new
directories, ``rmtree``, a link removed), and each answer is compared with a fresh walk.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from embedded_registry.mediatypes import describe_stored
from embedded_registry.storage.catalog import RepositoryIndex, page
from embedded_registry.storage.driver.filesystem import FilesystemDriver
from embedded_registry.storage.factory import driver_storage
from embedded_registry.storage.links import Links
from embedded_registry.storage.manifest_cache import ManifestCache
from embedded_registry.storage.paths import KEYS
from embedded_registry.storage.referrers import ReferrersIndex
from embedded_registry.storage.tagindex import TagIndex
from tests.helpers.layout import (
    LayoutWriter,
    digest_of,
    walk_repositories,
    walk_revisions,
    walk_tags,
)


def _age(root: Path, seconds: float = 3600) -> None:
    then = time.time() - seconds
    for dirpath, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            os.utime(os.path.join(dirpath, name), (then, then))
    os.utime(root, (then, then))


def _repo(storage: LayoutWriter, name: str) -> None:
    """A repository as Distribution leaves one after a push: ``_layers`` and ``_manifests``."""
    storage.link(name, digest_of(name.encode()))
    storage.layout.revisions_dir(name).mkdir(parents=True, exist_ok=True)


@pytest.fixture
def storage(tmp_path: Path) -> LayoutWriter:
    storage = LayoutWriter(tmp_path)
    storage.ensure()
    for name in ("a", "a/b", "a-b", "team/one", "team/two", "deep/x/y/z"):
        _repo(storage, name)
    return storage


def _settled(storage: LayoutWriter, index: RepositoryIndex) -> list[str]:
    _age(storage.layout.repositories_dir)
    index.refresh()  # times changed: listed again, now old enough to trust
    return index.refresh()


def test_catalog_index_follows_outside_changes_without_walking(storage: LayoutWriter) -> None:
    repositories = storage.layout.repositories_dir
    index = RepositoryIndex(FilesystemDriver(storage.root))
    assert _settled(storage, index) == walk_repositories(repositories)
    walked = index.listings

    assert index.refresh() == walk_repositories(repositories)
    assert index.listings == walked, "an unchanged tree is checked, not listed"

    changes = [
        lambda: _repo(storage, "deep/x/y/z/w"),  # nested below a repository
        lambda: _repo(storage, "new/ns/repo"),  # a new namespace
        lambda: shutil.rmtree(repositories / "team" / "one"),  # deleted by hand
        lambda: shutil.rmtree(repositories / "a" / "_layers"),  # still has _manifests
        lambda: shutil.rmtree(repositories / "a" / "_manifests"),  # now only a namespace
        lambda: shutil.rmtree(repositories / "deep" / "x"),  # a whole subtree
        lambda: (repositories / "team").rename(repositories / "crew"),  # renamed namespace
    ]
    expected_listed = ["a/b", "a-b", "crew/two", "new/ns/repo"]
    for change in changes:
        _age(repositories)
        index.refresh()
        before = index.listings
        change()
        assert index.refresh() == walk_repositories(repositories)
        assert index.listings - before < 10, "only the changed directories are listed again"
    assert index.refresh() == expected_listed


def test_catalog_index_sees_a_change_within_the_same_clock_tick(storage: LayoutWriter) -> None:
    """A directory changed right after it was listed may keep its time (coarse clocks): the
    index does not trust a time that recent and lists it again."""
    repositories = storage.layout.repositories_dir
    index = RepositoryIndex(FilesystemDriver(storage.root))
    team = repositories / "team"
    os.utime(team)  # just now
    index.refresh()
    stamp = team.stat().st_mtime_ns
    _repo(storage, "team/three")
    os.utime(team, ns=(stamp, stamp))  # the same time as when it was listed
    assert "team/three" in index.refresh()


def test_catalog_index_pages_like_the_walk(storage: LayoutWriter) -> None:
    repositories = storage.layout.repositories_dir
    index = RepositoryIndex(FilesystemDriver(storage.root))
    names = walk_repositories(repositories)
    for last in (None, "", "a", "a/b", "a/a", "a-a", "b", "deep", "team/one", "zzz"):
        for count in (0, 1, 2, 5, 100):
            assert index.page(last, count) == page(names, last, count), (last, count)


def test_catalog_index_pagination_across_changes(storage: LayoutWriter) -> None:
    """A page after ``last`` is cut from the names on disk now, not when the walk began."""
    repositories = storage.layout.repositories_dir
    index = RepositoryIndex(FilesystemDriver(storage.root))
    _settled(storage, index)
    first, more = index.page(None, 3)
    assert first == ["a", "a/b", "a-b"] and more
    _repo(storage, "0-before")  # sorts before the cursor: not on the next pages
    _repo(storage, "b-after")  # after it: on them
    shutil.rmtree(repositories / "team" / "two")
    second, more = index.page(first[-1], 3)
    assert second == ["b-after", "deep/x/y/z", "team/one"] and not more


def test_catalog_index_of_a_missing_or_recreated_root(tmp_path: Path) -> None:
    storage = LayoutWriter(tmp_path)
    index = RepositoryIndex(FilesystemDriver(storage.root))
    assert index.refresh() == []
    _repo(storage, "late")
    assert index.refresh() == ["late"]
    shutil.rmtree(storage.layout.repositories_dir)
    assert index.refresh() == []
    _repo(storage, "again")
    assert index.refresh() == ["again"]


# -- referrers ----------------------------------------------------------------------------------


def _put(storage: LayoutWriter, name: str, label: str, **extra: object) -> str:
    return storage.put(name, storage.manifest(name, label, **extra))


def _subject(storage: LayoutWriter, digest: str) -> dict[str, object]:
    return storage.descriptor(digest)


def _referrers_index(storage: LayoutWriter, **options: int) -> ReferrersIndex:
    """The index as the served store makes it: links and manifests read through the driver."""
    driver = FilesystemDriver(storage.root)
    links = Links(driver)
    return ReferrersIndex(driver, links, ManifestCache(links), **options)


def _fresh_referrers(storage: LayoutWriter, name: str, subject: str) -> list[dict[str, object]]:
    """What a walk without the index answers: every revision whose ``subject`` is ``subject``."""
    found = []
    for digest in walk_revisions(storage.layout, name):
        info = describe_stored(storage.read_blob(digest))
        if info.subject == subject:
            found.append(info.referrer_descriptor(digest))
    return found


async def test_referrers_index_follows_outside_changes(tmp_path: Path) -> None:
    storage = LayoutWriter(tmp_path)
    index = _referrers_index(storage)
    subject = _put(storage, "app", "image")
    first = _put(storage, "app", "sig-1", subject=_subject(storage, subject))
    _put(storage, "app", "unrelated")

    async def listed() -> list[str]:
        fresh = _fresh_referrers(storage, "app", subject)
        cached = await index.referrers("app", subject)
        assert cached == fresh
        return [str(d["digest"]) for d in cached]

    assert await listed() == [first]
    _age(storage.root)
    await listed()
    reads = index.reads
    assert await listed() == [first]
    assert index.reads == reads, "an unchanged repository is checked, not read again"

    # Another referrer pushed (a new revision directory).
    second = _put(storage, "app", "sig-2", subject=_subject(storage, subject))
    assert sorted(await listed()) == sorted([first, second])

    # A referrer deleted by digest (only its link goes, as Distribution does it).
    _age(storage.root)
    await listed()
    storage.layout.revision_link("app", first).unlink()
    assert await listed() == [second]

    # Pushed again: the link comes back into the directory that stayed.
    _age(storage.root)
    await listed()
    storage.layout.revision_link("app", first).write_text(first)
    assert sorted(await listed()) == sorted([first, second])

    # A non-referrer deleted: not watched, the answer does not change (and is still right).
    _age(storage.root)
    await listed()
    reads = index.reads
    unrelated = [d for d in walk_revisions(storage.layout, "app") if d not in (first, second)]
    for digest in unrelated:
        if digest != subject:
            storage.layout.revision_link("app", digest).unlink()
    assert sorted(await listed()) == sorted([first, second])
    assert index.reads == reads

    # The repository deleted by hand, then made again with other content.
    _age(storage.root)
    await listed()
    shutil.rmtree(storage.layout.repo_dir("app"))
    assert await listed() == []
    again = _put(storage, "app", "sig-3", subject=_subject(storage, subject))
    assert await listed() == [again]


async def test_referrers_index_is_bounded(tmp_path: Path) -> None:
    storage = LayoutWriter(tmp_path)
    index = _referrers_index(storage, max_repositories=3)
    for n in range(6):
        name = f"repo{n}"
        subject = _put(storage, name, "image")
        referrer = _put(storage, name, "sig", subject=_subject(storage, subject))
        assert [d["digest"] for d in await index.referrers(name, subject)] == [referrer]
    assert len(index._entries) == 3


# -- tags ---------------------------------------------------------------------------------------


def _tag_by_hand(
    storage: LayoutWriter, name: str, tag: str, digest: str, *, link: bool = True
) -> None:
    """A tag written the way Distribution writes one: the directories, then the link."""
    current = storage.layout.tag_current_link(name, tag).parent
    current.mkdir(parents=True, exist_ok=True)
    if link:
        (current / "link").write_text(digest)


def _tag_index(storage: LayoutWriter, **options: int) -> TagIndex:
    driver = FilesystemDriver(storage.root)
    return TagIndex(driver, driver, **options)


async def _tags(index: TagIndex, name: str) -> list[str] | None:
    return await index.tags(KEYS.tags_dir(name))


async def test_tag_index_follows_outside_changes(tmp_path: Path) -> None:
    storage = LayoutWriter(tmp_path)
    digest = _put(storage, "app", "image")
    for tag in ("v1", "v2", "latest"):
        storage.tag("app", tag, digest)
    index = _tag_index(storage)

    async def listed() -> list[str] | None:
        answer = await _tags(index, "app")
        assert answer == walk_tags(storage.layout, "app")
        return answer

    assert await listed() == ["latest", "v1", "v2"]
    _age(storage.root)
    await listed()
    listings = index.listings
    assert await listed() == ["latest", "v1", "v2"]
    assert index.listings == listings, "an unchanged repository is checked, not listed"

    # Another process tags (a new directory in tags/).
    _age(storage.root)
    await listed()
    _tag_by_hand(storage, "app", "v3", digest)
    assert await listed() == ["latest", "v1", "v2", "v3"]

    # A tag directory without its link (a push in the middle, or killed there): not listed,
    # then listed once the link arrives, although the tags directory did not change again.
    _age(storage.root)
    await listed()
    _tag_by_hand(storage, "app", "v4", digest, link=False)
    assert await listed() == ["latest", "v1", "v2", "v3"]
    _age(storage.root)
    assert await listed() == ["latest", "v1", "v2", "v3"]
    (storage.layout.tag_current_link("app", "v4")).write_text(digest)
    assert await listed() == ["latest", "v1", "v2", "v3", "v4"]

    # A short link (Distribution writes in place): not listed.
    _age(storage.root)
    await listed()
    _tag_by_hand(storage, "app", "v5", "sha256:abc")
    assert await listed() == ["latest", "v1", "v2", "v3", "v4"]

    # Untagged by another process (Distribution removes the tag's directory).
    _age(storage.root)
    await listed()
    shutil.rmtree(storage.layout.tag_dir("app", "v1"))
    assert await listed() == ["latest", "v2", "v3", "v4"]

    # Deleted through the served store: its tags go with the manifest.
    served = driver_storage(FilesystemDriver(storage.root), coordinate=True)
    assert await served.delete_manifest("app", digest) == ["latest", "v2", "v3", "v4"]
    assert await listed() == []

    # The repository removed by hand, then pushed again.
    shutil.rmtree(storage.layout.repo_dir("app"))
    assert await listed() is None
    digest = _put(storage, "app", "again")
    storage.tag("app", "new", digest)
    assert await listed() == ["new"]


async def test_tag_index_sees_a_tag_within_the_same_clock_tick(tmp_path: Path) -> None:
    storage = LayoutWriter(tmp_path)
    index = _tag_index(storage)
    digest = _put(storage, "app", "image")
    storage.tag("app", "v1", digest)
    tags_dir = storage.layout.tags_dir("app")
    os.utime(tags_dir)  # just now
    assert await _tags(index, "app") == ["v1"]
    stamp = tags_dir.stat().st_mtime_ns
    _tag_by_hand(storage, "app", "v2", digest)
    os.utime(tags_dir, ns=(stamp, stamp))  # the same time as when it was listed
    assert await _tags(index, "app") == ["v1", "v2"]


async def test_tag_index_is_bounded(tmp_path: Path) -> None:
    storage = LayoutWriter(tmp_path)
    index = _tag_index(storage, limit=3)
    for n in range(6):
        name = f"repo{n}"
        storage.tag(name, "v1", _put(storage, name, "image"))
        assert await _tags(index, name) == ["v1"]
    assert len(index._listings) == 3


async def test_the_served_storage_answers_from_the_indexes(storage: LayoutWriter) -> None:
    """What the server serves (``DriverStorage`` on the filesystem driver) keeps the tags, the
    catalog and the referrers in these indexes: an unchanged tree is checked, not listed again,
    and a change made by another process is seen at once."""
    served = driver_storage(FilesystemDriver(storage.root), coordinate=True)
    subject = _put(storage, "app", "image")
    referrer = _put(storage, "app", "sig", subject=_subject(storage, subject))
    storage.tag("app", "v1", subject)
    _age(storage.root)
    local = served.listings.local
    assert local is not None

    assert await served.tags("app") == ["v1"]
    assert await served.repositories() == walk_repositories(storage.layout.repositories_dir)
    assert [d["digest"] for d in await served.referrers("app", subject)] == [referrer]
    tag_listings, catalog_listings = local.tags.listings, local.catalog.index.listings
    referrer_reads = local.referrers.reads
    for _ in range(3):
        assert await served.tags("app") == ["v1"]
        assert (await served.catalog_page(None, 100))[0] == walk_repositories(
            storage.layout.repositories_dir
        )
        assert [d["digest"] for d in await served.referrers("app", subject)] == [referrer]
    assert local.tags.listings == tag_listings
    assert local.catalog.index.listings == catalog_listings
    assert local.referrers.reads == referrer_reads

    _tag_by_hand(storage, "app", "v2", subject)
    _repo(storage, "zz/new")
    storage.layout.revision_link("app", referrer).unlink()
    assert await served.tags("app") == ["v1", "v2"]
    assert "zz/new" in (await served.catalog_page(None, 100))[0]
    assert await served.referrers("app", subject) == []
