"""The sweep: carry out a plan, kind by kind, in a few threads."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from embedded_registry.gc.mark import Problem
from embedded_registry.gc.plan import Removal, tree_file_bytes
from embedded_registry.gc.scan import Snapshot, digest_dirs, read_link
from embedded_registry.storage.fsutil import remove_stale_temp_files
from embedded_registry.storage.paths import Layout

SWEEP_ORDER = ("manifest", "blob", "layer_link", "tag_index", "upload", "repository")
"""Manifests go before their blobs (as Distribution does), links after the blobs they name."""

SWEEP_THREADS = 4
"""Removals of one kind run in this many threads: unlink and rmdir are kernel time that
threads overlap, and on overlay or network filesystems they dominate a sweep."""


PUSHED_AGAIN = "pushed again during the sweep"
"""Why a planned blob or link stayed: an upload committed it again while the sweep ran."""

REFRESHED = "used since the scan"
"""Why a planned blob was kept: its data was touched (a HEAD, GET, mount or re-push) after the
plan was made, so a client may be about to reference it."""

SWEEPING_SUFFIX = ".sweeping"
"""A blob's ``data`` is renamed to ``data.sweeping`` for the last check before it goes."""

SWEEP_JOURNAL = ".regtui-gc-sweeping"
"""Present under ``docker/registry/v2/`` while a sweep runs. Found at the start of the next GC
or server start, it means a sweep was killed: a blob may be left renamed aside, and
:func:`recover_interrupted_sweep` puts such blobs back."""


def _journal_path(snapshot_or_root: Snapshot | Layout) -> str:
    layout = snapshot_or_root.layout if isinstance(snapshot_or_root, Snapshot) else snapshot_or_root
    return os.path.join(layout.v2, SWEEP_JOURNAL)


def recover_interrupted_sweep(layout: Layout) -> list[str]:
    """Put back blobs a killed sweep left renamed aside; return their paths.

    Cheap when no sweep was interrupted (one ``stat``); otherwise one walk of the blobs.
    """
    journal = _journal_path(layout)
    if not os.path.exists(journal):
        return []
    restored = []
    for directory, _subdirs, files in os.walk(layout.blobs_dir):
        for name in files:
            if name != "data" + SWEEPING_SUFFIX:
                continue
            aside = os.path.join(directory, name)
            data = os.path.join(directory, "data")
            if os.path.exists(data):
                os.unlink(aside)  # a fresh push of the same bytes replaced it
            else:
                os.rename(aside, data)
                restored.append(data)
    # A ``_layers`` link renamed aside: back when its blob is there, else it goes.
    for directory, subdirs, files in os.walk(layout.repositories_dir):
        subdirs[:] = [d for d in subdirs if d != "_manifests" and d != "_uploads"]
        if "link" + SWEEPING_SUFFIX not in files:
            continue
        aside = os.path.join(directory, "link" + SWEEPING_SUFFIX)
        digest = read_link(aside)
        link = os.path.join(directory, "link")
        if (
            digest is not None
            and not os.path.exists(link)
            and os.path.exists(_data_path(layout, digest))
        ):
            os.rename(aside, link)
            restored.append(link)
        else:
            os.unlink(aside)
    os.unlink(journal)
    return restored


def execute(
    snapshot: Snapshot,
    removals: Iterable[Removal],
    problems: list[Problem],
    *,
    young: float | None = None,
) -> None:
    """Carry out a plan; a failure is recorded as a problem and the sweep goes on.

    Only the directory of each item goes (``<hex>/`` of a blob or link, the upload): parents are
    left in place, as Distribution does, so a concurrent writer never loses a directory it has
    just created.

    With ``young`` (the grace cutoff, a timestamp), each blob's data is checked again right
    before it goes: one modified after ``young`` (or, for a blob planned younger than that,
    after the scan) is kept and its removal marked ``skipped``.
    """
    by_kind: dict[str, list[Removal]] = {}
    for removal in removals:
        by_kind.setdefault(removal.kind, []).append(removal)
    journal = _journal_path(snapshot)
    if (by_kind.get("blob") and young is not None) or by_kind.get("layer_link"):
        with open(journal, "w") as handle:
            handle.write(f"{os.getpid()}\n")
    try:
        _execute_kinds(snapshot, by_kind, problems, young)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(journal)


def _execute_kinds(
    snapshot: Snapshot,
    by_kind: dict[str, list[Removal]],
    problems: list[Problem],
    young: float | None,
) -> None:

    def run(batch: list[Removal]) -> None:
        for removal in batch:
            _execute_one(snapshot, removal, problems, young)

    with ThreadPoolExecutor(SWEEP_THREADS) as pool:
        for kind in SWEEP_ORDER:
            batch = by_kind.get(kind, [])
            if kind == "repository":
                # A repository that links a blob kept after all is kept too (a client found
                # the blob through it and may be about to push a manifest there).
                refreshed = {r.digest for r in by_kind.get("blob", []) if r.skipped and r.digest}
                for removal in batch:
                    if refreshed and _links_any(removal.path, refreshed):
                        removal.skipped = REFRESHED
                batch = [r for r in batch if not r.skipped]
            if len(batch) < 2 * SWEEP_THREADS or kind == "repository":
                run(batch)
                continue
            step = -(-len(batch) // SWEEP_THREADS)
            futures = [pool.submit(run, batch[i : i + step]) for i in range(0, len(batch), step)]
            for future in futures:
                future.result()


def _data_path(layout: Layout, digest: str) -> str:
    algorithm, _, hex_part = digest.partition(":")
    return f"{layout.blobs_dir}/{algorithm}/{hex_part[:2]}/{hex_part}/data"


def _blob_data_path(snapshot: Snapshot, digest: str) -> str:
    return _data_path(snapshot.layout, digest)


def _execute_one(
    snapshot: Snapshot, removal: Removal, problems: list[Problem], young: float | None
) -> None:
    try:
        if (
            removal.kind == "blob"
            and young is not None
            and not _still_unused(removal, _blob_cutoff(snapshot, removal, young))
        ):
            removal.skipped = REFRESHED
            return
        # Re-check a link now: its blob may have been pushed again since the scan.
        if (
            removal.kind == "layer_link"
            and removal.digest is not None
            and not _link_still_unused(removal, _blob_data_path(snapshot, removal.digest))
        ):
            return
        if removal.kind == "upload":
            removal.size = tree_file_bytes(removal.path)
        elif removal.kind == "repository":
            removal.size = tree_file_bytes(removal.path, skip_nested=True)
        if removal.kind == "repository":
            _remove_repository(removal.path)
        else:
            only_file = _ONLY_FILE.get(removal.kind)
            if removal.kind == "blob" and young is not None:
                only_file = "data" + SWEEPING_SUFFIX  # renamed aside by _still_unused
            elif removal.kind == "layer_link":
                only_file = "link" + SWEEPING_SUFFIX  # renamed aside by _link_still_unused
            if removal.kind in ("blob", "layer_link"):
                live = "data" if removal.kind == "blob" else "link"
                if not _remove_only(removal.path, only_file or live, live):
                    removal.skipped = PUSHED_AGAIN
                    return
            else:
                _remove_dir(removal.path, only_file)
        removal.removed = True
    except FileNotFoundError:
        removal.size = 0
        removal.removed = True
    except OSError as exc:
        problems.append(Problem(removal.repo or "", removal.digest, f"{removal.path}: {exc}"))


def _link_still_unused(removal: Removal, blob_data: str) -> bool:
    """The last check of a ``_layers`` link whose blob was gone at the scan: rename the link
    aside, then look for the blob. An upload that commits the blob again links it after its
    data is in place, so either this check sees the data (the link is put back), or the
    upload comes later, finds no link and writes it again."""
    link = os.path.join(removal.path, "link")
    aside = link + SWEEPING_SUFFIX
    os.rename(link, aside)
    if os.path.exists(blob_data):
        os.replace(aside, link)
        return False
    return True


def _remove_only(path: str, name: str, live: str) -> bool:
    """Remove the file ``name`` of a blob or link directory, then the directory if it is
    empty; whether ``live`` (``data`` or ``link``) is absent afterwards.

    Never ``rmtree``: an upload may have put a fresh ``live`` file in the directory since the
    check, and it stays (the directory with it). Stale temporary files of killed writes are
    removed so that the directory can go.
    """
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(path, name))
    for attempt in range(2):
        try:
            os.rmdir(path)
            return True
        except FileNotFoundError:
            return True
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        if os.path.exists(os.path.join(path, live)):
            return False
        if attempt == 0:
            remove_stale_temp_files(Path(path))
    return True


def _links_any(repo_path: str, digests: set[str]) -> bool:
    """Whether a ``_layers`` link of the repository names one of ``digests``."""
    return any(digest in digests for digest, _ in digest_dirs(repo_path + "/_layers"))


def _blob_cutoff(snapshot: Snapshot, removal: Removal, young: float) -> float:
    """The mtime a planned blob's data may have and still go: the grace cutoff, or the mtime
    the scan saw when the blob was planned younger than that (no push activity around it).
    Any refresh after the scan moves the mtime past it."""
    st = snapshot.blob_stat(removal.digest) if removal.digest else None
    return max(young, st.st_mtime) if st is not None else young


def _still_unused(removal: Removal, young: float) -> bool:
    """The last check of a blob before its removal: is its data still older than ``young``?

    The registry refreshes a blob's mtime when a client HEADs, GETs, mounts or pushes it again
    (``BlobStore.refresh``), so a client told "the blob exists" a moment ago keeps it. The data
    is first renamed aside and then checked: a refresh that comes after the rename fails (the
    client sees 404 and uploads the blob), one that came before it is seen here and the data is
    put back. On ``True`` the data is left under its ``.sweeping`` name for the removal.
    """
    data = os.path.join(removal.path, "data")
    if os.stat(data).st_mtime > young:
        return False
    aside = data + SWEEPING_SUFFIX
    os.rename(data, aside)
    if os.stat(aside).st_mtime > young:
        # Refreshed between the two checks: put it back (a copy pushed meanwhile has the same
        # bytes, so replacing it is harmless).
        os.replace(aside, data)
        return False
    return True


_ONLY_FILE = {"blob": "data", "manifest": "link", "layer_link": "link", "tag_index": "link"}


def _remove_dir(path: str, only_file: str | None) -> None:
    """Remove a blob's or a link's directory: its one file and itself (two system calls);
    anything more in it goes through ``shutil.rmtree``."""
    if only_file is not None:
        try:
            os.unlink(os.path.join(path, only_file))
            os.rmdir(path)
            return
        except FileNotFoundError:
            if not os.path.isdir(path):
                raise
        except OSError:
            pass
    shutil.rmtree(path)


def _remove_repository(path: str) -> None:
    """Remove a repository's own directories; the directory itself if nothing else is in it
    (a nested repository such as ``a/b`` under ``a`` stays)."""
    for name in ("_layers", "_manifests", "_uploads"):
        target = os.path.join(path, name)
        if os.path.isdir(target):
            shutil.rmtree(target)
    with contextlib.suppress(OSError):
        os.rmdir(path)
