"""The scrub as the app runs it: on the bundled registry, through its extension
(``tui.client.ext.scrub_registry``), its progress handed to the screen as it streams.

Elsewhere a scrub needs the storage itself: the reason says what to run instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tui.client import RegistryClient
from tui.data.backends import ExtensionBackend
from tui.data.storage import StorageBackend
from tui.logic.scrub import broken_by_repository

UNAVAILABLE = (
    "scrubbing reads the storage itself: only the bundled registry (regtui serve) offers it "
    "over the API. For a registry:2 directory or bucket, run `regtui scrub --root DIR` or "
    "`regtui scrub --config FILE`."
)


@dataclass(frozen=True)
class ScrubRow:
    """One problem, as the screen's table shows it."""

    severity: str
    kind: str
    digest: str | None
    repo: str | None
    message: str
    images: tuple[str, ...]
    repaired: str | None


@dataclass(frozen=True)
class ScrubView:
    rows: tuple[ScrubRow, ...]
    broken: dict[str, tuple[str, ...]]
    """Broken images by repository (what the catalog marks)."""
    blobs: int
    bytes: int
    repositories: int
    repair: bool
    resumed: bool

    @property
    def clean(self) -> bool:
        return not any(row.severity == "error" for row in self.rows)


def scrub_unavailable_reason(backend: StorageBackend | None) -> str | None:
    """Why this storage source cannot be scrubbed from the app, or None when it can."""
    if backend is None:
        return "Still finding out what this registry offers: wait a moment."
    if isinstance(backend, ExtensionBackend):
        return None
    return UNAVAILABLE


async def run_scrub(
    client: RegistryClient,
    *,
    repair: bool = False,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> ScrubView:
    """Scrub the bundled registry behind ``client``."""
    from tui.client import ext

    result = await ext.scrub_registry(client, repair=repair, progress=progress)
    rows = tuple(
        ScrubRow(
            severity=p.severity,
            kind=p.kind,
            digest=p.digest,
            repo=p.repo,
            message=p.message,
            images=p.images,
            repaired=p.repaired,
        )
        for p in result.problems
    )
    errors = [image for row in rows if row.severity == "error" for image in row.images]
    return ScrubView(
        rows=rows,
        broken=broken_by_repository(errors),
        blobs=result.blobs,
        bytes=result.bytes,
        repositories=result.repositories,
        repair=bool(result.document.get("repair")),
        resumed=result.resumed,
    )
