"""Garbage collection of a storage directory in CNCF Distribution's layout.

The algorithm is the one of Distribution's ``registry garbage-collect``
(``registry/storage/garbagecollect.go``), explained the way an operator needs it:

* **Mark.** In every repository, every manifest revision (with ``delete_untagged``: only the
  revisions a tag currently points at) marks itself, its config and its layers. An index marks its
  child manifests and they mark their own blobs, so a tagged multi-platform image keeps every
  platform (Distribution 2.8 drops the children under ``--delete-untagged``: distribution#3004).
  With ``delete_untagged`` a manifest whose ``subject`` is kept (a signature, an SBOM) is kept too.
* **Sweep.** Blobs nothing marked are deleted. With ``delete_untagged`` the revisions nobody keeps
  are deleted, with their tag-history entries.

Where Distribution is unsafe or untidy, regtui differs and says so in the report:

* a manifest that cannot be read (truncated, not JSON) is reported and kept, and every blob its
  repository links is kept with it (Distribution aborts the whole run);
* ``_layers`` links to blobs that are gone and tag-history entries of removed manifests are removed
  (Distribution leaves them behind: distribution#3851); with ``remove_empty_repos`` repositories
  left with nothing go too (distribution#1585);
* **pushes in flight are safe, and a deleted image is freed at once.** GC removes nothing a push
  in flight may need, and keeps nothing else for longer than it must:

  - an upload session (``_uploads/<uuid>``) is never removed, whatever the grace period (0
    included), until it has been idle for upload purging's age (168 h, as Distribution's
    purger); the sweep never removes a blob's directory in which an upload has just put a
    fresh ``data``, and a blob upload that meets GC re-creates what GC removed (never a 500);
  - the grace period (``storage.maintenance.gc.graceperiod``, 1 h) protects a young
    unreferenced blob, link or untagged manifest **only where a push is in flight**: its
    repository has an upload session written within the grace period, or the blob was written,
    linked or refreshed at or after the repository's last manifest commit or delete (its
    manifest may still come). Everything else goes at once: after an operator deletes an image
    and nothing is being pushed there, a GC with the default configuration frees its blobs.
    :mod:`embedded_registry.gc.activity` says exactly how activity is read from the disk (the
    bundled registry and Distribution leave the same traces, so ``regtui gc --root`` on a
    stopped registry:2 frees a just-deleted image too);
  - the bundled registry holds its commit lock from the start of the mark to the end of the
    sweep: a manifest PUT naming a blob GC is about to remove either commits before GC marks
    (and the blob is kept) or waits and then fails with MANIFEST_BLOB_UNKNOWN; an acknowledged
    manifest never names a swept blob. A push whose blobs were all uploaded before another
    push's commit in the same repository, and that pauses with no upload session open, may
    lose them to a GC run in that pause: its manifest PUT then fails cleanly and the client
    pushes again (nothing acknowledged is lost).
* a blob a client has just been told about survives too: the bundled registry refreshes a blob's
  mtime when it answers a HEAD or GET, a mount or a re-push (at most once a second, or once per
  tenth of a shorter grace period), and the sweep checks each blob's mtime again right before
  removing it; a blob used since the scan is kept and reported (``refreshed_blobs``). With a
  grace period of 0 nothing but upload sessions is protected, on purpose.
* a real run removes the temporary files of atomic writes left by a killed writer (older than
  an hour: a write in flight is never touched).

Every removal is planned first: a dry run and a real run build the same plan, so a dry run lists
exactly what a real run would remove, with sizes and totals.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from embedded_registry.gc.activity import PushActivity
from embedded_registry.gc.collect import collect_garbage_on
from embedded_registry.gc.mark import (
    ROLE_CONFIG,
    ROLE_LAYER,
    ROLE_MANIFEST,
    MarkResult,
    Problem,
    RepoMark,
    mark,
)
from embedded_registry.gc.offline import (
    ACTIVITY_WINDOW,
    SERVING_MARKER,
    RegistryActive,
    remove_serving_marker,
    write_serving_marker,
    writer_activity,
)
from embedded_registry.gc.plan import (
    UPLOAD_MAX_IDLE,
    GcReport,
    Removal,
    decide,
    plan,
    sweepable_blobs,
)
from embedded_registry.gc.scan import (
    DEFAULT_GRACE_PERIOD,
    MAX_MANIFEST_BYTES,
    RepoSnapshot,
    Snapshot,
    Upload,
    scan,
)
from embedded_registry.gc.sweep import (
    SWEEP_CONCURRENCY,
    SWEEP_ORDER,
    execute,
    recover_interrupted_sweep,
)
from embedded_registry.storage.driver.filesystem import FilesystemDriver
from embedded_registry.storage.fsutil import STALE_TEMP_AGE

__all__ = [
    "ACTIVITY_WINDOW",
    "DEFAULT_GRACE_PERIOD",
    "MAX_MANIFEST_BYTES",
    "ROLE_CONFIG",
    "ROLE_LAYER",
    "ROLE_MANIFEST",
    "SERVING_MARKER",
    "STALE_TEMP_AGE",
    "SWEEP_CONCURRENCY",
    "SWEEP_ORDER",
    "UPLOAD_MAX_IDLE",
    "GcReport",
    "MarkResult",
    "Problem",
    "PushActivity",
    "RegistryActive",
    "Removal",
    "RepoMark",
    "RepoSnapshot",
    "Snapshot",
    "Upload",
    "collect_garbage",
    "decide",
    "execute",
    "mark",
    "plan",
    "recover_interrupted_sweep",
    "remove_serving_marker",
    "scan_root",
    "sweepable_blobs",
    "write_serving_marker",
    "writer_activity",
]


def scan_root(root: Path | str) -> Snapshot:
    """What a storage root holds, from one listing through the filesystem driver."""
    return asyncio.run(scan(FilesystemDriver(root)))


def collect_garbage(
    root: Path | str,
    *,
    dry_run: bool = False,
    delete_untagged: bool = False,
    remove_empty_repos: bool = False,
    grace_period: float = DEFAULT_GRACE_PERIOD,
    now: float | None = None,
    refuse_if_active: bool = False,
    upload_max_idle: float = UPLOAD_MAX_IDLE,
    progress: Callable[[str], None] | None = None,
) -> GcReport:
    """Mark and sweep one storage root through the filesystem driver (the same GC as on any
    driver, :func:`embedded_registry.gc.collect.collect_garbage_on`); a dry run plans and
    removes nothing.

    With ``refuse_if_active`` (offline use), raise :class:`RegistryActive` when a registry seems
    to be writing to the root. A real run first puts back what a killed sweep left and removes
    temporary files of atomic writes that a killed writer left (older than ``STALE_TEMP_AGE``);
    upload sessions idle for longer than ``upload_max_idle`` go.
    """

    def refuse(snapshot: Snapshot) -> None:
        reason = writer_activity(snapshot, root=root, now=now)
        if reason is not None:
            raise RegistryActive(reason)

    report: GcReport = asyncio.run(
        collect_garbage_on(
            FilesystemDriver(root),
            dry_run=dry_run,
            delete_untagged=delete_untagged,
            remove_empty_repos=remove_empty_repos,
            grace_period=grace_period,
            now=now,
            upload_max_idle=upload_max_idle,
            where=str(root),
            check=refuse if refuse_if_active else None,
            progress=progress,
        )
    )
    return report
