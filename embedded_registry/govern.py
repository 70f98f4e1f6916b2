"""Immutable tags and storage quotas (``regtui.immutable``, ``regtui.quota``), enforced.

The rules are parsed by :mod:`embedded_registry.govern_rules`; the routes call this module once
each (a manifest PUT, a manifest or tag DELETE, a blob upload's body), and the refusals are the
OCI error ``DENIED`` (HTTP 403) with a message that names the rule.

**Immutable tags.** A manifest PUT that would point an immutable tag at another digest is
refused (the same digest again is an idempotent re-push: accepted); so is a DELETE of the tag,
and a DELETE by digest of a manifest an immutable tag points at. Only editing config.yml lifts a
rule. Within one process the commit lock serialises the check with the commit. Across
replicas, before an immutable tag is first set, the PUT claims it for its digest with a
conditional write (``/regtui/immutable/<name>/<tag>``): of two replicas setting the same new
tag at once to different digests, the loser is refused as a move.

**Quotas.** A repository's usage is what ``regtui du`` shows as its referenced bytes: every
blob its manifests reference (the manifests themselves, configs, layers, the children of
indexes), each counted once per repository however many manifests share it, read from the
storage's layout at each check (never a counter kept in one process). A namespace's usage is
the sum over its repositories. The checks:

- a blob upload (POST with a body, PATCH, closing PUT) may not bring the repository's usage
  plus the upload's size over the limit: refused before reading when the declared length is
  too much, else as soon as the running size is; the upload is then cancelled, so nothing
  half-written stays. A blob whose digest is already referenced in the repository costs
  nothing. (The upload is counted alone: blobs of the same push uploaded before it are not
  yet referenced, so they count from the manifest on.)
- a manifest PUT is refused when the blobs it adds to the repository (those it references
  that the repository's manifests do not reference yet, and the manifest itself) would bring
  usage over the limit. This is the exact gate.

Exact across replicas: before it commits, a manifest PUT records a *reservation* (its digest
and the bytes it adds) in a per-rule record in the storage (``/regtui/quota/...``), written
with the driver's conditional put (S3 ``If-Match``/``If-None-Match``; ``flock`` on a disk).
A check counts the layout, plus every reservation whose manifest the layout does not show yet;
a writer that lost the race re-reads and checks again. So two replicas racing the last bytes
of a quota never both pass. A reservation outlives a failed commit by ``RESERVATION_TTL`` at
most (it then counts no more). Uploads are checked without reservations: two uploads racing
the same last bytes can both be stored, and the manifest PUT refuses the push that goes over
(its blobs, referenced by nothing, are GC's).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from embedded_registry import errors, names
from embedded_registry.config import Config
from embedded_registry.govern_rules import GovernConfig, ImmutableRule, QuotaRule, quota_usage
from embedded_registry.mediatypes import StoredManifest, parse_manifest, parse_stored_manifest
from embedded_registry.storage.driver.base import PathNotFoundError, PreconditionFailedError
from embedded_registry.storage.driver.capabilities import conditional_writes
from embedded_registry.storage.manifests import compute_digest
from embedded_registry.storage.store import DriverStorage

log = logging.getLogger("embedded_registry.govern")

RECORD_ROOT = "/regtui/quota"
"""Driver path of the reservation records (beside the GC lease, outside Distribution's tree)."""
CLAIM_ROOT = "/regtui/immutable"
"""Driver path of the claims of immutable tags being set for the first time."""
RESERVATION_TTL = 120.0
CAS_ATTEMPTS = 20
CONCURRENCY = 16
PARSED_CACHE = 8192
REFRESH_INTERVAL = 60.0
"""Seconds between two refreshes of :meth:`Governor.usage_by_repository` in the background."""


def _size_text(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit} ({size} B)"
        value /= 1024
    return f"{size} B"


class QuotaExceeded(errors.RegistryError):
    """DENIED: the push would bring a repository or namespace over its quota."""

    def __init__(self, rule: QuotaRule, used: int, adding: int) -> None:
        message = (
            f"quota exceeded: adding {_size_text(adding)} to {rule.scope} {rule.name} "
            f"(using {_size_text(used)}) would exceed its limit of {_size_text(rule.limit)} "
            f"({rule.label})"
        )
        detail = {
            "rule": rule.label,
            "scope": rule.scope,
            "name": rule.name,
            "limit_bytes": rule.limit,
            "used_bytes": used,
            "adding_bytes": adding,
        }
        super().__init__("DENIED", message=message, detail=detail, status=403)
        self.close_connection = True  # the refused body may still be arriving


def immutable_refusal(
    rule: ImmutableRule, name: str, tag: str, action: str
) -> errors.RegistryError:
    return errors.RegistryError(
        "DENIED",
        message=f"tag {tag} of {name} is immutable: cannot {action} (rule {rule.label})",
        detail={"rule": rule.label, "repository": name, "tag": tag},
        status=403,
    )


@dataclass(frozen=True, slots=True)
class Charge:
    """A repository's usage as ``du`` counts it: its referenced blobs that are stored, and the
    manifest revisions its layout shows."""

    bytes: int
    blobs: frozenset[str]
    revisions: frozenset[str]


EMPTY = Charge(0, frozenset(), frozenset())


class Governor:
    """The rules of one registry over its storage (one per process)."""

    def __init__(self, rules: GovernConfig, store: DriverStorage) -> None:
        self.rules = rules
        self.store = store
        self._parsed: OrderedDict[str, StoredManifest] = OrderedDict()
        self._sizes: OrderedDict[str, int] = OrderedDict()
        self._usage: dict[str, int] = {}
        self._owner = uuid.uuid4().hex

    # -- immutable tags -----------------------------------------------------------------------
    def immutable_rule(self, name: str, tag: str) -> ImmutableRule | None:
        return self.rules.immutable_rule(name, tag)

    async def check_delete(self, name: str, reference: str) -> None:
        """DENIED when the DELETE would remove an immutable tag."""
        if not self.rules.immutable:
            return
        if not names.looks_like_digest(reference):
            rule = self.immutable_rule(name, reference)
            if rule is not None and await self.store.tag_digest(name, reference) is not None:
                raise immutable_refusal(rule, name, reference, "delete it")
            return
        for tag in await self.store.tags(name) or []:
            rule = self.immutable_rule(name, tag)
            if rule is not None and await self.store.tag_digest(name, tag) == reference:
                raise immutable_refusal(
                    rule, name, tag, f"delete manifest {reference}, which it names"
                )

    async def check_manifest_put(
        self, name: str, reference: str, body: bytes, content_type: str
    ) -> None:
        """DENIED when the PUT would move an immutable tag or go over a quota."""
        is_digest = names.looks_like_digest(reference)
        algorithm = reference.split(":", 1)[0] if is_digest else "sha256"
        try:
            digest = compute_digest(body, algorithm)
        except ValueError:
            return  # an unknown algorithm: the storage answers DIGEST_INVALID
        rule = None if is_digest else self.immutable_rule(name, reference)
        claim = False
        if rule is not None:
            current = await self.store.tag_digest(name, reference)
            if current is not None and current != digest:
                raise immutable_refusal(
                    rule, name, reference, f"move it from {current} to {digest}"
                )
            claim = current is None
        quotas = self.rules.quotas_for(name)
        if quotas:
            try:
                info = parse_manifest(body, content_type)
            except errors.RegistryError:
                return  # the storage refuses it with the same error
            await self._reserve(name, digest, len(body), info.blobs, quotas)
        if claim and rule is not None:
            await self._claim(rule, name, reference, digest)

    async def _claim(self, rule: ImmutableRule, name: str, tag: str, digest: str) -> None:
        """Before an immutable tag is first set: claim it for ``digest`` with a conditional
        write, so that two replicas setting it at once to different digests do not both win
        (the loser is refused as a move). A claim lasts ``RESERVATION_TTL`` (a commit that
        failed after it blocks other digests that long at most)."""
        path = f"{CLAIM_ROOT}/{name}/{tag}"
        for _attempt in range(CAS_ATTEMPTS):
            try:
                data, version = await conditional_writes(self.store.driver).get_versioned(path)
            except PathNotFoundError:
                data, version = b"", None
            try:
                held = json.loads(data) if data else {}
            except ValueError:
                held = {}
            now = time.time()
            other = held.get("digest") if isinstance(held, dict) else None
            expires = held.get("expires", 0) if isinstance(held, dict) else 0
            if other == digest:
                return
            if isinstance(other, str) and isinstance(expires, int | float) and expires > now:
                raise immutable_refusal(
                    rule, name, tag, f"move it from {other} (being pushed) to {digest}"
                )
            document = json.dumps({"digest": digest, "expires": now + RESERVATION_TTL})
            try:
                await conditional_writes(self.store.driver).put_conditional(
                    path, document.encode(), version=version
                )
            except PreconditionFailedError:
                continue
            return
        raise errors.too_many_requests(f"too many pushes racing for tag {tag}: retry the push")

    # -- quotas: usage from the layout --------------------------------------------------------
    async def _manifest(self, name: str, digest: str) -> StoredManifest | None:
        parsed = self._parsed.get(digest)
        if parsed is not None:
            self._parsed.move_to_end(digest)
            return parsed
        try:
            _digest, body, _info = await self.store.get_manifest(name, digest)
        except errors.RegistryError:
            return None
        parsed = parse_stored_manifest(digest, body)
        self._parsed[digest] = parsed
        if len(self._parsed) > PARSED_CACHE:
            self._parsed.popitem(last=False)
        return parsed

    async def _size(self, digest: str) -> int | None:
        size = self._sizes.get(digest)
        if size is not None:
            return size
        size = await self.store.blob_size(digest)
        if size is not None:  # content-addressed: a size never changes
            self._sizes[digest] = size
            if len(self._sizes) > PARSED_CACHE:
                self._sizes.popitem(last=False)
        return size

    async def charge(self, name: str) -> Charge:
        """``name``'s usage now, read from the storage: what ``du`` shows as its referenced
        bytes (GC's mark of the repository: every revision, its config, layers and children)."""
        revisions = frozenset(await self.store.revisions(name))
        limit = asyncio.Semaphore(CONCURRENCY)

        async def read(digest: str) -> StoredManifest | None:
            async with limit:
                return await self._manifest(name, digest)

        async def size(digest: str) -> int | None:
            async with limit:
                return await self._size(digest)

        referenced: set[str] = set()
        stack = list(revisions)
        while stack:
            batch = [d for d in dict.fromkeys(stack) if d not in referenced]
            stack = []
            referenced.update(batch)
            # Parsed manifests are kept by digest: only the new ones cost a read.
            parsed = {d: self._parsed.get(d) for d in batch}
            missing = [d for d, p in parsed.items() if p is None]
            parsed.update(zip(missing, await asyncio.gather(*map(read, missing)), strict=True))
            for manifest in parsed.values():
                if manifest is None or manifest.error is not None:
                    continue
                if manifest.config is not None:
                    referenced.add(manifest.config)
                referenced.update(manifest.layers)
                stack.extend(c for c in manifest.children if c not in referenced)
        sizes = {d: self._sizes.get(d) for d in referenced}
        unknown = [d for d, known in sizes.items() if known is None]
        sizes.update(zip(unknown, await asyncio.gather(*map(size, unknown)), strict=True))
        present = {d: s for d, s in sizes.items() if s is not None}
        charge = Charge(sum(present.values()), frozenset(present), revisions)
        self._usage[name] = charge.bytes
        return charge

    async def _members(self, rule: QuotaRule) -> list[str]:
        if rule.scope == "repository":
            return [rule.name]
        return [repo for repo in await self.store.repositories() if rule.covers(repo)]

    async def used(self, rule: QuotaRule, known: dict[str, Charge]) -> int:
        """Bytes the rule's repositories use now (``known``: charges already read)."""
        total = 0
        for repo in await self._members(rule):
            if repo not in known:
                known[repo] = await self.charge(repo)
            total += known[repo].bytes
        return total

    # -- quotas: reservations -----------------------------------------------------------------
    @staticmethod
    def _record(rule: QuotaRule) -> str:
        return f"{RECORD_ROOT}/{rule.scope}/{rule.name}/reservations"

    async def _read_record(self, rule: QuotaRule) -> tuple[list[dict[str, Any]], str | None]:
        try:
            data, version = await conditional_writes(self.store.driver).get_versioned(
                self._record(rule)
            )
        except PathNotFoundError:
            return [], None
        try:
            entries = json.loads(data).get("reservations", [])
        except (ValueError, AttributeError):
            entries = []
        valid = [
            e
            for e in entries
            if isinstance(e, dict)
            and isinstance(e.get("repo"), str)
            and isinstance(e.get("digest"), str)
            and isinstance(e.get("bytes"), int)
            and isinstance(e.get("expires"), int | float)
        ]
        return valid, version

    async def _reserve(
        self, name: str, digest: str, size: int, blobs: tuple[str, ...], quotas: list[QuotaRule]
    ) -> None:
        """Check every quota of ``name`` for the manifest ``digest`` and record a reservation
        of the bytes it adds in each rule's record (conditional writes: see the module
        docstring)."""
        for _attempt in range(CAS_ATTEMPTS):
            # The records first, the layout after: a reservation dropped from a record was
            # visible to its writer, hence to this later scan (see the module docstring).
            records = [await self._read_record(rule) for rule in quotas]
            known: dict[str, Charge] = {}
            charge = known[name] = await self.charge(name)
            if digest in charge.revisions:
                return  # already in the repository: costs nothing
            adding = size if digest not in charge.blobs else 0
            for blob in dict.fromkeys(blobs):
                if blob not in charge.blobs:
                    linked = await self.store.linked_size(name, blob)
                    if linked is None:
                        return  # the storage refuses it: MANIFEST_BLOB_UNKNOWN
                    adding += linked
            if not adding:
                return
            now = time.time()
            writes = []
            for rule, (entries, version) in zip(quotas, records, strict=True):
                pending = []
                for entry in entries:
                    if entry["expires"] <= now:
                        continue
                    if entry["repo"] == name and entry["digest"] == digest:
                        continue  # our own earlier attempt
                    repo_charge = known.get(entry["repo"])
                    if repo_charge is None and rule.covers(entry["repo"]):
                        repo_charge = known[entry["repo"]] = await self.charge(entry["repo"])
                    if repo_charge is not None and entry["digest"] in repo_charge.revisions:
                        continue  # committed: the layout counts it
                    pending.append(entry)
                used = await self.used(rule, known) + sum(e["bytes"] for e in pending)
                if used + adding > rule.limit:
                    raise QuotaExceeded(rule, used, adding)
                pending.append(
                    {
                        "repo": name,
                        "digest": digest,
                        "bytes": adding,
                        "expires": now + RESERVATION_TTL,
                        "by": self._owner,
                    }
                )
                writes.append((rule, pending, version))
            try:
                for rule, pending, version in writes:
                    document = json.dumps({"reservations": pending}, separators=(",", ":"))
                    await conditional_writes(self.store.driver).put_conditional(
                        self._record(rule), document.encode(), version=version
                    )
            except PreconditionFailedError:
                await asyncio.sleep(0.01)
                continue  # another writer won: read and check again
            return
        raise errors.too_many_requests("too many pushes racing for a quota: retry the push")

    async def upload_allowance(self, name: str, digest: str | None) -> int | None:
        """Bytes an upload to ``name`` may still bring (None: no quota applies, or the blob
        ``digest`` is already referenced there and costs nothing)."""
        quotas = self.rules.quotas_for(name)
        if not quotas:
            return None
        known: dict[str, Charge] = {}
        charge = known[name] = await self.charge(name)
        if digest is not None and digest in charge.blobs:
            return None
        allowance: int | None = None
        for rule in quotas:
            left = rule.limit - await self.used(rule, known)
            allowance = left if allowance is None else min(allowance, left)
        return allowance

    async def quota_denial(self, name: str, used_over: int) -> QuotaExceeded:
        """The refusal of an upload to ``name`` that reached ``used_over`` bytes."""
        known: dict[str, Charge] = {}
        worst: tuple[int, QuotaRule, int] | None = None
        for rule in self.rules.quotas_for(name):
            used = await self.used(rule, known)
            left = rule.limit - used
            if worst is None or left < worst[0]:
                worst = (left, rule, used)
        assert worst is not None
        return QuotaExceeded(worst[1], worst[2], used_over)

    # -- reports ------------------------------------------------------------------------------
    def usage_by_repository(self) -> dict[str, int]:
        """``{repository: referenced bytes}`` as last read (each check and each background
        refresh updates it; never a walk per call): for a metrics gauge."""
        return dict(self._usage)

    async def refresh(self) -> dict[str, int]:
        """Read every repository's usage now (a walk of the storage)."""
        repos = await self.store.repositories()
        for repo in repos:
            await self.charge(repo)
        for gone in set(self._usage) - set(repos):
            del self._usage[gone]
        return dict(self._usage)

    def quota_report(self, referenced: dict[str, int]) -> list[dict[str, Any]]:
        """Each quota rule with its usage, from a usage report's referenced bytes per
        repository (the numbers ``du`` shows)."""
        return quota_usage(self.rules.quotas, referenced)


GOVERN_KEY: web.AppKey[Governor] = web.AppKey("govern")


def install(app: web.Application, config: Config, store: Any) -> None:
    """Give ``app`` its governor (when ``store`` is the driver storage every config opens)."""
    if isinstance(store, DriverStorage):
        app[GOVERN_KEY] = Governor(config.govern, store)
        if config.govern.quotas:  # the metrics keep their own (repository_bytes.py)
            app.cleanup_ctx.append(_refresher)


async def _refresher(app: web.Application) -> AsyncIterator[None]:
    governor = app[GOVERN_KEY]

    async def loop() -> None:
        while True:
            try:
                await governor.refresh()
            except Exception as exc:  # a storage hiccup must not end the refreshes
                log.warning("quota usage refresh failed: %s", exc)
            await asyncio.sleep(REFRESH_INTERVAL)

    task = asyncio.create_task(loop())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def governor(request: web.Request) -> Governor | None:
    return request.app.get(GOVERN_KEY)


# -- the calls the routes make (one each) -----------------------------------------------------
async def check_manifest_put(
    request: web.Request, name: str, reference: str, body: bytes, content_type: str
) -> None:
    """Before a manifest commit (under the commit lock): immutable tags, then quotas."""
    rules = governor(request)
    if rules is not None:
        await rules.check_manifest_put(name, reference, body, content_type)


async def check_delete(request: web.Request, name: str, reference: str) -> None:
    """Before a manifest or tag DELETE (under the commit lock): immutable tags."""
    rules = governor(request)
    if rules is not None:
        await rules.check_delete(name, reference)


Meter = Callable[[AsyncIterator[bytes]], AsyncIterator[bytes]]


def _unmetered(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    return chunks


@contextlib.asynccontextmanager
async def upload_quota(
    request: web.Request, name: str, upload_id: str, digest: str | None = None
) -> AsyncIterator[Meter]:
    """Around the write of an upload's body: a meter for the body that refuses (DENIED) the
    byte that would go over the quota, or refuses at once when the declared length already
    does; either way the upload is cancelled, so nothing of it stays. ``digest``: the blob's,
    when the request names it (the closing PUT)."""
    rules = governor(request)
    allowance = None if rules is None else await rules.upload_allowance(name, digest)
    if rules is None or allowance is None:
        yield _unmetered
        return
    store = rules.store
    already = await store.upload_size(name, upload_id)
    declared = request.content_length or 0
    if already + declared > allowance:
        await store.cancel_upload(name, upload_id)
        raise await rules.quota_denial(name, already + declared)
    limit = allowance

    async def meter(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        total = already
        async for chunk in chunks:
            total += len(chunk)
            if total > limit:
                raise await rules.quota_denial(name, total)
            yield chunk

    try:
        yield meter
    except QuotaExceeded:
        await store.cancel_upload(name, upload_id)
        raise


def mark_immutable(request: web.Request, document: dict[str, Any]) -> dict[str, Any]:
    """The ``ext/tags`` document with ``"immutable"`` on each tag: the rule that makes it
    immutable (its label), or null."""
    rules = governor(request)
    for entry in document.get("tags", []):
        rule = rules.immutable_rule(document["name"], entry["tag"]) if rules else None
        entry["immutable"] = rule.label if rule is not None else None
    return document


def with_quotas(request: web.Request, document: dict[str, Any]) -> dict[str, Any]:
    """The storage report with ``"quotas"``: each rule, its limit and its usage as the report
    counts it (the repositories' referenced bytes, the numbers ``du`` shows)."""
    rules = governor(request)
    referenced = {r["name"]: r["referenced_bytes"] for r in document.get("repositories", [])}
    document["quotas"] = rules.quota_report(referenced) if rules is not None else []
    return document


def usage_by_repository(app: web.Application) -> dict[str, int]:
    """``{repository: referenced bytes}`` of ``app``'s storage as last counted (every quota
    check and a background refresh each minute keep it current; no walk per call): what a
    metrics gauge exports. Empty on a storage the governor does not watch."""
    rules = app.get(GOVERN_KEY)
    return rules.usage_by_repository() if rules is not None else {}
