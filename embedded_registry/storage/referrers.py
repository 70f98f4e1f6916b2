"""The referrers of each repository, kept in memory and checked against the disk per request.

Listing referrers means reading every manifest revision of a repository. :class:`ReferrersIndex`
does that once per repository (through the driver: its links and manifests) and then only checks,
with a directory stamp each (a ``stat``, the driver's
:class:`~embedded_registry.storage.driver.capabilities.DirectoryTimes`), the directories whose
change could change an answer:

* ``_manifests/revisions/<algorithm>/``: its time changes when a revision is added or its
  directory removed (a push by this or another registry, a repository deleted by hand);
* the ``<hex>/`` directory of every revision that has a ``subject``: its time changes when the
  ``link`` inside is removed (a DELETE by digest here or in Distribution, ``regtui gc``);
* the ``<hex>/`` directory of every revision without a link (deleted earlier): a push of the
  same manifest writes the link again.

A revision without a subject can never become a referrer (its content is its digest), so it is
not watched. A time too close to the look is not trusted (see ``catalog.UNSETTLED_NS``), nor a
revision whose manifest could not be read: the repository is read again next time.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field

from embedded_registry import names
from embedded_registry.storage.catalog import settled
from embedded_registry.storage.driver.capabilities import DirectoryTimes, Stamp
from embedded_registry.storage.links import Links
from embedded_registry.storage.manifest_cache import ManifestCache
from embedded_registry.storage.paths import KEYS

ALGORITHMS = ("sha256", "sha512")
MAX_REPOSITORIES = 1024
"""Repositories whose referrers are kept (least recently asked for forgotten first)."""

Descriptor = dict[str, object]


@dataclass
class _Entry:
    watched: dict[str, Stamp | None] = field(default_factory=dict)
    trusted: bool = True
    by_subject: dict[str, list[Descriptor]] = field(default_factory=dict)


class ReferrersIndex:
    """``referrers(name, subject)`` without rereading every revision per request: the
    revision links through ``links``, the manifests through ``manifests`` (the store's cache),
    the directory stamps from ``times`` (the same driver). For the event loop: concurrent
    requests may read a changed repository at once, and the last reading is kept."""

    def __init__(
        self,
        times: DirectoryTimes,
        links: Links,
        manifests: ManifestCache,
        max_repositories: int = MAX_REPOSITORIES,
    ) -> None:
        self.times = times
        self.links = links
        self.manifests = manifests
        self.max_repositories = max_repositories
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self.reads = 0
        """Repositories read so far (for tests and benchmarks)."""

    async def referrers(self, name: str, subject: str) -> list[Descriptor]:
        """Descriptors of the manifests of ``name`` whose ``subject`` is ``subject``."""
        entry = self._entries.get(name)
        if entry is None or not self._current(entry):
            entry = await self._read(name)
            self._entries[name] = entry
        self._entries.move_to_end(name)
        while len(self._entries) > self.max_repositories:
            self._entries.popitem(last=False)
        return list(entry.by_subject.get(subject, ()))

    def _current(self, entry: _Entry) -> bool:
        stamp = self.times.directory_stamp
        return entry.trusted and all(stamp(key) == seen for key, seen in entry.watched.items())

    async def _read(self, name: str) -> _Entry:
        self.reads += 1
        now = time.time_ns()
        entry = _Entry()
        found: list[tuple[str, str, Descriptor]] = []
        for algorithm in ALGORITHMS:
            base = f"{KEYS.revisions_dir(name)}/{algorithm}"
            # The stamp before the listing: a later change shows a newer one.
            stamp = self.times.directory_stamp(base)
            entry.watched[base] = stamp
            if stamp is None:
                continue
            self._distrust_if_recent(entry, stamp, now)
            hexes = self.times.entries(base)
            if hexes is None:
                entry.trusted = False
                continue
            for hex_part, _is_dir in hexes:
                digest = f"{algorithm}:{hex_part}"
                if not names.is_valid_digest(digest):
                    continue
                directory = f"{base}/{hex_part}"
                dir_stamp = self.times.directory_stamp(directory)
                if dir_stamp is None:
                    entry.trusted = False  # removed while listed: read again next time
                    continue
                if await self.links.read_link(f"{directory}/link") != digest:
                    entry.watched[directory] = dir_stamp  # deleted; a re-push writes the link
                    self._distrust_if_recent(entry, dir_stamp, now)
                    continue
                info = await self.manifests.info(digest)
                if info is None:
                    entry.trusted = False  # the manifest blob is missing or unreadable
                    continue
                if info.subject is not None:
                    entry.watched[directory] = dir_stamp
                    self._distrust_if_recent(entry, dir_stamp, now)
                    found.append((digest, info.subject, info.referrer_descriptor(digest)))
        for _digest, subject, descriptor in sorted(found, key=lambda item: item[0]):
            entry.by_subject.setdefault(subject, []).append(descriptor)
        return entry

    @staticmethod
    def _distrust_if_recent(entry: _Entry, stamp: Stamp, now: int) -> None:
        if not settled(stamp, now):
            entry.trusted = False
