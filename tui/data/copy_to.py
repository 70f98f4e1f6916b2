"""The app's "Copy to…" and retag: one image of the registry the app is on, copied to another
place (this registry, another one, an OCI layout or a ``docker save`` archive) by the engine of
``regtui cp`` (:mod:`tui.data.copy`), or given new tags in place (no Textual)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tui.client import RegistryClient
from tui.client.models import Platform
from tui.client.reference import TAG_RE, Reference, api_host
from tui.data.copy import CopyProgress, CopyResult, copy_image, open_destination
from tui.data.copy_io import RegistrySource
from tui.logic.copy_plan import (
    Location,
    RegistryLocation,
    destination_tags,
    parse_location,
    parse_platform,
)

__all__ = ["CopyRequest", "copy_from", "parse_request", "retag"]


@dataclass(frozen=True)
class CopyRequest:
    destination: Location
    platform: Platform | None
    """``None``: the whole image, every platform."""
    referrers: bool


def parse_request(destination: str, platform: str, referrers: bool) -> CopyRequest:
    """What the dialog's fields ask for; ``ValueError`` with one line for a bad field."""
    location = parse_location(destination.strip())
    if isinstance(location, RegistryLocation) and location.ref.digest is not None:
        raise ValueError("a destination takes a tag, not a digest")
    text = platform.strip() or "all"
    return CopyRequest(location, None if text == "all" else parse_platform(text), referrers)


async def copy_from(
    client: RegistryClient,
    repository: str,
    reference: str,
    request: CopyRequest,
    *,
    tag: str | None = None,
    progress: Callable[[CopyProgress], None] | None = None,
) -> CopyResult:
    """Copy ``repository``'s ``reference`` (on ``client``'s registry) as ``request`` asks, with
    ``regtui cp``'s engine and its rule for the tag written (``tag``: the source's).

    On the same registry the app's client is used (blobs are mounted); another registry gets a
    client of its own, with the credentials the Docker config and ``REGTUI_*`` give for it:
    never this registry's."""
    location = request.destination
    source_at = RegistryLocation(
        Reference(client.registry, repository, tag=tag, digest=None if tag else reference)
    )
    own: RegistryClient | None = None
    target = None
    if isinstance(location, RegistryLocation):
        if location.ref.api_host == api_host(client.host):
            target = client
        else:
            own = target = RegistryClient(location.ref.registry, fast_after=0)
            await own.__aenter__()
    source = RegistrySource(client, repository, reference)
    destination = open_destination(location, target)
    try:
        return await copy_image(
            source,
            destination,
            tags=destination_tags(source_at, location),
            platform=request.platform,
            all_platforms=request.platform is None,
            referrers=request.referrers,
            progress=progress,
        )
    finally:
        await destination.close()
        if own is not None:
            await own.aclose()


async def retag(client: RegistryClient, repository: str, reference: str, tags: list[str]) -> str:
    """Put the manifest ``reference`` names under each of ``tags`` too (no data moves); its
    digest. ``ValueError`` for a tag the spec does not allow, before anything is written."""
    bad = [t for t in tags if not TAG_RE.match(t)]
    if bad or not tags:
        raise ValueError(f"not a tag: {bad[0]!r}" if bad else "no tag given")
    manifest = await client.get_manifest(repository, reference)
    for new in tags:
        await client.put_manifest_checked(repository, new, manifest.raw, manifest.media_type)
    return manifest.digest
