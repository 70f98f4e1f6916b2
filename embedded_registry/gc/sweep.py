"""The sweep: carry out a plan, kind by kind, in a few threads."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from embedded_registry.gc.mark import Problem
from embedded_registry.gc.plan import Removal, tree_file_bytes
from embedded_registry.gc.scan import Snapshot

SWEEP_ORDER = ("manifest", "blob", "layer_link", "tag_index", "upload", "repository")
"""Manifests go before their blobs (as Distribution does), links after the blobs they name."""

SWEEP_THREADS = 4
"""Removals of one kind run in this many threads: unlink and rmdir are kernel time that
threads overlap, and on overlay or network filesystems they dominate a sweep."""


def execute(snapshot: Snapshot, removals: Iterable[Removal], problems: list[Problem]) -> None:
    """Carry out a plan; a failure is recorded as a problem and the sweep goes on.

    Only the directory of each item goes (``<hex>/`` of a blob or link, the upload): parents are
    left in place, as Distribution does, so a concurrent writer never loses a directory it has
    just created.
    """
    by_kind: dict[str, list[Removal]] = {}
    for removal in removals:
        by_kind.setdefault(removal.kind, []).append(removal)

    def run(batch: list[Removal]) -> None:
        for removal in batch:
            _execute_one(snapshot, removal, problems)

    with ThreadPoolExecutor(SWEEP_THREADS) as pool:
        for kind in SWEEP_ORDER:
            batch = by_kind.get(kind, [])
            if len(batch) < 2 * SWEEP_THREADS or kind == "repository":
                run(batch)
                continue
            step = -(-len(batch) // SWEEP_THREADS)
            futures = [pool.submit(run, batch[i : i + step]) for i in range(0, len(batch), step)]
            for future in futures:
                future.result()


def _blob_data_path(snapshot: Snapshot, digest: str) -> str:
    algorithm, _, hex_part = digest.partition(":")
    return f"{snapshot.layout.blobs_dir}/{algorithm}/{hex_part[:2]}/{hex_part}/data"


def _execute_one(snapshot: Snapshot, removal: Removal, problems: list[Problem]) -> None:
    try:
        # Re-check a link now: its blob may have been pushed again since the scan.
        if (
            removal.kind == "layer_link"
            and removal.digest is not None
            and os.path.exists(_blob_data_path(snapshot, removal.digest))
        ):
            return
        if removal.kind == "upload":
            removal.size = tree_file_bytes(removal.path)
        elif removal.kind == "repository":
            removal.size = tree_file_bytes(removal.path, skip_nested=True)
        if removal.kind == "repository":
            _remove_repository(removal.path)
        else:
            _remove_dir(removal.path, _ONLY_FILE.get(removal.kind))
        removal.removed = True
    except FileNotFoundError:
        removal.size = 0
        removal.removed = True
    except OSError as exc:
        problems.append(Problem(removal.repo or "", removal.digest, f"{removal.path}: {exc}"))


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
