"""Scrub: prove that the bytes in a storage are still the bytes that were pushed.

One run, through the storage driver (the filesystem or S3, whatever serves the registry):

1. **Blobs.** Every ``blobs/<alg>/<xx>/<hex>/data`` is read and hashed, a few files at a time
   (``hashlib`` releases the GIL; on a local disk each file is read in a worker thread in large
   blocks). The listing is streamed one two-hex-digit directory at a time, so memory does not
   grow with the store: only the problems found are kept.
2. **Repositories.** Every repository, one after the other: its ``_layers`` links and revision
   links must name blobs that exist, every tag's ``current/link`` a revision that exists, and
   every manifest's references (config, layers, index children, subject) must be in the store
   and linked where the registry looks for them. Each problem is reported with the images it
   breaks (``repo:tag``, or ``repo@digest`` for an untagged one), following indexes up to the
   tags that reach them.

A run keeps its progress (:class:`ScrubState`: the phase, a cursor, the problems found so far)
at ``/regtui/scrub/state.json`` beside the GC lease (outside ``docker/registry/v2``), or in a
local file; a run that stops (killed, interrupted, a lost connection) resumes after its cursor.

``repair`` does only what cannot lose data: a blob whose bytes do not match its digest (or a
directory where its ``data`` should be) is moved into ``/regtui/scrub/quarantine/`` (the blob
then reads as absent, so the next push of that digest stores it again), and a link that names
nothing (a ``_layers`` or revision link to a blob that is not stored, a tag's ``current/link``
to a manifest that is not stored) is removed. Links to a quarantined blob stay: the next push
of the blob heals them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from embedded_registry import names
from embedded_registry.mediatypes import parse_stored_manifest
from embedded_registry.storage.driver.base import (
    FileInfo,
    PathNotFoundError,
    StorageDriver,
    StorageDriverError,
)
from embedded_registry.storage.driver.capabilities import (
    BlockingReads,
    DirectoryTimes,
    get_many,
    list_files,
)
from embedded_registry.storage.paths import KEYS

T = TypeVar("T")

STATE_KEY = "/regtui/scrub/state.json"
QUARANTINE_DIR = "/regtui/scrub/quarantine"
STATE_VERSION = 1
DEFAULT_JOBS = 2
"""Files hashed at once: two keep a disk busy while one file's hash runs."""
READ_BLOCK = 4 << 20
"""Bytes read per system call on a local disk (as ``sha256sum``'s large reads)."""
BATCH = 16
"""Blobs hashed one after the other by one job (small blobs: one thread hop for many)."""
WINDOW = 64
"""Batches checked but not yet under the cursor (one slow file ahead of many small ones)."""
SAVE_INTERVAL = 2.0
PROGRESS_INTERVAL = 0.5
LINK_LIMIT = 1024
MAX_MANIFEST_BYTES = 16 << 20
CONCURRENCY = 16

ERROR, WARNING = "error", "warning"

# Problem kinds, one line each.
BLOB_CORRUPT = "blob-corrupt"
BLOB_NOT_FILE = "blob-not-a-file"
BLOB_UNREADABLE = "blob-unreadable"
MANIFEST_INVALID = "manifest-invalid"
REFERENCE_MISSING = "reference-missing"
REFERENCE_UNLINKED = "reference-unlinked"
CHILD_MISSING = "child-missing"
SUBJECT_MISSING = "subject-missing"
LINK_DANGLING = "link-dangling"
LINK_INVALID = "link-invalid"
LINK_NOT_FILE = "link-not-a-file"
TAG_DANGLING = "tag-dangling"
BLOB_KINDS = frozenset({BLOB_CORRUPT, BLOB_NOT_FILE, BLOB_UNREADABLE})


@dataclass(slots=True)
class ScrubProblem:
    """One thing wrong, in one line: what, where (a storage key), the images it breaks, and
    what a repair did about it."""

    kind: str
    key: str
    message: str
    digest: str | None = None
    repo: str | None = None
    images: list[str] = field(default_factory=list)
    severity: str = ERROR
    repaired: str | None = None

    def to_json(self) -> dict[str, Any]:
        """As ``--json`` shows it (docs/json.md: ``repository``, not ``repo``)."""
        document = asdict(self)
        document["repository"] = document.pop("repo")
        return document

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ScrubProblem:
        return cls(
            kind=str(doc["kind"]),
            key=str(doc["key"]),
            message=str(doc["message"]),
            digest=doc.get("digest"),
            repo=doc.get("repository"),
            images=[str(i) for i in doc.get("images") or []],
            severity=str(doc.get("severity") or ERROR),
            repaired=doc.get("repaired"),
        )

    def add_image(self, image: str) -> None:
        if image not in self.images:
            self.images.append(image)


@dataclass(slots=True)
class ScrubProgress:
    """Where a run is: ``phase`` is ``blobs``, ``repositories`` or ``done``; ``fraction`` of
    the blob phase is the share of two-hex-digit directories done."""

    phase: str = "blobs"
    blobs: int = 0
    bytes: int = 0
    repositories: int = 0
    manifests: int = 0
    links: int = 0
    problems: int = 0
    fraction: float = 0.0
    elapsed_seconds: float = 0.0
    resumed: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class ScrubState:
    """What a run saves to resume: the phase, the cursor (the last blob digest, or the last
    repository, everything up to which is done), the counts and the problems so far."""

    phase: str = "blobs"
    cursor: str | None = None
    progress: ScrubProgress = field(default_factory=ScrubProgress)
    problems: list[ScrubProblem] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.time)

    def to_bytes(self) -> bytes:
        document = {
            "version": STATE_VERSION,
            "phase": self.phase,
            "cursor": self.cursor,
            "progress": self.progress.to_json(),
            "problems": [p.to_json() for p in self.problems],
            "quarantined": self.quarantined,
            "started": self.started,
        }
        return json.dumps(document, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> ScrubState | None:
        """The saved state, or None when unreadable (then the run starts over)."""
        try:
            doc = json.loads(data)
            if not isinstance(doc, dict) or doc.get("version") != STATE_VERSION:
                return None
            progress = ScrubProgress(**doc["progress"])
            return cls(
                phase=str(doc["phase"]),
                cursor=doc.get("cursor"),
                progress=progress,
                problems=[ScrubProblem.from_json(p) for p in doc.get("problems") or []],
                quarantined=[str(d) for d in doc.get("quarantined") or []],
                started=float(doc.get("started") or time.time()),
            )
        except (ValueError, TypeError, KeyError, UnicodeDecodeError):
            return None


@dataclass(slots=True)
class ScrubReport:
    """The outcome: counts, every problem (errors first), and whether it was a repair."""

    progress: ScrubProgress
    problems: list[ScrubProblem]
    repair: bool
    resumed: bool

    @property
    def errors(self) -> list[ScrubProblem]:
        return [p for p in self.problems if p.severity == ERROR]

    @property
    def clean(self) -> bool:
        return not self.errors

    @property
    def broken_images(self) -> list[str]:
        return sorted({image for p in self.errors for image in p.images})

    def to_json(self) -> dict[str, Any]:
        return {
            "clean": self.clean,
            "repair": self.repair,
            "resumed": self.resumed,
            "blobs": self.progress.blobs,
            "bytes": self.progress.bytes,
            "repositories": self.progress.repositories,
            "manifests": self.progress.manifests,
            "links": self.progress.links,
            "elapsed_seconds": self.progress.elapsed_seconds,
            "broken_images": self.broken_images,
            "problems": [p.to_json() for p in self.problems],
        }


class StateStore:
    """Where a run keeps its :class:`ScrubState`: a key of the driver (the default,
    ``STATE_KEY``) or a local file. A storage that cannot be written (read-only) is no
    failure: the run goes on without a way to resume, and says so once."""

    def __init__(self, driver: StorageDriver, local_file: str | None = None) -> None:
        self.driver = driver
        self.local_file = local_file
        self.warning: str | None = None

    async def load(self) -> ScrubState | None:
        try:
            if self.local_file is not None:
                data = await asyncio.to_thread(_read_local, self.local_file)
            else:
                data = await self.driver.get_content(STATE_KEY, limit=256 << 20)
        except (PathNotFoundError, FileNotFoundError):
            return None
        except (StorageDriverError, OSError):
            return None
        return ScrubState.from_bytes(data)

    async def save(self, state: ScrubState) -> None:
        if self.warning is not None:
            return
        data = state.to_bytes()
        try:
            if self.local_file is not None:
                await asyncio.to_thread(_write_local, self.local_file, data)
            else:
                await self.driver.put_content(STATE_KEY, data)
        except (StorageDriverError, OSError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            self.warning = f"cannot save the scrub's progress ({reason}): it will not resume"


def _read_local(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def _write_local(path: str, data: bytes) -> None:
    temp = f"{path}.tmp"
    with open(temp, "wb") as handle:
        handle.write(data)
    os.replace(temp, path)


# -- hashing ----------------------------------------------------------------------------------

_buffers = threading.local()


@dataclass(frozen=True, slots=True)
class _Hashed:
    """What reading one blob found: ``state`` is ok, absent, not-file, unreadable."""

    state: str
    hexdigest: str = ""
    size: int = 0
    error: str = ""


def _hash_local(driver: BlockingReads, key: str, algorithm: str) -> _Hashed:
    """Hash the file at ``key`` in this (worker) thread, in ``READ_BLOCK`` reads into one
    buffer; ``hashlib`` releases the GIL while it hashes."""
    try:
        handle = driver.open_now(key)
    except IsADirectoryError:
        return _Hashed("not-file")
    except OSError as exc:
        return _Hashed("unreadable", error=exc.strerror or str(exc))
    if handle is None:
        return _Hashed("absent")
    try:
        hasher = hashlib.new(algorithm)
        buffer = getattr(_buffers, "block", None)
        if buffer is None:
            buffer = _buffers.block = bytearray(READ_BLOCK)
        view = memoryview(buffer)
        size = 0
        while True:
            count = handle.readinto(view)
            if not count:
                break
            hasher.update(view[:count])
            size += count
        return _Hashed("ok", hasher.hexdigest(), size)
    except OSError as exc:
        return _Hashed("unreadable", error=exc.strerror or str(exc))
    finally:
        handle.close()


async def _hash_driver(driver: StorageDriver, key: str, algorithm: str) -> _Hashed:
    """Hash the blob at ``key`` through the driver's reader (object storage)."""
    try:
        info = await driver.stat(key)
    except PathNotFoundError:
        return _Hashed("absent")
    except StorageDriverError as exc:
        return _Hashed("unreadable", error=str(exc))
    if info.is_dir:
        return _Hashed("not-file")
    hasher = hashlib.new(algorithm)
    size = 0
    try:
        async for block in driver.reader(key):
            if len(block) >= 1 << 16:
                await asyncio.to_thread(hasher.update, block)
            else:
                hasher.update(block)
            size += len(block)
    except PathNotFoundError:
        return _Hashed("absent")
    except StorageDriverError as exc:
        return _Hashed("unreadable", error=str(exc))
    return _Hashed("ok", hasher.hexdigest(), size)


async def hash_blobs(driver: StorageDriver, digests: list[str]) -> list[_Hashed]:
    """Hash the blobs ``digests``: on a local disk one after the other in one worker thread
    (a thread hop costs more than hashing a small file), else through the driver's reader."""
    keys = [KEYS.blob_data(digest) for digest in digests]
    if isinstance(driver, BlockingReads):
        reads = driver

        def hash_all() -> list[_Hashed]:
            return [
                _hash_local(reads, key, digest.partition(":")[0])
                for key, digest in zip(keys, digests, strict=True)
            ]

        return await asyncio.to_thread(hash_all)
    return [
        await _hash_driver(driver, key, digest.partition(":")[0])
        for key, digest in zip(keys, digests, strict=True)
    ]


# -- listings ---------------------------------------------------------------------------------


async def _children(driver: StorageDriver, key: str) -> list[str]:
    try:
        return sorted(await driver.list(key))
    except PathNotFoundError:
        return []


def _leaf(key: str) -> str:
    return key.rstrip("/").rsplit("/", 1)[-1]


def _digest_order(digest: str) -> tuple[str, str]:
    algorithm, _, hex_part = digest.partition(":")
    return algorithm, hex_part


async def blob_digests(
    driver: StorageDriver, after: str | None, done: Callable[[float], None] | None = None
) -> AsyncIterator[str]:
    """Every blob digest after ``after``, in order, one two-hex-digit directory listed at a
    time; ``done(fraction)`` after each directory."""
    start = _digest_order(after) if after else None
    algorithms = [a for a in await _children(driver, KEYS.blobs_dir) if _leaf(a) in _ALGORITHMS]
    total = max(1, 256 * len(algorithms))
    finished = 0
    for algorithm_key in algorithms:
        algorithm = _leaf(algorithm_key)
        for prefix_key in await _children(driver, algorithm_key):
            prefix = _leaf(prefix_key)
            finished += 1
            if start is not None and (algorithm, prefix) < (start[0], start[1][:2]):
                continue
            for blob_key in await _children(driver, prefix_key):
                digest = f"{algorithm}:{_leaf(blob_key)}"
                if not names.is_valid_digest(digest) or not _leaf(blob_key).startswith(prefix):
                    continue
                if start is not None and _digest_order(digest) <= start:
                    continue
                yield digest
            if done is not None:
                done(min(1.0, finished / total))


_ALGORITHMS = frozenset(
    a for a in ("sha256", "sha384", "sha512") if a in hashlib.algorithms_available
)


async def repository_names(driver: StorageDriver) -> AsyncIterator[str]:
    """Every repository (a directory with ``_layers`` or ``_manifests``), in Distribution's
    order (component by component), the listing walked one directory at a time."""
    base = KEYS.repositories_dir

    async def walk(key: str, parts: tuple[str, ...]) -> AsyncIterator[str]:
        children = await _children(driver, key)
        leaves = [_leaf(c) for c in children]
        if parts and ("_layers" in leaves or "_manifests" in leaves):
            name = "/".join(parts)
            if names.is_valid_name(name):
                yield name
        for child, leaf in zip(children, leaves, strict=True):
            if not leaf.startswith("_") and not leaf.startswith("."):
                async for found in walk(child, (*parts, leaf)):
                    yield found

    async for name in walk(base, ()):
        yield name


def _name_order(name: str) -> tuple[str, ...]:
    return tuple(name.split("/"))


# -- the run ----------------------------------------------------------------------------------


def _short(digest: str) -> str:
    return digest[:19]


def _descriptor_sizes(body: bytes) -> dict[str, int]:
    """``digest -> size`` of every descriptor a manifest names (config, layers, manifests,
    subject), for telling a truncated blob from a changed one."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return {}
    sizes: dict[str, int] = {}
    if not isinstance(doc, dict):
        return sizes
    found: list[Any] = [doc.get("config"), doc.get("subject")]
    for name in ("layers", "manifests"):
        items = doc.get(name)
        if isinstance(items, list):
            found.extend(items)
    for item in found:
        if isinstance(item, dict):
            digest, size = item.get("digest"), item.get("size")
            if isinstance(digest, str) and isinstance(size, int) and not isinstance(size, bool):
                sizes[digest] = size
    return sizes


class Scrubber:
    """One scrub of the storage behind ``driver`` (see the module docstring)."""

    def __init__(
        self,
        driver: StorageDriver,
        *,
        repair: bool = False,
        jobs: int = DEFAULT_JOBS,
        state_file: str | None = None,
        restart: bool = False,
        progress: Callable[[ScrubProgress], None] | None = None,
    ) -> None:
        self.driver = driver
        self.repair = repair
        self.jobs = max(1, jobs)
        self.states = StateStore(driver, state_file)
        self.restart = restart
        self.on_progress = progress
        self.state = ScrubState()
        self._bad_blobs: dict[str, ScrubProblem] = {}
        self._blob_sizes: dict[str, int | None] = {}
        self._saved = 0.0
        self._shown = 0.0
        self._clock = time.monotonic()
        self._elapsed_before = 0.0

    # -- bookkeeping ---------------------------------------------------------------------------
    def _problem(self, problem: ScrubProblem) -> ScrubProblem:
        self.state.problems.append(problem)
        self.state.progress.problems = sum(1 for p in self.state.problems if p.severity == ERROR)
        if problem.kind in BLOB_KINDS and problem.digest is not None:
            self._bad_blobs[problem.digest] = problem
        return problem

    def _tick(self, force: bool = False) -> None:
        now = time.monotonic()
        self.state.progress.elapsed_seconds = round(self._elapsed_before + now - self._clock, 3)
        if self.on_progress is not None and (force or now - self._shown >= PROGRESS_INTERVAL):
            self._shown = now
            self.on_progress(self.state.progress)

    async def _checkpoint(self, force: bool = False) -> None:
        self._tick(force)
        now = time.monotonic()
        if force or now - self._saved >= SAVE_INTERVAL:
            self._saved = now
            await self.states.save(self.state)

    @property
    def warning(self) -> str | None:
        """Why the run cannot resume, when it cannot save its progress."""
        return self.states.warning

    # -- the run -------------------------------------------------------------------------------
    async def run(self) -> ScrubReport:
        resumed = False
        if not self.restart:
            saved = await self.states.load()
            if saved is not None and saved.phase != "done":
                self.state = saved
                resumed = True
                self._elapsed_before = saved.progress.elapsed_seconds
                for problem in saved.problems:
                    if problem.kind in BLOB_KINDS and problem.digest is not None:
                        self._bad_blobs[problem.digest] = problem
        self.state.progress.resumed = resumed
        if self.state.phase == "blobs":
            await self._blobs()
            self.state.phase, self.state.cursor = "repositories", None
            await self._checkpoint(force=True)
        if self.state.phase == "repositories":
            self.state.progress.phase = "repositories"
            async for name in repository_names(self.driver):
                cursor = self.state.cursor
                if cursor is not None and _name_order(name) <= _name_order(cursor):
                    continue
                await self._repository(name)
                self.state.progress.repositories += 1
                self.state.cursor = name
                await self._checkpoint()
        self.state.phase = self.state.progress.phase = "done"
        self.state.cursor = None
        await self._checkpoint(force=True)
        problems = sorted(
            self.state.problems,
            key=lambda p: (p.severity != ERROR, p.repo or "", p.kind, p.key),
        )
        return ScrubReport(self.state.progress, problems, self.repair, resumed)

    # -- blobs ---------------------------------------------------------------------------------
    async def _blobs(self) -> None:
        self.state.progress.phase = "blobs"
        gate = asyncio.Semaphore(self.jobs)
        pending: deque[tuple[list[str], asyncio.Task[list[_Hashed]]]] = deque()

        def fraction(value: float) -> None:
            self.state.progress.fraction = value

        async def settle(wait: bool) -> None:
            while pending and (wait or pending[0][1].done()):
                digests, task = pending.popleft()
                for digest, hashed in zip(digests, await task, strict=True):
                    await self._blob_checked(digest, hashed)
                self.state.cursor = digests[-1]
                wait = False if len(pending) < WINDOW else wait
            await self._checkpoint()

        async def check(digests: list[str]) -> list[_Hashed]:
            try:
                return await hash_blobs(self.driver, digests)
            finally:
                gate.release()

        async def submit(digests: list[str]) -> None:
            await gate.acquire()
            pending.append((digests, asyncio.ensure_future(check(digests))))
            await settle(len(pending) >= WINDOW)

        batch: list[str] = []
        try:
            async for digest in blob_digests(self.driver, self.state.cursor, fraction):
                batch.append(digest)
                if len(batch) >= BATCH:
                    await submit(batch)
                    batch = []
            if batch:
                await submit(batch)
            while pending:
                await settle(True)
        finally:
            for _digests, task in pending:
                task.cancel()
        self.state.progress.fraction = 1.0

    async def _blob_checked(self, digest: str, hashed: _Hashed) -> None:
        progress = self.state.progress
        key = KEYS.blob_data(digest)
        if hashed.state == "absent":
            return  # removed since the listing (GC), or a blob directory without data
        progress.blobs += 1
        progress.bytes += hashed.size
        if hashed.state == "ok":
            if hashed.hexdigest == digest.partition(":")[2]:
                return
            actual = f"{digest.partition(':')[0]}:{hashed.hexdigest}"
            problem = ScrubProblem(
                BLOB_CORRUPT,
                key,
                f"content does not match its digest ({hashed.size} bytes hash to "
                f"{_short(actual)}…)",
                digest=digest,
            )
        elif hashed.state == "not-file":
            problem = ScrubProblem(
                BLOB_NOT_FILE, key, "a directory where the blob's data file should be", digest
            )
        else:
            problem = ScrubProblem(
                BLOB_UNREADABLE, key, f"cannot be read: {hashed.error}", digest=digest
            )
        self._problem(problem)
        if self.repair and problem.kind in (BLOB_CORRUPT, BLOB_NOT_FILE):
            await self._quarantine(problem)

    async def _quarantine(self, problem: ScrubProblem) -> None:
        assert problem.digest is not None
        algorithm, _, hex_part = problem.digest.partition(":")
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        target = f"{QUARANTINE_DIR}/{algorithm}/{hex_part}/{stamp}"
        try:
            await self.driver.move(problem.key, target)
        except (StorageDriverError, OSError) as exc:
            problem.repaired = f"not quarantined: {exc}"
            return
        problem.repaired = (
            f"quarantined to {target} (the next push of {_short(problem.digest)}… stores it again)"
        )
        self.state.quarantined.append(problem.digest)

    # -- repositories --------------------------------------------------------------------------
    async def _blob_size(self, digest: str) -> int | None:
        """The stored blob's size (None: absent, or not a file), cached for the repository."""
        if digest in self._blob_sizes:
            return self._blob_sizes[digest]
        try:
            info = await self.driver.stat(KEYS.blob_data(digest))
            size = None if info.is_dir else info.size
        except PathNotFoundError:
            size = None
        self._blob_sizes[digest] = size
        return size

    async def _listing(self, base: str) -> AsyncIterator[FileInfo]:
        """Every file under ``base`` from one listing (and, on a local disk, every directory:
        a directory where a link should be is seen even when empty)."""
        driver = self.driver
        if isinstance(driver, DirectoryTimes):
            try:
                async for info in driver.list_files(base, directories=True):
                    yield info
            except PathNotFoundError:
                return
        else:
            async for info in list_files(self.driver, base):
                yield info

    async def _links(
        self, base: str, shape: Callable[[list[str]], str | None]
    ) -> list[tuple[str, str, str | None, str | None]]:
        """``(name, key, digest it holds, problem kind)`` of every link under ``base``: one
        listing, then the links read together. ``shape(parts)`` names what a link at
        ``base/<parts...>/link`` is for (a digest, a tag), None for anything else."""
        files: dict[str, tuple[str, bool]] = {}
        async for info in self._listing(base):
            parts = info.path[len(base) + 1 :].split("/")
            for end in range(1, len(parts) + 1):
                if parts[end - 1] != "link":
                    continue
                what = shape(parts[: end - 1])
                if what is None:
                    continue
                key = "/".join([base, *parts[:end]])
                not_file = info.is_dir or end < len(parts)
                if not_file or key not in files:
                    files[key] = (what, not_file or files.get(key, ("", False))[1])
                break
        keys = sorted(files)
        readable = [key for key in keys if not files[key][1]]
        contents = dict(
            zip(readable, await get_many(self.driver, readable, limit=LINK_LIMIT), strict=True)
        )
        found: list[tuple[str, str, str | None, str | None]] = []
        for key in keys:
            what, not_file = files[key]
            raw = contents.get(key)
            if not_file or isinstance(raw, StorageDriverError):
                found.append((what, key, None, LINK_NOT_FILE))
            elif raw is None:
                continue  # gone since the listing
            else:
                text = raw.decode("ascii", errors="replace").strip()
                valid = names.is_valid_digest(text)
                found.append((what, key, text if valid else None, None if valid else LINK_INVALID))
        return found

    async def _remove_link(self, problem: ScrubProblem, key: str) -> None:
        if not self.repair:
            return
        try:
            await self.driver.delete(key)
        except PathNotFoundError:
            problem.repaired = "already gone"
            return
        except (StorageDriverError, OSError) as exc:
            problem.repaired = f"not removed: {exc}"
            return
        problem.repaired = "link removed"

    async def _repository(self, name: str) -> None:
        """Check one repository: its links, its manifests' references, its tags; then name
        the images each problem breaks."""
        self._blob_sizes = {}
        repo = _Repo(name, set(self.state.quarantined))
        await self._check_layer_links(repo)
        await self._check_manifest_links(repo)
        await self._check_manifests(repo)
        await self._check_references(repo)
        await self._check_tags(repo)
        # Images: each broken manifest, through the indexes above it, up to the tags.
        for digest, problems in repo.broken.items():
            images = _images(name, digest, repo.tags, repo.parents)
            for problem in problems:
                for image in images:
                    problem.add_image(image)

    async def _bounded(self, repo: _Repo, work: Awaitable[T]) -> T:
        async with repo.limit:
            return await work

    async def _check_layer_links(self, repo: _Repo) -> None:
        name = repo.name
        layer_links = await self._links(KEYS.layers_dir(name), _digest_shape)
        sizes = await asyncio.gather(
            *(self._bounded(repo, self._blob_size(d)) for d, _key, _t, _b in layer_links)
        )
        for (digest, key, target, bad), size in zip(layer_links, sizes, strict=True):
            self.state.progress.links += 1
            if bad == LINK_NOT_FILE:
                self._problem(
                    ScrubProblem(bad, key, "a directory where a link should be", digest, name)
                )
            elif bad == LINK_INVALID or (target is not None and target != digest):
                self._problem(
                    ScrubProblem(LINK_INVALID, key, "the link does not name its blob", digest, name)
                )
            elif target is None:
                continue  # a directory without its link (a GC or push in flight)
            elif size is None and digest not in repo.quarantined and digest not in self._bad_blobs:
                problem = self._problem(
                    ScrubProblem(
                        LINK_DANGLING,
                        key,
                        "a layer link to a blob that is not stored",
                        digest,
                        name,
                    )
                )
                await self._remove_link(problem, key)
            else:
                repo.linked.add(digest)

    async def _check_manifest_links(self, repo: _Repo) -> None:
        """Revision links, then each tag's ``current/link`` (one listing of ``_manifests``)."""
        name = repo.name
        manifest_links = await self._links(KEYS.manifests_dir(name), _manifest_shape)
        for what, key, target, bad in manifest_links:
            if not what.startswith("digest:"):
                continue
            digest = what.removeprefix("digest:")
            self.state.progress.links += 1
            if bad == LINK_NOT_FILE:
                self._problem(
                    ScrubProblem(bad, key, "a directory where a link should be", digest, name)
                )
            elif bad == LINK_INVALID or (target is not None and target != digest):
                message = "the link does not name its manifest"
                self._problem(ScrubProblem(LINK_INVALID, key, message, digest, name))
            elif target is not None:
                repo.revisions.add(digest)
        for what, key, target, bad in manifest_links:
            if not what.startswith("tag:"):
                continue
            image = f"{name}:{what.removeprefix('tag:')}"
            self.state.progress.links += 1
            if bad == LINK_NOT_FILE:
                message = "a directory where a link should be"
                self._problem(ScrubProblem(bad, key, message, None, name, [image]))
            elif bad == LINK_INVALID:
                message = "the tag's link names no digest"
                self._problem(ScrubProblem(bad, key, message, None, name, [image]))
            elif target is not None:
                repo.tags.setdefault(target, []).append(image.rsplit(":", 1)[1])
                if target not in repo.revisions:
                    repo.dangling_tags.append((image, target, key))

    async def _describe(self, digest: str) -> tuple[str, int | None, str | None, Refs | None]:
        """``(digest, size, what is wrong, references)`` of a stored manifest; the body is
        not kept."""
        size = await self._blob_size(digest)
        if size is None or digest in self._bad_blobs:
            return digest, size, None, None
        if size > MAX_MANIFEST_BYTES:
            return digest, size, f"{size} bytes: too big for a manifest", None
        try:
            body = await self.driver.get_content(KEYS.blob_data(digest), limit=MAX_MANIFEST_BYTES)
        except PathNotFoundError:
            return digest, None, None, None
        except StorageDriverError as exc:
            return digest, size, f"cannot be read: {exc}", None
        parsed = parse_stored_manifest(digest, body)
        if parsed.error is not None:
            return digest, size, f"unreadable manifest: {parsed.error}", None
        named = _descriptor_sizes(body)
        refs: Refs = []
        if parsed.config is not None:
            refs.append(("config", parsed.config, named.get(parsed.config)))
        refs += [("layer", layer, named.get(layer)) for layer in parsed.layers]
        refs += [("child", child, named.get(child)) for child in parsed.children]
        if parsed.subject is not None:
            refs.append(("subject", parsed.subject, None))
        return digest, size, None, refs

    async def _check_manifests(self, repo: _Repo) -> None:
        """Every revision's manifest: stored, readable; its references kept for the next
        step (and the index children for the images)."""
        name = repo.name
        described = await asyncio.gather(
            *(self._bounded(repo, self._describe(d)) for d in sorted(repo.revisions))
        )
        for digest, size, wrong, refs in described:
            self.state.progress.manifests += 1
            key = KEYS.revision_link(name, digest)
            if digest in self._bad_blobs:
                repo.broke(digest, self._bad_blobs[digest])
            elif size is None:
                if digest in repo.quarantined:
                    continue
                message = "a revision link to a manifest that is not stored"
                problem = self._problem(ScrubProblem(LINK_DANGLING, key, message, digest, name))
                repo.broke(digest, problem)
                await self._remove_link(problem, key)
            elif wrong is not None or refs is None:
                where = KEYS.blob_data(digest)
                message = wrong or "unreadable manifest"
                repo.broke(
                    digest,
                    self._problem(ScrubProblem(MANIFEST_INVALID, where, message, digest, name)),
                )
            else:
                repo.referenced[digest] = refs
                for role, child, _size in refs:
                    if role == "child":
                        repo.parents.setdefault(child, set()).add(digest)

    async def _check_references(self, repo: _Repo) -> None:
        """What each manifest names: in the store, linked where the registry looks."""
        name = repo.name
        blob_refs = {d for refs in repo.referenced.values() for _role, d, _s in refs}
        await asyncio.gather(
            *(
                self._bounded(repo, self._blob_size(d))
                for d in blob_refs
                if names.is_valid_digest(d)
            )
        )
        for digest, refs in repo.referenced.items():
            for role, ref, named_size in refs:
                bad_blob = self._bad_blobs.get(ref)
                stored = self._blob_sizes.get(ref)
                if not names.is_valid_digest(ref):
                    repo.broke(
                        digest,
                        self._flag(
                            repo,
                            digest,
                            MANIFEST_INVALID,
                            f"its {role} names no digest: {ref[:80]!r}",
                        ),
                    )
                elif bad_blob is not None:
                    _note_truncation(bad_blob, named_size)
                    repo.broke(digest, bad_blob)
                elif role == "subject":
                    if ref not in repo.revisions:
                        self._flag(
                            repo,
                            digest,
                            SUBJECT_MISSING,
                            f"its subject {_short(ref)}… is not in the repository "
                            "(allowed: a referrer may come first)",
                            WARNING,
                        )
                elif role == "child":
                    if ref not in repo.revisions or stored is None:
                        missing = "is not stored" if stored is None else "has no revision link"
                        message = f"its child manifest {_short(ref)}… {missing}"
                        repo.broke(digest, self._flag(repo, digest, CHILD_MISSING, message))
                elif stored is None:
                    if ref not in repo.quarantined:
                        message = f"its {role} {_short(ref)}… is not stored"
                        repo.broke(digest, self._flag(repo, digest, REFERENCE_MISSING, message))
                elif ref not in repo.linked:
                    message = (
                        f"its {role} {_short(ref)}… is stored but not linked in {name} "
                        "(pulls get 404)"
                    )
                    repo.broke(digest, self._flag(repo, digest, REFERENCE_UNLINKED, message))

    def _flag(
        self, repo: _Repo, digest: str, kind: str, message: str, severity: str = ERROR
    ) -> ScrubProblem:
        """A problem of the manifest ``digest`` of ``repo``."""
        where = KEYS.blob_data(digest)
        return self._problem(
            ScrubProblem(kind, where, message, digest, repo.name, severity=severity)
        )

    async def _check_tags(self, repo: _Repo) -> None:
        """Tags on a revision that does not exist (removed when nothing is stored there)."""
        for image, target, key in repo.dangling_tags:
            stored = await self._blob_size(target)
            missing = "is not stored" if stored is None else "has no revision link"
            message = f"the tag points at {_short(target)}…, which {missing}"
            problem = self._problem(
                ScrubProblem(TAG_DANGLING, key, message, target, repo.name, [image])
            )
            if stored is None and target not in repo.quarantined and target not in self._bad_blobs:
                await self._remove_link(problem, key)


Refs = list[tuple[str, str, int | None]]
"""A manifest's references: ``(role, digest, the size its descriptor gives)``."""


@dataclass(slots=True)
class _Repo:
    """What the checks of one repository find and share."""

    name: str
    quarantined: set[str]
    limit: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(CONCURRENCY))
    linked: set[str] = field(default_factory=set)
    revisions: set[str] = field(default_factory=set)
    tags: dict[str, list[str]] = field(default_factory=dict)
    """Tags by the digest they point at."""
    dangling_tags: list[tuple[str, str, str]] = field(default_factory=list)
    """``(repo:tag, digest, key)`` of tags on a digest without a revision link."""
    referenced: dict[str, Refs] = field(default_factory=dict)
    parents: dict[str, set[str]] = field(default_factory=dict)
    broken: dict[str, list[ScrubProblem]] = field(default_factory=dict)

    def broke(self, digest: str, problem: ScrubProblem) -> None:
        """``problem`` breaks the manifest ``digest`` (and the images above it)."""
        self.broken.setdefault(digest, []).append(problem)


def _note_truncation(problem: ScrubProblem, named_size: int | None) -> None:
    """A corrupt blob shorter than a manifest says it is: say it was truncated."""
    if named_size is None or problem.kind != BLOB_CORRUPT or "truncated" in problem.message:
        return
    actual = _corrupt_size(problem)
    if actual is not None and actual < named_size:
        problem.message = f"truncated: {actual} of {named_size} bytes (does not match its digest)"


def _digest_shape(parts: list[str]) -> str | None:
    """``<alg>/<hex>`` (a ``_layers`` link's directory): the digest."""
    digest = ":".join(parts)
    return digest if len(parts) == 2 and names.is_valid_digest(digest) else None


def _manifest_shape(parts: list[str]) -> str | None:
    """In ``_manifests``: ``revisions/<alg>/<hex>`` -> ``digest:<digest>``,
    ``tags/<tag>/current`` -> ``tag:<tag>``; None for the rest (tag history, the marker)."""
    if len(parts) == 3 and parts[0] == "revisions":
        digest = _digest_shape(parts[1:])
        return None if digest is None else f"digest:{digest}"
    if len(parts) == 3 and parts[0] == "tags" and parts[2] == "current":
        return f"tag:{parts[1]}" if names.is_valid_tag(parts[1]) else None
    return None


def _corrupt_size(problem: ScrubProblem) -> int | None:
    text = problem.message.partition("(")[2]
    number = text.partition(" bytes")[0]
    return int(number) if number.isdigit() else None


def _images(
    name: str, digest: str, tags: dict[str, list[str]], parents: dict[str, set[str]]
) -> list[str]:
    """The images a broken manifest breaks: the tags on it or on any index above it; itself
    by digest when no tag reaches it."""
    found: list[str] = []
    seen: set[str] = set()
    stack = [digest]
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        found += [f"{name}:{tag}" for tag in sorted(tags.get(current, ()))]
        stack.extend(sorted(parents.get(current, ())))
    return found or [f"{name}@{digest}"]


async def scrub_on(
    driver: StorageDriver,
    *,
    repair: bool = False,
    jobs: int = DEFAULT_JOBS,
    state_file: str | None = None,
    restart: bool = False,
    progress: Callable[[ScrubProgress], None] | None = None,
) -> tuple[ScrubReport, str | None]:
    """Scrub the storage behind ``driver``; the report and a warning (why it could not save
    its progress), if any."""
    scrubber = Scrubber(
        driver, repair=repair, jobs=jobs, state_file=state_file, restart=restart, progress=progress
    )
    report = await scrubber.run()
    return report, scrubber.warning
