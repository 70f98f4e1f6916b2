"""The referrers of each repository, kept in memory and checked against the disk per request.

Listing referrers means reading every manifest revision of a repository. :class:`ReferrersIndex`
does that once per repository and then only checks, with a ``stat`` each, the directories whose
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

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from embedded_registry import names
from embedded_registry.mediatypes import ManifestInfo
from embedded_registry.storage.catalog import UNSETTLED_NS, directory_stamp
from embedded_registry.storage.fsutil import read_link

ALGORITHMS = ("sha256", "sha512")
MAX_REPOSITORIES = 1024
"""Repositories whose referrers are kept (least recently asked for forgotten first)."""

Descriptor = dict[str, object]


@dataclass
class _Entry:
    watched: dict[str, tuple[int, int] | None] = field(default_factory=dict)
    trusted: bool = True
    by_subject: dict[str, list[Descriptor]] = field(default_factory=dict)


class ReferrersIndex:
    """``referrers(name, subject)`` without rereading every revision per request, for the
    repositories under the local directory ``repositories_dir``; ``read_manifest(digest)``
    describes a stored manifest (``None``: missing or unreadable). Safe to call from several
    threads."""

    def __init__(
        self,
        repositories_dir: str,
        read_manifest: Callable[[str], ManifestInfo | None],
        max_repositories: int = MAX_REPOSITORIES,
    ) -> None:
        self.repositories_dir = repositories_dir
        self.read_manifest = read_manifest
        self.max_repositories = max_repositories
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.reads = 0
        """Repositories read from disk so far (for tests and benchmarks)."""

    def referrers(self, name: str, subject: str) -> list[Descriptor]:
        """Descriptors of the manifests of ``name`` whose ``subject`` is ``subject``."""
        with self._lock:
            entry = self._entries.get(name)
            if entry is not None and self._current(entry):
                self._entries.move_to_end(name)
            else:
                entry = self._read(name)
                self._entries[name] = entry
                self._entries.move_to_end(name)
                while len(self._entries) > self.max_repositories:
                    self._entries.popitem(last=False)
            return list(entry.by_subject.get(subject, ()))

    @staticmethod
    def _current(entry: _Entry) -> bool:
        return entry.trusted and all(
            directory_stamp(path) == stamp for path, stamp in entry.watched.items()
        )

    def _read(self, name: str) -> _Entry:
        self.reads += 1
        now = time.time_ns()
        entry = _Entry()
        found: list[tuple[str, str, Descriptor]] = []
        for algorithm in ALGORITHMS:
            base = f"{self.repositories_dir}/{name}/_manifests/revisions/{algorithm}"
            stamp = directory_stamp(base)  # before the listing: a later change shows a newer time
            entry.watched[base] = stamp
            if stamp is None:
                continue
            self._distrust_if_recent(entry, stamp, now)
            try:
                hexes = os.listdir(base)
            except (FileNotFoundError, NotADirectoryError):
                entry.trusted = False
                continue
            for hex_part in hexes:
                digest = f"{algorithm}:{hex_part}"
                if not names.is_valid_digest(digest):
                    continue
                directory = os.path.join(base, hex_part)
                dir_stamp = directory_stamp(directory)
                if dir_stamp is None:
                    entry.trusted = False  # removed while listed: read again next time
                    continue
                if read_link(f"{directory}/link") != digest:
                    entry.watched[directory] = dir_stamp  # deleted; a re-push writes the link
                    self._distrust_if_recent(entry, dir_stamp, now)
                    continue
                info = self.read_manifest(digest)
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
    def _distrust_if_recent(entry: _Entry, stamp: tuple[int, int], now: int) -> None:
        if now - stamp[1] <= UNSETTLED_NS:
            entry.trusted = False
