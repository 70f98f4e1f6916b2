"""Offline safety: is a registry writing to this root right now?"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

from embedded_registry.gc.scan import Snapshot


class RegistryActive(RuntimeError):
    """A registry seems to be writing to the storage root: GC offline would be unsafe."""


# -- offline safety ---------------------------------------------------------------------------

SERVING_MARKER = ".regtui-serving"
"""A file at the storage root that a running bundled registry holds: ``{"pid": N, "addr": ...}``.
Distribution writes no such file; for it, only recent writes can be seen."""

ACTIVITY_WINDOW = 60.0
"""Seconds: an upload session written this recently means a push is going on right now."""


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
    snapshot: Snapshot,
    *,
    root: Path | str | None = None,
    now: float | None = None,
    window: float = ACTIVITY_WINDOW,
) -> str | None:
    """Why a registry seems to be serving this root right now, or None when nothing says so.

    Signs of a live server: the bundled registry's serving marker naming a live process, and an
    upload session written within ``window`` seconds (a push going on). Blobs, manifests and tags
    written a moment ago are no such sign: an operator who stops a registry right after a push or
    a delete (as the how-tos say) must be able to collect at once, and GC's grace rule keeps what
    a push in flight needs (:mod:`embedded_registry.gc.activity`). Not detectable: a registry
    that runs but is idle.
    """
    owner = _marker_owner(Path(root)) if root is not None else None
    if owner is not None:
        return owner
    now = time.time() if now is None else now
    newest: tuple[float, str] = (0.0, "")
    for repo in snapshot.repos:
        for upload in repo.uploads:
            newest = max(newest, (upload.last_activity, f"an upload session in {repo.name}"))
    age = now - newest[0]
    if age < window:
        return f"{newest[1]} was written {max(age, 0.0):.0f} s ago"
    return None
