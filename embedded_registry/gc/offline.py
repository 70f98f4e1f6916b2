"""Offline safety: is a registry writing to this root right now?"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

from embedded_registry.gc.scan import Snapshot, stat_or_none


class RegistryActive(RuntimeError):
    """A registry seems to be writing to the storage root: GC offline would be unsafe."""


# -- offline safety ---------------------------------------------------------------------------

SERVING_MARKER = ".regtui-serving"
"""A file at the storage root that a running bundled registry holds: ``{"pid": N, "addr": ...}``.
Distribution writes no such file; for it, only recent writes can be seen."""

ACTIVITY_WINDOW = 60.0
"""Seconds: a write this recent means a registry is probably writing to the root right now."""


def write_serving_marker(root: Path | str, addr: str) -> Path:
    """Mark ``root`` as served by this process (the bundled registry calls this at start)."""
    path = Path(root) / SERVING_MARKER
    path.write_text(json.dumps({"pid": os.getpid(), "addr": addr}))
    return path


def remove_serving_marker(root: Path | str) -> None:
    with contextlib.suppress(FileNotFoundError):
        (Path(root) / SERVING_MARKER).unlink()


def _marker_owner(root: Path) -> str | None:
    try:
        doc = json.loads((root / SERVING_MARKER).read_text())
        pid = int(doc["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None  # a stale marker of a registry that has gone
    except PermissionError:
        pass  # alive, owned by someone else
    return f"a bundled registry (pid {pid}, {doc.get('addr', '?')}) is serving it"


def writer_activity(
    snapshot: Snapshot, *, now: float | None = None, window: float = ACTIVITY_WINDOW
) -> str | None:
    """Why a registry seems to be writing to this root, or None when nothing suggests it.

    Detectable: the bundled registry's serving marker, and writes within ``window`` seconds
    (uploads, blobs, manifest revisions). Not detectable: a registry that runs but is idle.
    """
    owner = _marker_owner(snapshot.layout.root)
    if owner is not None:
        return owner
    now = time.time() if now is None else now
    newest: tuple[float, str] = (0.0, "")
    for repo in snapshot.repos:
        for upload in repo.uploads:
            newest = max(newest, (upload.last_activity, f"an upload in {repo.name}"))
        for digest, st in repo.revisions.items():
            newest = max(newest, (st.st_mtime, f"manifest {digest[:19]} in {repo.name}"))
        # Distribution removes an upload's directory once committed: _uploads itself changes.
        for sub, what in (("_uploads", "an upload"), ("_manifests/tags", "a tag")):
            dir_st = stat_or_none(f"{repo.path}/{sub}")
            if dir_st is not None:
                newest = max(newest, (dir_st.st_mtime, f"{what} in {repo.name}"))
    # A new blob creates its directory: the mtime of the <xx> prefix directories tells.
    for prefix in {os.path.dirname(p) for p in snapshot.blob_dirs.values()}:
        prefix_st = stat_or_none(prefix)
        if prefix_st is not None:
            newest = max(newest, (prefix_st.st_mtime, f"a blob under {os.path.basename(prefix)}/"))
    age = now - newest[0]
    if age < window:
        return f"{newest[1]} was written {max(age, 0.0):.0f} s ago"
    return None
