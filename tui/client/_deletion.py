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
    TagMovedError,
)

if TYPE_CHECKING:
    from tui.client.models import DeletePlan, UntagResult

__all__ = ["Deletion"]

EMPTY_JSON = b"{}"


class Deletion(Content):
    """Deletion by digest and untagging, never removing more than asked."""

    async def tags_for_digest(self, repo: str, digest: str) -> list[str]:
        """Every tag of ``repo`` that points at ``digest`` (HEAD per tag, concurrently)."""
        return sorted(
            tag for tag, target in (await self.tag_digests(repo)).items() if target == digest
        )

    async def tag_digests(self, repo: str) -> dict[str, str]:
        """Every tag of ``repo`` -> the digest it points at now (tags/list, then a HEAD per tag,
        concurrently); a tag deleted meanwhile is left out, a repository gone gives ``{}``."""
        try:
            tags = await self.list_tags(repo)
        except NotFoundError:
            return {}

        async def target(tag: str) -> str | None:
            try:
                return (await self.head_manifest(repo, tag)).digest
            except NotFoundError:
                return None  # deleted meanwhile

        found = await asyncio.gather(*(target(tag) for tag in tags))
        return {tag: digest for tag, digest in zip(tags, found, strict=True) if digest is not None}

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

    async def untag(
        self,
        repo: str,
        tag: str,
        *,
        dry_run: bool = False,
        expected_digest: str | None = None,
    ) -> UntagResult:
        """Remove ``tag`` only; other tags on the same manifest survive.

        The OCI tag DELETE first; where the registry refuses it (Distribution 2.8 answers
        ``UNSUPPORTED``), move the tag onto a tiny manifest of our own and delete that one.

        The API deletes a tag by name, whatever it points at, and has no compare-and-swap. So
        the tag is looked up again right before the request that removes it (the DELETE, or
        the PUT of the placeholder), and :class:`TagMovedError` is raised, nothing removed,
        when it no longer points at ``expected_digest`` (by default: the digest it pointed at
        when this call began). What is left is the time of one request: a push of the same
        tag landing between that HEAD and the registry handling our DELETE or PUT.
        """
        from tui.client.models import UntagResult

        if is_digest(tag):
            raise RegistryClientError(f"{tag!r} is a digest, not a tag", title="Invalid tag")
        head = await self.head_manifest(repo, tag)
        digest = expected_digest or head.digest
        if head.digest != digest:
            raise self._moved(repo, tag, digest, head.digest)
        siblings = tuple(t for t in await self.tags_for_digest(repo, digest) if t != tag)
        if dry_run:
            return UntagResult(repo, tag, digest, "dry-run", siblings)
        await self._still_on(repo, tag, digest)
        response = await self.request("DELETE", f"/v2/{repo}/manifests/{tag}")
        if response.status_code in (200, 202, 204):
            await self._check_siblings(repo, tag, digest, siblings)
            return UntagResult(repo, tag, digest, "tag-delete", siblings)
        if response.status_code == 405 or response.status_code not in (400, 501):
            # 405: the registry refuses deletes altogether (Distribution with delete disabled,
            # Docker Hub). The placeholder could be pushed but never deleted, so nothing is
            # touched. Anything but 400/501 is a real error, reported as it is.
            self.raise_for_status(response, f"tag {repo}:{tag}")
        placeholder = await self._untag_with_placeholder(repo, tag, digest)
        await self._check_siblings(repo, tag, digest, siblings)
        return UntagResult(repo, tag, digest, "placeholder", siblings, placeholder)

    def _moved(self, repo: str, tag: str, expected: str, actual: str) -> TagMovedError:
        return TagMovedError(
            f"{repo}:{tag} now points at {actual}, not {expected}: pushed again since, left alone",
            repo=repo,
            tag=tag,
            expected=expected,
            actual=actual,
        )

    async def _still_on(self, repo: str, tag: str, digest: str) -> None:
        """Raise :class:`TagMovedError` unless ``tag`` points at ``digest`` right now."""
        actual = (await self.head_manifest(repo, tag)).digest
        if actual != digest:
            raise self._moved(repo, tag, digest, actual)

    async def _untag_with_placeholder(self, repo: str, tag: str, digest: str) -> str:
        """Move ``tag`` onto a placeholder and delete that; put ``tag`` back if the delete fails.

        A registry that cannot delete tags (Distribution 2.8 answers a tag DELETE with 400)
        deletes manifests by digest, and with them only the tags that point at them: ours.
        Should the registry refuse that delete after all, ``tag`` is restored to ``digest`` so
        the operator never ends up with a tag on an empty manifest. Everything the PUT needs is
        made first, so that the check that ``tag`` still points at ``digest`` comes right
        before the PUT that overwrites it.
        """
        original = await self.get_manifest(repo, digest)
        raw = await self._placeholder(repo, tag)
        await self._still_on(repo, tag, digest)
        placeholder = await self._put_placeholder(repo, tag, raw)
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

    async def _placeholder(self, repo: str, tag: str) -> bytes:
        """A fresh, unique, empty OCI manifest for ``tag``, its config blob uploaded."""
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
        return json.dumps(manifest, separators=(",", ":"), sort_keys=True).encode()

    async def _put_placeholder(self, repo: str, tag: str, raw: bytes) -> str:
        """Point ``tag`` at the placeholder ``raw``; return its digest."""
        from tui.client.models import OCI_MANIFEST

        await self.put_manifest(repo, tag, raw, OCI_MANIFEST)
        return compute_digest(raw)


def _unique() -> str:
    import uuid  # only untag's placeholder needs it (uuid loads the platform module)

    return str(uuid.uuid4())
