"""Deletion: plans, manifest DELETE by digest, and untag (tag DELETE or a placeholder)."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

from tui.client._content import Content
from tui.client._digests import compute_digest, is_digest
from tui.client.errors import (
    NotFoundError,
    RegistryClientError,
    SiblingTagsLostError,
)

if TYPE_CHECKING:
    from tui.client.models import DeletePlan, UntagResult

__all__ = ["Deletion"]

EMPTY_JSON = b"{}"


class Deletion(Content):
    """Deletion by digest and untagging, never removing more than asked."""

    async def tags_for_digest(self, repo: str, digest: str) -> list[str]:
        """Every tag of ``repo`` that points at ``digest`` (HEAD per tag, concurrently)."""
        tags = await self.list_tags(repo)

        async def points_here(tag: str) -> bool:
            try:
                return (await self.head_manifest(repo, tag)).digest == digest
            except NotFoundError:
                return False  # deleted meanwhile

        found = await asyncio.gather(*(points_here(tag) for tag in tags))
        return sorted(tag for tag, hit in zip(tags, found, strict=True) if hit)

    # ------------------------------------------------------------------ deletion
    async def plan_delete(self, repo: str, digest: str) -> DeletePlan:
        """What deleting ``repo@digest`` removes: itself and every tag on it (nothing yet)."""
        from tui.client.models import DeletePlan, ImageIndex

        result = await self.get_manifest(repo, digest)
        tags, referrers = await asyncio.gather(
            self.tags_for_digest(repo, digest), self.get_referrers(repo, digest)
        )
        children = result.manifest.manifests if isinstance(result.manifest, ImageIndex) else ()
        return DeletePlan(
            repo=repo,
            digest=digest,
            media_type=result.media_type,
            size=result.size,
            tags=tuple(tags),
            children=tuple(children),
            referrers=tuple(referrers),
        )

    async def delete_manifest(self, repo: str, digest: str) -> None:
        if not is_digest(digest):
            raise RegistryClientError(
                f"Refusing to delete by tag {digest!r}: deletion is by digest",
                title="Invalid digest",
            )
        response = await self.request("DELETE", f"/v2/{repo}/manifests/{digest}")
        self.raise_for_status(response, f"manifest {repo}@{digest}")

    async def untag(self, repo: str, tag: str, *, dry_run: bool = False) -> UntagResult:
        """Remove ``tag`` only; other tags on the same manifest survive.

        The OCI tag DELETE first; where the registry refuses it (Distribution 2.8 answers
        ``UNSUPPORTED``), move the tag onto a tiny manifest of our own and delete that one.
        """
        from tui.client.models import UntagResult

        if is_digest(tag):
            raise RegistryClientError(f"{tag!r} is a digest, not a tag", title="Invalid tag")
        head = await self.head_manifest(repo, tag)
        siblings = tuple(t for t in await self.tags_for_digest(repo, head.digest) if t != tag)
        if dry_run:
            return UntagResult(repo, tag, head.digest, "dry-run", siblings)
        response = await self.request("DELETE", f"/v2/{repo}/manifests/{tag}")
        if response.status_code in (200, 202, 204):
            await self._check_siblings(repo, tag, head.digest, siblings)
            return UntagResult(repo, tag, head.digest, "tag-delete", siblings)
        if response.status_code == 405 or response.status_code not in (400, 501):
            # 405: the registry refuses deletes altogether (Distribution with delete disabled,
            # Docker Hub). The placeholder could be pushed but never deleted, so nothing is
            # touched. Anything but 400/501 is a real error, reported as it is.
            self.raise_for_status(response, f"tag {repo}:{tag}")
        placeholder = await self._untag_with_placeholder(repo, tag, head.digest)
        await self._check_siblings(repo, tag, head.digest, siblings)
        return UntagResult(repo, tag, head.digest, "placeholder", siblings, placeholder)

    async def _untag_with_placeholder(self, repo: str, tag: str, digest: str) -> str:
        """Move ``tag`` onto a placeholder and delete that; put ``tag`` back if the delete fails.

        A registry that cannot delete tags (Distribution 2.8 answers a tag DELETE with 400)
        deletes manifests by digest, and with them only the tags that point at them: ours.
        Should the registry refuse that delete after all, ``tag`` is restored to ``digest`` so
        the operator never ends up with a tag on an empty manifest.
        """
        original = await self.get_manifest(repo, digest)
        placeholder = await self._put_placeholder(repo, tag)
        try:
            await self.delete_manifest(repo, placeholder)
        except RegistryClientError as error:
            try:
                await self.put_manifest(repo, tag, original.raw, original.media_type)
            except RegistryClientError as restore_error:
                raise RegistryClientError(
                    f"Could not untag {repo}:{tag} ({error}) and could not put it back on "
                    f"{digest} ({restore_error}): it now points at the empty placeholder "
                    f"{placeholder}; tag {digest} as {tag} again",
                    title="Untag failed",
                ) from error
            raise RegistryClientError(
                f"Could not untag {repo}:{tag}: {error}; the tag was put back on {digest}",
                title="Untag failed",
            ) from error
        return placeholder

    async def _check_siblings(
        self, repo: str, tag: str, digest: str, siblings: tuple[str, ...]
    ) -> None:
        """Raise :class:`SiblingTagsLostError` if a sibling of ``tag`` stopped resolving.

        A registry that implements the tag DELETE as a DELETE of the manifest it points at
        takes every other tag of that manifest with it. Nothing can undo that from here, but
        the operator must hear of it at once, with the names to push again. A sibling that
        now points elsewhere was moved by someone else: that is not our doing.
        """

        async def vanished(sibling: str) -> bool:
            try:
                await self.head_manifest(repo, sibling)
            except NotFoundError:
                return True
            return False

        gone = await asyncio.gather(*(vanished(sibling) for sibling in siblings))
        lost = tuple(sibling for sibling, is_gone in zip(siblings, gone, strict=True) if is_gone)
        if lost:
            raise SiblingTagsLostError(
                f"Untagging {repo}:{tag} also removed {', '.join(lost)} on {self.host}: the "
                f"registry deleted the manifest {digest} instead of only the tag; push that "
                f"image again to restore {'them' if len(lost) > 1 else 'it'}",
                repo=repo,
                tag=tag,
                digest=digest,
                lost=lost,
            )

    async def _put_placeholder(self, repo: str, tag: str) -> str:
        """Point ``tag`` at a fresh, unique, empty OCI manifest; return its digest."""
        from tui.client.models import OCI_EMPTY, OCI_MANIFEST

        empty_digest = compute_digest(EMPTY_JSON)
        await self.upload_blob(repo, EMPTY_JSON, empty_digest)
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_EMPTY, "digest": empty_digest, "size": len(EMPTY_JSON)},
            "layers": [],
            "annotations": {
                "io.github.regtui.placeholder": f"untag {tag} {_unique()}",
            },
        }
        raw = json.dumps(manifest, separators=(",", ":"), sort_keys=True).encode()
        await self.put_manifest(repo, tag, raw, OCI_MANIFEST)
        return compute_digest(raw)


def _unique() -> str:
    import uuid  # only untag's placeholder needs it (uuid loads the platform module)

    return str(uuid.uuid4())
