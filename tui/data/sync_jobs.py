"""What ``regtui sync`` plans and reports, one image at a time: :class:`ImageJob` and
:class:`SyncOutcome` (light: no asyncio, no client), shared by the engine
(:mod:`tui.data.sync`) and the quick check of unchanged sources (:mod:`tui.data.sync_check`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from tui.logic.sync_spec import target_repository

if TYPE_CHECKING:
    from tui.data.copy import CopyResult
    from tui.logic.sync_spec import Entry

__all__ = ["ImageJob", "SyncOutcome"]


class ImageJob(NamedTuple):
    """One tag (or digest) of one source repository and where it goes. (Named tuples, not
    dataclasses: see :mod:`tui.logic.sync_spec`.)"""

    entry: Entry
    source_registry: str
    source_repository: str
    reference: str
    """The tag, or the digest of an image named by digest."""
    target_registry: str
    target_repository: str
    source_digest: str | None
    """What the target's tag will point at (the platform's manifest when one is chosen)."""
    target_digest: str | None
    unchanged: bool

    @classmethod
    def compared(
        cls,
        entry: Entry,
        repository: str,
        reference: str,
        source_digest: str | None,
        target_digest: str | None,
        *,
        unchanged: bool | None = None,
    ) -> ImageJob:
        """The job of ``reference`` of the source's ``repository``, as ``entry`` sends it to
        its target (:func:`~tui.logic.sync_spec.target_repository`); unchanged when the target
        already points at ``source_digest`` (unless ``unchanged`` says otherwise: the engine's
        referrers can make it changed)."""
        return cls(
            entry=entry,
            source_registry=entry.source_registry,
            source_repository=repository,
            reference=reference,
            target_registry=entry.target_registry,
            target_repository=target_repository(entry, repository),
            source_digest=source_digest,
            target_digest=target_digest,
            unchanged=target_digest == source_digest if unchanged is None else unchanged,
        )

    @property
    def tag(self) -> str | None:
        return None if self.reference.startswith("sha256:") else self.reference

    @property
    def source(self) -> str:
        at = "@" if self.tag is None else ":"
        return f"{self.source_registry}/{self.source_repository}{at}{self.reference}"

    @property
    def target(self) -> str:
        at = "@" if self.tag is None else ":"
        return f"{self.target_registry}/{self.target_repository}{at}{self.reference}"


class SyncOutcome(NamedTuple):
    job: ImageJob | None
    status: str
    """``unchanged``, ``copied``, ``planned`` (a dry run), or ``failed``."""
    error: str | None = None
    result: CopyResult | None = None
    where: str = ""
    """For a failure before any job: the entry (``sync[N]``) and what failed."""
