"""The catalog: every repository under ``repositories/``, in Distribution's order.

A directory is a repository when it holds ``_layers`` (Distribution 2.8's rule) or
``_manifests`` (Distribution 3's). Names are ordered component by component ("a" < "a/b" <
"a-b"), the order Distribution's sorted walk produces.

:class:`RepositoryIndex` keeps the walk of the tree in memory and brings it up to date with one
stamp (a ``stat``, the driver's
:class:`~embedded_registry.storage.driver.capabilities.DirectoryTimes`) per directory it walked:
adding or removing an entry changes the modification time of the directory that holds it (a
repository created by another process, ``_manifests`` removed by hand, a namespace deleted), and
only the directories whose time or inode changed are listed again. A time too close to the
moment of the look is not trusted (a file system's clock ticks coarsely, so a change in the same
tick would keep the time), and that directory is listed again next time.
"""

from __future__ import annotations

import asyncio
import bisect
import threading
import time
from dataclasses import dataclass, field

from embedded_registry import names
from embedded_registry.storage.driver.capabilities import DirectoryTimes, Stamp
from embedded_registry.storage.paths import KEYS

_REPO_MARKERS = ("_layers", "_manifests")

UNSETTLED_NS = 2_000_000_000
"""A directory whose modification time is this close to the moment it was listed is listed
again at the next look: a change within the same clock tick as the listing could keep its time
(ext4 stamps with the kernel's coarse clock; some file systems count whole seconds)."""


def path_order_key(name: str) -> tuple[str, ...]:
    """Sort key comparing names component-wise, like Distribution's ``lessPath``."""
    return tuple(name.split("/"))


def page(repositories: list[str], last: str | None, count: int) -> tuple[list[str], bool]:
    """The ``count`` names after ``last``, and whether more follow."""
    if last:
        key = path_order_key(last)
        repositories = [name for name in repositories if path_order_key(name) > key]
    return repositories[:count], len(repositories) > count


# -- the index kept in memory -------------------------------------------------------------------


@dataclass
class _Directory:
    """One directory of the walk: what it looked like when listed, and its sub-directories."""

    stamp: Stamp
    settled: bool
    is_repository: bool
    children: dict[str, _Directory] = field(default_factory=dict)


def settled(stamp: Stamp, now: int) -> bool:
    """Whether a directory with ``stamp`` (its time the second item, in nanoseconds), looked
    at ``now``, may be trusted until its stamp changes."""
    return now - stamp[1] > UNSETTLED_NS


class RepositoryIndex:
    """The sorted repository names under the ``repositories/`` directory of ``driver``, kept
    in memory.

    :meth:`refresh` checks the tree (a directory stamp each, a listing only of the changed
    ones: blocking calls of the driver's
    :class:`~embedded_registry.storage.driver.capabilities.DirectoryTimes`) and returns the
    current names; :meth:`page` answers ``n``/``last`` by bisection. Safe to call from several
    threads (one refresh at a time).
    """

    def __init__(
        self, driver: DirectoryTimes, repositories_dir: str = KEYS.repositories_dir
    ) -> None:
        self.driver = driver
        self.repositories_dir = repositories_dir.rstrip("/")
        self._root: _Directory | None = None
        self._names: list[str] = []
        self._keys: list[tuple[str, ...]] = []
        self._lock = threading.Lock()
        self._changed = False
        self.listings = 0
        """Directories listed so far (the first walk lists them all; later refreshes only what
        changed): for tests and benchmarks."""

    def refresh(self) -> list[str]:
        """The repository names now on disk, in catalog order."""
        with self._lock:
            self._refresh()
            return self._names

    def current(self) -> list[str]:
        """The names as of the last refresh."""
        with self._lock:
            return list(self._names)

    def page(self, last: str | None, count: int, *, refresh: bool = True) -> tuple[list[str], bool]:
        """The ``count`` names after ``last``, and whether more follow; fresh from disk unless
        ``refresh`` is false (then as of the last refresh)."""
        with self._lock:
            if refresh:
                self._refresh()
            current, keys = self._names, self._keys
        start = bisect.bisect_right(keys, path_order_key(last)) if last else 0
        return current[start : start + count], len(current) > start + count

    def _refresh(self) -> None:
        now = time.time_ns()
        before = self._root
        root = self._check(self.repositories_dir, before, now) if before else None
        if root is None:
            root = self._list(self.repositories_dir, now)
        changed = root is not before or self._changed
        self._root = root
        if changed:
            found: list[str] = []
            self._collect(root, "", found)
            valid = [name for name in found if names.is_valid_name(name)]
            valid.sort(key=path_order_key)
            self._names = valid
            self._keys = [path_order_key(name) for name in valid]
        self._changed = False

    # -- walking ------------------------------------------------------------------------------

    def _list(self, path: str, now: int) -> _Directory:
        """List ``path`` and everything below it (the stamp comes first: a change made while
        listing leaves a newer one, seen at the next look)."""
        stamp = self.driver.directory_stamp(path)
        directory = _Directory(stamp or (0, 0), settled=False, is_repository=False)
        if stamp is None:
            return directory
        self._fill(directory, path, now, {})
        return directory

    def _fill(
        self, directory: _Directory, path: str, now: int, previous: dict[str, _Directory]
    ) -> None:
        self.listings += 1
        self._changed = True
        directory.settled = settled(directory.stamp, now)
        entries = self.driver.entries(path)
        if entries is None:
            directory.is_repository = False
            directory.children = {}
            return
        is_repository = False
        children: dict[str, _Directory] = {}
        for name, is_dir in entries:
            if not is_dir:
                continue
            if name in _REPO_MARKERS:
                is_repository = True
            elif not name.startswith("_"):
                old = previous.get(name)
                child_path = f"{path}/{name}"
                child = self._check(child_path, old, now) if old is not None else None
                children[name] = child or self._list(child_path, now)
        directory.is_repository = is_repository
        directory.children = children

    def _check(self, path: str, directory: _Directory, now: int) -> _Directory | None:
        """``directory`` brought up to date, or ``None`` when ``path`` is gone or another
        directory now (to be listed from scratch)."""
        stamp = self.driver.directory_stamp(path)
        if stamp is None or stamp[0] != directory.stamp[0]:
            return None
        if stamp != directory.stamp or not directory.settled:
            directory.stamp = stamp
            self._fill(directory, path, now, directory.children)
            return directory
        for name, child in list(directory.children.items()):
            checked = self._check(f"{path}/{name}", child, now)
            if checked is None:
                # Gone or replaced: the parent's time changed too, unless in the same tick;
                # list the parent again to be sure of its entries.
                directory.stamp = stamp
                self._fill(directory, path, now, directory.children)
                return directory
        return directory

    def _collect(self, directory: _Directory, prefix: str, found: list[str]) -> None:
        if directory.is_repository and prefix:
            found.append(prefix[:-1])
        for name, child in directory.children.items():
            self._collect(child, f"{prefix}{name}/", found)


class SharedRefresh:
    """One :meth:`RepositoryIndex.refresh` at a time (in a worker thread), shared by the
    requests waiting for it: each waits for a check that began after it arrived."""

    def __init__(self, index: RepositoryIndex) -> None:
        self.index = index
        self._lock = asyncio.Lock()
        self._started = 0
        self._finished = 0

    async def page(self, last: str | None, count: int) -> tuple[list[str], bool]:
        await self.refresh()
        return self.index.page(last, count, refresh=False)

    async def refresh(self) -> None:
        """Return after a check that began after this call."""
        arrived_after = self._started
        async with self._lock:
            if self._finished <= arrived_after:  # no check began after this call came
                self._started += 1
                number = self._started
                await asyncio.to_thread(self.index.refresh)
                self._finished = number
