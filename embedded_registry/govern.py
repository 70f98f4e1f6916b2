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

- a blob upload (POST with a body, PATCH, closing PUT) reserves its whole size before its
  bytes are stored: refused at once when its declared length does not fit, else (a streamed
  body, no length) as soon as the running size does not; the upload is then cancelled, so
  nothing half-written stays. A blob whose digest is already referenced in the repository,
  or reserved there by another upload, costs nothing.
- a manifest PUT is refused when the blobs it adds to the repository (those it references
  that the repository's manifests do not reference yet, and the manifest itself) would bring
  usage over the limit. This is the exact gate.

Exact across replicas: every check reads a per-rule record in the storage
(``/regtui/quota/<scope>/<name>/reservations``) and writes it back with the driver's
conditional put (S3 ``If-Match``/``If-None-Match``; ``flock`` on a disk), so two replicas
racing the last bytes never both pass (a writer that lost the race re-reads and checks
again; within one process, writers of a record take turns). A check counts the layout plus
the *reservations* that the layout does not show yet, of three kinds:

- ``manifest``: a manifest PUT's bytes (its digest), until its revision is in the layout, or
  ``RESERVATION_TTL`` after a failed commit;
- ``upload``: an upload in progress (its id), its whole size so far; a streamed body reserves
  exactly what it received up to ``SMALL_UPLOAD``, then ahead of it (as much again, at most
  ``GROWTH_MAX``, never more than half the room left): a write of the record per doubling,
  not per piece. Released when the upload is refused, fails or is deleted (its next request
  reserves its size again); each write lasts ``UPLOAD_TTL`` (a request renews it every third
  of that), so a crashed replica's ends by time;
- ``blob``: an upload's closing request (it names the blob) reserves for the blob, of its
  exact size once stored, until a manifest of the repository references it, or
  ``UPLOAD_TTL``. The manifest PUT that names it takes its bytes into its own reservation (a
  manifest refused drops them). A monolithic push writes the record once per blob; a
  chunked one (skopeo, docker) twice.

So blob uploads racing each other on any replicas never store more than the room left, and
the manifest PUT counts the push exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from embedded_registry import errors, names
from embedded_registry.config import Config
from embedded_registry.govern_rules import GovernConfig, ImmutableRule, QuotaRule, quota_usage
from embedded_registry.mediatypes import StoredManifest, parse_manifest, parse_stored_manifest
from embedded_registry.storage.driver.base import (
    PathNotFoundError,
    PreconditionFailedError,
    StorageDriverError,
)
from embedded_registry.storage.driver.capabilities import conditional_writes
from embedded_registry.storage.manifests import compute_digest
from embedded_registry.storage.store import DriverStorage

log = logging.getLogger("embedded_registry.govern")

RECORD_ROOT = "/regtui/quota"
"""Driver path of the reservation records (beside the GC lease, outside Distribution's tree)."""
CLAIM_ROOT = "/regtui/immutable"
"""Driver path of the claims of immutable tags being set for the first time."""
RESERVATION_TTL = 120.0
"""Seconds a manifest's reservation (and an immutable tag's claim) outlives a failed commit."""
UPLOAD_TTL = 600.0
UPLOAD_TTL_ENV = "REGTUI_UPLOAD_RESERVATION_TTL"
"""Seconds an upload's reservation lasts after its last write (``UPLOAD_TTL`` unless this
variable says otherwise): a crashed upload's, or a blob's no manifest came to reference."""
SMALL_UPLOAD = 1 << 20
"""A streamed upload (no declared length) reserves exactly what it received up to this size,
then ahead of its bytes: as much again as it received, at most ``GROWTH_MAX``."""
GROWTH_MAX = 64 << 20
CAS_ATTEMPTS = 30
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


def upload_reservation_ttl() -> float:
    try:
        value = float(os.environ.get(UPLOAD_TTL_ENV, ""))
    except ValueError:
        return UPLOAD_TTL
    return value if 0 < value < float("inf") else UPLOAD_TTL


class QuotaExceeded(errors.RegistryError):
    """DENIED: the push would bring a repository or namespace over its quota."""

    def __init__(self, rule: QuotaRule, used: int, adding: int, reserved: int = 0) -> None:
        using = _size_text(used)
        if reserved:
            using += f", of which {_size_text(reserved)} reserved by pushes in progress"
        message = (
            f"quota exceeded: adding {_size_text(adding)} to {rule.scope} {rule.name} "
            f"(using {using}) would exceed its limit of {_size_text(rule.limit)} "
            f"({rule.label})"
        )
        detail = {
            "rule": rule.label,
            "scope": rule.scope,
            "name": rule.name,
            "limit_bytes": rule.limit,
            "used_bytes": used,
            "reserved_bytes": reserved,
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

MANIFEST, UPLOAD, BLOB = "manifest", "upload", "blob"
KINDS = (MANIFEST, UPLOAD, BLOB)
"""What a reservation holds bytes for: a manifest being committed (its ``digest``), an upload
in progress (``digest``: its id), an uploaded blob no manifest references yet (its digest)."""

Own = set[tuple[str, str]]
"""A writer's own entries in the records: ``(kind, digest)`` in its repository."""


@dataclass
class _Scan:
    """One read of the records of a repository's quotas and of the layout."""

    charge: Charge
    """The repository's usage in the layout."""
    records: list[tuple[list[dict[str, Any]], str | None, bool]] = field(default_factory=list)
    """Per rule: the entries that still count (neither expired, committed, nor the writer's),
    the record's version, and whether the writer's own (or absorbed) entries were dropped."""
    used: list[int] = field(default_factory=list)
    """Per rule: the layout's bytes plus those entries' bytes."""
    reserved: list[int] = field(default_factory=list)
    """Per rule: those entries' bytes."""
    pending_blobs: set[str] = field(default_factory=set)
    """Blobs of the repository uploaded and reserved, not yet referenced."""


Decision = tuple[bool, dict[str, Any] | None, int | None]
Decide = Callable[[_Scan], Awaitable[Decision]]


async def _release(_scan: _Scan) -> Decision:
    return True, None, None


class Governor:
    """The rules of one registry over its storage (one per process)."""

    def __init__(
        self, rules: GovernConfig, store: DriverStorage, clock: Callable[[], float] = time.time
    ) -> None:
        self.rules = rules
        self.store = store
        self.clock = clock
        """The time of the reservations' expiries (wall-clock: replicas compare them)."""
        self.upload_ttl = upload_reservation_ttl()
        self._locks: dict[str, asyncio.Lock] = {}
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
            and e.get("kind", MANIFEST) in KINDS
        ]
        return valid, version

    @contextlib.asynccontextmanager
    async def _locked(self, quotas: list[QuotaRule]) -> AsyncIterator[None]:
        """This process's writers of the same records one at a time (in the records' order:
        no deadlock), so they do not make each other's conditional writes fail; replicas race
        through the conditional writes."""
        async with contextlib.AsyncExitStack() as stack:
            for path in sorted({self._record(rule) for rule in quotas}):
                await stack.enter_async_context(self._locks.setdefault(path, asyncio.Lock()))
            yield

    async def _scan(
        self, name: str, quotas: list[QuotaRule], own: Own, absorb: frozenset[str]
    ) -> _Scan:
        """The records of ``quotas``, then the layout (in this order: a reservation dropped
        from a record was visible to its writer, hence to this later read of the layout),
        seen by a writer of ``name`` whose own entries are ``own`` and whose manifest
        references the blobs ``absorb``."""
        records = [await self._read_record(rule) for rule in quotas]
        known: dict[str, Charge] = {}
        charge = known[name] = await self.charge(name)
        now = self.clock()
        scan = _Scan(charge)
        for rule, (entries, version) in zip(quotas, records, strict=True):
            kept: list[dict[str, Any]] = []
            touched = False
            for entry in entries:
                kind, repo, digest = entry.get("kind", MANIFEST), entry["repo"], entry["digest"]
                if entry["expires"] <= now:
                    continue
                if repo == name and (kind, digest) in own:
                    touched = True  # our own earlier reservation: replaced (or released)
                    continue
                if repo == name and kind == BLOB and digest in absorb:
                    touched = True  # an uploaded blob of this manifest: its bytes move in
                    continue
                if kind != UPLOAD:
                    repo_charge = known.get(repo)
                    if repo_charge is None and rule.covers(repo):
                        repo_charge = known[repo] = await self.charge(repo)
                    if repo_charge is not None and digest in (
                        repo_charge.revisions if kind == MANIFEST else repo_charge.blobs
                    ):
                        continue  # committed (referenced): the layout counts it
                kept.append(entry)
                if repo == name and kind == BLOB:
                    scan.pending_blobs.add(digest)
            reserved = sum(e["bytes"] for e in kept)
            scan.records.append((kept, version, touched))
            scan.reserved.append(reserved)
            scan.used.append(await self.used(rule, known) + reserved)
        return scan

    async def _attempts(
        self,
        name: str,
        quotas: list[QuotaRule],
        own: Own,
        absorb: frozenset[str],
        decide: Decide,
    ) -> int | None:
        """Read, ``decide`` and write each rule's record with conditional writes, again from
        the read when another writer won. ``decide(scan)`` answers ``(write, entry, value)``:
        whether to write at all, the entry of ours to add (None: ours removed) and what to
        return; it raises QuotaExceeded to refuse."""
        for attempt in range(CAS_ATTEMPTS):
            scan = await self._scan(name, quotas, own, absorb)
            write, entry, value = await decide(scan)
            touched = any(t for _entries, _version, t in scan.records)
            if not write or (entry is None and not touched):
                return value
            try:
                for rule, (entries, version, changed) in zip(quotas, scan.records, strict=True):
                    if entry is None and not changed:
                        continue  # nothing of ours there
                    pending = [*entries, entry] if entry is not None else entries
                    document = json.dumps({"reservations": pending}, separators=(",", ":"))
                    await conditional_writes(self.store.driver).put_conditional(
                        self._record(rule), document.encode(), version=version
                    )
            except PreconditionFailedError:
                # Another writer won: read and check again (jittered, so racers spread out).
                await asyncio.sleep(random.uniform(0, 0.005 * 2 ** min(attempt, 6)))
                continue
            return value
        raise errors.too_many_requests("too many pushes racing for a quota: retry the push")

    async def _update(
        self,
        name: str,
        quotas: list[QuotaRule],
        own: Own,
        decide: Decide,
        absorb: frozenset[str] = frozenset(),
    ) -> int | None:
        """:meth:`_attempts` under this process's locks of the records. A refusal removes
        what the refused writer held (its own entries, and the blobs its manifest named)."""
        async with self._locked(quotas):
            try:
                return await self._attempts(name, quotas, own, absorb, decide)
            except QuotaExceeded:
                try:
                    await self._attempts(name, quotas, own, absorb, _release)
                except (errors.RegistryError, StorageDriverError) as exc:
                    log.warning("releasing a refused reservation failed: %s", exc)
                raise

    def _entry(self, name: str, kind: str, key: str, size: int, ttl: float) -> dict[str, Any]:
        return {
            "repo": name,
            "kind": kind,
            "digest": key,
            "bytes": size,
            "expires": self.clock() + ttl,
            "by": self._owner,
        }

    @staticmethod
    def _refusal(quotas: list[QuotaRule], scan: _Scan, adding: int) -> QuotaExceeded | None:
        """The refusal of ``adding`` more bytes: the rule it would bring over (None: fits)."""
        for rule, used, reserved in zip(quotas, scan.used, scan.reserved, strict=True):
            if used + adding > rule.limit:
                return QuotaExceeded(rule, used, adding, reserved)
        return None

    async def _reserve(
        self, name: str, digest: str, size: int, blobs: tuple[str, ...], quotas: list[QuotaRule]
    ) -> None:
        """Check every quota of ``name`` for the manifest ``digest`` and record a reservation
        of the bytes it adds in each rule's record (see the module docstring); the
        reservations of its blobs' uploads move into it."""

        async def decide(scan: _Scan) -> Decision:
            charge = scan.charge
            if digest in charge.revisions:
                return False, None, None  # already in the repository: costs nothing
            adding = size if digest not in charge.blobs else 0
            for blob in dict.fromkeys(blobs):
                if blob not in charge.blobs:
                    linked = await self.store.linked_size(name, blob)
                    if linked is None:
                        return False, None, None  # refused: MANIFEST_BLOB_UNKNOWN
                    adding += linked
            if not adding:
                return False, None, None
            refusal = self._refusal(quotas, scan, adding)
            if refusal is not None:
                raise refusal
            return True, self._entry(name, MANIFEST, digest, adding, RESERVATION_TTL), None

        await self._update(name, quotas, {(MANIFEST, digest)}, decide, frozenset(blobs))

    async def reserve_upload(
        self,
        name: str,
        upload_id: str,
        at_least: int,
        wanted: int,
        digest: str | None = None,
        *,
        holds_blob: bool = False,
        check: bool = True,
    ) -> int | None:
        """Reserve between ``at_least`` and ``wanted`` bytes for the upload ``upload_id`` to
        ``name`` (its whole size, not an increment): the bytes granted. With ``digest`` (the
        closing PUT names the blob), the reservation is the blob's already (``holds_blob``:
        this request wrote it before), and None when the blob costs nothing (referenced in
        ``name``, or reserved there by another upload): then the upload holds nothing.
        QuotaExceeded when even ``at_least`` does not fit (unless not ``check``: the bytes
        are stored already). More than ``at_least`` is granted only out of half the room left
        (a streamed body reserves ahead, never all of it)."""
        quotas = self.rules.quotas_for(name)
        own = {(UPLOAD, upload_id)}
        if digest is not None and holds_blob:
            own.add((BLOB, digest))

        async def decide(scan: _Scan) -> Decision:
            if digest is not None and (digest in scan.charge.blobs or digest in scan.pending_blobs):
                return True, None, None
            refusal = self._refusal(quotas, scan, at_least)
            if refusal is not None and check:
                raise refusal
            room = min(rule.limit - used for rule, used in zip(quotas, scan.used, strict=True))
            grant = at_least + max(min(wanted - at_least, (room - at_least) // 2), 0)
            if digest is None:
                entry = self._entry(name, UPLOAD, upload_id, grant, self.upload_ttl)
            else:
                entry = self._entry(name, BLOB, digest, grant, self.upload_ttl)
            return True, entry, grant

        return await self._update(name, quotas, own, decide)

    async def release_upload(self, name: str, upload_id: str, blob: str | None = None) -> None:
        """Drop the upload's reservation (cancelled, refused or failed: a later request of
        the same upload reserves its whole size again), and ``blob``'s, which its closing
        request wrote."""
        quotas = self.rules.quotas_for(name)
        own = {(UPLOAD, upload_id)}
        if blob is not None:
            own.add((BLOB, blob))
        if quotas:
            await self._update(name, quotas, own, _release)

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


class _UploadMeter:
    """An upload's reservation while a request's body arrives (see :func:`upload_quota`)."""

    def __init__(
        self, rules: Governor, name: str, upload_id: str, digest: str | None, received: int
    ) -> None:
        self.rules, self.name, self.upload_id, self.digest = rules, name, upload_id, digest
        self.received = received
        """The upload's size so far (what was stored before, and the body's bytes metered)."""
        self.granted: int | None = None
        """Bytes reserved (None: the blob costs nothing)."""
        self.holds_blob = False
        """Whether this request wrote the reservation of the blob ``digest``."""
        self.written = 0.0

    async def reserve(self, at_least: int, wanted: int) -> None:
        self.granted = await self.rules.reserve_upload(
            self.name,
            self.upload_id,
            at_least,
            wanted,
            self.digest,
            holds_blob=self.holds_blob,
        )
        self.holds_blob = self.digest is not None and self.granted is not None
        self.written = self.rules.clock()

    async def meter(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """``chunks``, each let through once the reservation covers it: the piece that does
        not fit is refused (QuotaExceeded) before it is written."""
        async for chunk in chunks:
            self.received += len(chunk)
            if self.granted is not None and self.received > self.granted:
                total = self.received
                ahead = 0 if total < SMALL_UPLOAD else min(total, GROWTH_MAX)
                await self.reserve(total, total + ahead)
            elif self.granted and self.rules.clock() - self.written > self.rules.upload_ttl / 3:
                await self.reserve(self.granted, self.granted)  # renewed: a long body
            yield chunk

    async def settle(self) -> None:
        """After the closing request: the blob's reservation of its exact size (a streamed
        body reserved ahead of its bytes)."""
        if self.digest is not None and self.granted not in (None, self.received):
            self.granted = await self.rules.reserve_upload(
                self.name,
                self.upload_id,
                self.received,
                self.received,
                self.digest,
                holds_blob=self.holds_blob,
                check=False,  # less than it held: the blob is stored already
            )

    async def release(self) -> None:
        try:
            await self.rules.release_upload(
                self.name, self.upload_id, self.digest if self.holds_blob else None
            )
        except (errors.RegistryError, StorageDriverError) as failure:
            log.warning(
                "releasing the reservation of upload %s failed: %s", self.upload_id, failure
            )


@contextlib.asynccontextmanager
async def upload_quota(
    request: web.Request, name: str, upload_id: str, digest: str | None = None
) -> AsyncIterator[Meter]:
    """Around the write of an upload's body (and the closing PUT, with or without one): the
    upload reserves its whole size in the quotas' records before its bytes are stored, so
    uploads racing each other, on any replica, never store more than the room together; a
    declared length over the room is refused at once, a streamed body as the byte that does
    not fit arrives (DENIED), and the upload is then cancelled: nothing of it stays. The
    closing request (``digest``: the blob's) reserves for the blob, which keeps it until a
    manifest references it. When the request fails otherwise, the reservation goes (the
    upload's next request reserves its size again); a crashed replica's lasts ``UPLOAD_TTL``
    after its last write."""
    rules = governor(request)
    if rules is None or not rules.rules.quotas_for(name):
        yield _unmetered
        return
    store = rules.store
    meter = _UploadMeter(rules, name, upload_id, digest, await store.upload_size(name, upload_id))
    try:
        if request.body_exists and request.content_length is None:  # streamed: as it comes
            if meter.received or digest is not None:
                await meter.reserve(meter.received, meter.received)
            else:  # nothing to hold yet: the first piece reserves
                meter.granted, meter.written = 0, rules.clock()
        else:
            declared = meter.received + (request.content_length or 0)
            await meter.reserve(declared, declared)
        yield meter.meter
        await meter.settle()
    except BaseException as exc:
        if isinstance(exc, QuotaExceeded):
            await store.cancel_upload(name, upload_id)
        await meter.release()
        raise


async def upload_cancelled(request: web.Request, name: str, upload_id: str) -> None:
    """After an upload's DELETE: its reservation goes with it."""
    rules = governor(request)
    if rules is not None:
        await rules.release_upload(name, upload_id)


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
