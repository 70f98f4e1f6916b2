"""Client calls for the bundled registry's extension endpoints, with typed reports.

``GET /v2/_regtui/ext/storage`` answers a :class:`StorageReport`; ``POST /v2/_regtui/ext/gc``
answers a :class:`GcResult` (the GC report with ``before`` and ``after`` storage reports). Other
registries answer 404 there: :func:`supports_extension` tells them apart. A 403 is a
refusal, not an absence: :class:`~tui.client.errors.RefusedError` carries the registry's reason
and what to do instead (behind a reverse proxy every request comes from the proxy, never from
the registry's own machine).

The models mirror the server's JSON (``embedded_registry.usage.UsageReport`` and
``embedded_registry.gc.GcReport``) without importing the server: ``from_json`` takes what is
known and ignores the rest, so a newer server does not break an older client.

The endpoints are administrative. On the registry's own machine the calls need no setup: to a
loopback address, they first go with the server's local admin secret (:mod:`tui.client._admin`:
on a connection of their own, no proxy, no redirect followed); without a secret, or when the
server does not take it (401/403), they go as every other request, with the client's credentials
(a user named in the server's ``regtui.extensions.admins``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from tui.client._admin import send_as_local_admin, stream_as_local_admin
from tui.client._base import oci_errors, transport_error
from tui.client.errors import (
    MalformedResponseError,
    RefusedError,
    RegistryClientError,
    UnsupportedError,
)
from tui.client.registry import RegistryClient

STORAGE_PATH = "/v2/_regtui/ext/storage"
GC_PATH = "/v2/_regtui/ext/gc"
EVENTS_PATH = "/v2/_regtui/ext/events"

__all__ = [
    "RETENTION_PATH",
    "EventsPage",
    "GcProblem",
    "GcRemoval",
    "GcResult",
    "QuotaStorage",
    "RegistryEvent",
    "RepoStorage",
    "ScrubProblem",
    "ScrubResult",
    "StorageReport",
    "UploadStorage",
    "collect_garbage",
    "recent_events",
    "retention_log",
    "run_retention",
    "scrub_registry",
    "storage_usage",
    "supports_extension",
]


def _int(doc: dict[str, Any], key: str) -> int:
    value = doc.get(key, 0)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _float(doc: dict[str, Any], key: str) -> float:
    value = doc.get(key, 0.0)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _str(doc: dict[str, Any], key: str) -> str | None:
    value = doc.get(key)
    return value if isinstance(value, str) else None


def _objects(doc: dict[str, Any], key: str) -> list[dict[str, Any]]:
    value = doc.get(key)
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _counts(doc: dict[str, Any], key: str) -> dict[str, int]:
    value = doc.get(key)
    if not isinstance(value, dict):
        return {}
    return {str(k): int(v) for k, v in value.items() if isinstance(v, int | float)}


@dataclass(frozen=True)
class RepoStorage:
    """One repository: bytes its manifests reference, and the bytes no other repository shares."""

    name: str
    manifests: int
    tags: int
    referenced_bytes: int
    exclusive_bytes: int
    blobs: int

    @property
    def shared_bytes(self) -> int:
        return self.referenced_bytes - self.exclusive_bytes

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> RepoStorage:
        return cls(
            name=_str(doc, "name") or "",
            manifests=_int(doc, "manifests"),
            tags=_int(doc, "tags"),
            referenced_bytes=_int(doc, "referenced_bytes"),
            exclusive_bytes=_int(doc, "exclusive_bytes"),
            blobs=_int(doc, "blobs"),
        )


@dataclass(frozen=True)
class UploadStorage:
    """An upload session on the server; ``stale`` once idle longer than the grace period."""

    repo: str
    upload_id: str
    bytes: int
    idle_seconds: float
    stale: bool

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> UploadStorage:
        return cls(
            repo=_str(doc, "repo") or "",
            upload_id=_str(doc, "upload_id") or "",
            bytes=_int(doc, "bytes"),
            idle_seconds=_float(doc, "idle_seconds"),
            stale=doc.get("stale") is True,
        )


@dataclass(frozen=True)
class QuotaStorage:
    """A quota of the bundled registry (``regtui.quota``): its limit and what is used of it,
    counted as the repositories' referenced bytes."""

    rule: str
    scope: str
    name: str
    limit: int
    used: int

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> QuotaStorage:
        return cls(
            rule=_str(doc, "rule") or "",
            scope=_str(doc, "scope") or "",
            name=_str(doc, "name") or "",
            limit=_int(doc, "limit_bytes"),
            used=_int(doc, "used_bytes"),
        )


@dataclass(frozen=True)
class StorageReport:
    """Storage usage of the bundled registry: every blob counted once, sizes from the files."""

    total_bytes: int
    blob_count: int
    bytes_by_kind: dict[str, int]
    blobs_by_kind: dict[str, int]
    repositories: tuple[RepoStorage, ...]
    uploads: tuple[UploadStorage, ...]
    upload_bytes: int
    stale_upload_bytes: int
    reclaimable_bytes: int
    reclaimable_blobs: int
    reclaimable_bytes_untagged: int
    reclaimable_blobs_untagged: int
    grace_period: float
    problems: tuple[str, ...] = ()
    protected_young_bytes: int = 0
    """Unreferenced bytes only the grace period keeps (0 from a server that does not say)."""
    protected_young_blobs: int = 0
    quotas: tuple[QuotaStorage, ...] = ()
    """The registry's quotas with their use (none from a server without quotas)."""

    @classmethod
    def from_json(cls, doc: Any) -> StorageReport:
        if not isinstance(doc, dict):
            raise MalformedResponseError("the storage report is not a JSON object")
        problems = tuple(
            " ".join(str(p.get(k) or "") for k in ("repo", "digest", "message")).strip()
            for p in _objects(doc, "problems")
        )
        return cls(
            total_bytes=_int(doc, "total_bytes"),
            blob_count=_int(doc, "blob_count"),
            bytes_by_kind=_counts(doc, "bytes_by_kind"),
            blobs_by_kind=_counts(doc, "blobs_by_kind"),
            repositories=tuple(RepoStorage.from_json(r) for r in _objects(doc, "repositories")),
            uploads=tuple(UploadStorage.from_json(u) for u in _objects(doc, "uploads")),
            upload_bytes=_int(doc, "upload_bytes"),
            stale_upload_bytes=_int(doc, "stale_upload_bytes"),
            reclaimable_bytes=_int(doc, "reclaimable_bytes"),
            reclaimable_blobs=_int(doc, "reclaimable_blobs"),
            reclaimable_bytes_untagged=_int(doc, "reclaimable_bytes_untagged"),
            reclaimable_blobs_untagged=_int(doc, "reclaimable_blobs_untagged"),
            grace_period=_float(doc, "grace_period"),
            problems=problems,
            protected_young_bytes=_int(doc, "protected_young_bytes"),
            protected_young_blobs=_int(doc, "protected_young_blobs"),
            quotas=tuple(QuotaStorage.from_json(q) for q in _objects(doc, "quotas")),
        )


@dataclass(frozen=True)
class GcRemoval:
    """One thing GC removed or would remove: ``kind`` is blob, manifest, layer_link, tag_index,
    upload or repository."""

    kind: str
    size: int
    digest: str | None = None
    repo: str | None = None
    tag: str | None = None
    path: str | None = None
    removed: bool = False

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> GcRemoval:
        return cls(
            kind=_str(doc, "kind") or "",
            size=_int(doc, "size"),
            digest=_str(doc, "digest"),
            repo=_str(doc, "repo"),
            tag=_str(doc, "tag"),
            path=_str(doc, "path"),
            removed=doc.get("removed") is True,
        )


@dataclass(frozen=True)
class GcProblem:
    """Something GC could not read: reported and kept, never fatal."""

    repo: str
    digest: str | None
    message: str


@dataclass(frozen=True)
class GcResult:
    """A garbage collection on the bundled registry, with the storage before and after."""

    dry_run: bool
    delete_untagged: bool
    grace_period: float
    marked_blobs: int
    removals: tuple[GcRemoval, ...]
    problems: tuple[GcProblem, ...]
    blob_bytes: int
    bytes_planned: int
    bytes_freed: int
    before: StorageReport
    after: StorageReport
    kept_young_blobs: int = 0
    seconds: float = 0.0

    @property
    def eligible_blobs(self) -> list[str]:
        return sorted(r.digest for r in self.removals if r.kind == "blob" and r.digest)

    @classmethod
    def from_json(cls, doc: Any) -> GcResult:
        if not isinstance(doc, dict):
            raise MalformedResponseError("the GC report is not a JSON object")
        return cls(
            dry_run=doc.get("dry_run") is not False,
            delete_untagged=doc.get("delete_untagged") is True,
            grace_period=_float(doc, "grace_period"),
            marked_blobs=_int(doc, "marked_blobs"),
            removals=tuple(GcRemoval.from_json(r) for r in _objects(doc, "removals")),
            problems=tuple(
                GcProblem(_str(p, "repo") or "", _str(p, "digest"), _str(p, "message") or "")
                for p in _objects(doc, "problems")
            ),
            blob_bytes=_int(doc, "blob_bytes"),
            bytes_planned=_int(doc, "bytes_planned"),
            bytes_freed=_int(doc, "bytes_freed"),
            before=StorageReport.from_json(doc.get("before", {})),
            after=StorageReport.from_json(doc.get("after", {})),
            kept_young_blobs=_int(doc, "kept_young_blobs"),
            seconds=_float(doc, "seconds"),
        )


@dataclass(frozen=True)
class RegistryEvent:
    """One registry event (Distribution's notification event): what, on what, by whom, from
    where. ``raw`` is the event as the server sent it (``regtui events --json`` prints it)."""

    id: str
    timestamp: str
    action: str
    repository: str
    digest: str | None
    tag: str | None
    media_type: str | None
    size: int
    from_repository: str | None
    actor: str | None
    addr: str | None
    method: str | None
    useragent: str | None
    raw: dict[str, Any]

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> RegistryEvent:
        def part(key: str) -> dict[str, Any]:
            value = doc.get(key)
            return value if isinstance(value, dict) else {}

        target, request, actor = part("target"), part("request"), part("actor")
        return cls(
            id=_str(doc, "id") or "",
            timestamp=_str(doc, "timestamp") or "",
            action=_str(doc, "action") or "",
            repository=_str(target, "repository") or "",
            digest=_str(target, "digest"),
            tag=_str(target, "tag"),
            media_type=_str(target, "mediaType"),
            size=_int(target, "size"),
            from_repository=_str(target, "fromRepository"),
            actor=_str(actor, "name"),
            addr=_str(request, "addr"),
            method=_str(request, "method"),
            useragent=_str(request, "useragent"),
            raw=doc,
        )


@dataclass(frozen=True)
class EventsPage:
    """An answer of the events endpoint: events after the cursor asked for, the cursor to ask
    with next, the server process's id (it changes on a restart: start again from 0), and each
    webhook endpoint's state (``name``, ``delivered``, ``failing``)."""

    instance: str
    next: int
    events: tuple[RegistryEvent, ...]
    endpoints: tuple[dict[str, Any], ...] = ()

    @classmethod
    def from_json(cls, doc: Any) -> EventsPage:
        if not isinstance(doc, dict):
            raise MalformedResponseError("the events answer is not a JSON object")
        return cls(
            instance=_str(doc, "instance") or "",
            next=_int(doc, "next"),
            events=tuple(RegistryEvent.from_json(item) for item in _objects(doc, "events")),
            endpoints=tuple(_objects(doc, "endpoints")),
        )


def _json_body(response: Any, what: str) -> Any:
    try:
        return response.json()
    except (ValueError, json.JSONDecodeError) as exc:
        raise MalformedResponseError(f"{what}: the answer is not JSON ({exc})") from None


async def _admin_request(
    client: RegistryClient, method: str, path: str, *, json: Any = None
) -> httpx.Response:
    """``method path`` with the local admin secret where there is one, else as any request."""
    await client._ensure_base_url()  # the scheme of a loopback registry is probed first
    try:
        response = await send_as_local_admin(
            client.base_url,
            method,
            path,
            verify=client.verify,
            request_timeout=client.timeout,
            json=json,
        )
    except (httpx.ConnectError, httpx.ConnectTimeout):
        response = None  # not sent: the ordinary path says what is wrong, in its own terms
    except httpx.TransportError as exc:  # sent, perhaps acted on: never sent twice
        raise transport_error(exc, client.host) from exc
    if response is not None and response.status_code not in (401, 403) and not response.is_redirect:
        return response
    return await client.request(method, path, json=json)


REFUSED_ADVICE = (
    "log in as an administrator (-u NAME), run regtui on the registry's own machine over "
    "loopback, or work offline on its storage with --root DIR or --config FILE"
)
"""What to do when the extension endpoints refuse: every way in that they allow."""


def _error_detail(response: httpx.Response) -> str | None:
    """The ``detail`` of the first OCI error when it is text: the bundled registry says there
    why it refused (the message is the spec's generic one, "requested access ... denied")."""
    try:
        errors = response.json().get("errors")
        detail = errors[0].get("detail")
    except (ValueError, AttributeError, IndexError, TypeError, KeyError):
        return None
    return detail.strip() or None if isinstance(detail, str) else None


def _check(client: RegistryClient, response: httpx.Response, what: str) -> None:
    """Raise for an error answer: :class:`RefusedError` for a 403 from the registry itself, the
    client's usual error otherwise (404 is an absence; a 401 is the registry asking who is
    there, as a registry that guards every path asks for any, so an ordinary :class:`AuthError`)."""
    if response.status_code == 403 and client.auth.same_origin(response.request.url):
        code, reason = oci_errors(response)
        reason = _error_detail(response) or reason
        status = f"{response.status_code}{f' {code}' if code else ''}"
        said = f': it says "{reason.rstrip(".")}"' if reason else " without saying why"
        raise RefusedError(
            f"{client.host} denied access to {what} ({status}){said}; to use it, {REFUSED_ADVICE}",
            reason=reason,
            advice=REFUSED_ADVICE,
            response=response,
            code=code,
        )
    client.raise_for_status(response, what)


async def supports_extension(client: RegistryClient) -> bool:
    """Whether the registry is regtui's bundled one (it answers the storage endpoint).

    Raises :class:`RefusedError` when it is there but refused (403), :class:`AuthError` on 401."""
    response = await _admin_request(client, "GET", STORAGE_PATH)
    if response.status_code in (401, 403):
        _check(client, response, "the storage report")
    return response.status_code == 200 and response.headers.get("content-type", "").startswith(
        "application/json"
    )


async def storage_usage(client: RegistryClient) -> StorageReport:
    """The bundled registry's storage report."""
    response = await _admin_request(client, "GET", STORAGE_PATH)
    _check(client, response, "the storage report")
    return StorageReport.from_json(_json_body(response, "the storage report"))


async def collect_garbage(
    client: RegistryClient,
    *,
    dry_run: bool = True,
    delete_untagged: bool = False,
    remove_empty_repos: bool = False,
    grace_period: float | None = None,
) -> GcResult:
    """Run (or, by default, plan) a garbage collection on the bundled registry.

    ``grace_period`` (seconds) overrides the server's; nothing younger is ever removed.
    """
    body: dict[str, Any] = {
        "dry_run": dry_run,
        "delete_untagged": delete_untagged,
        "remove_empty_repos": remove_empty_repos,
    }
    if grace_period is not None:
        body["grace_period"] = grace_period
    response = await _admin_request(client, "POST", GC_PATH, json=body)
    _check(client, response, "garbage collection")
    return GcResult.from_json(_json_body(response, "garbage collection"))


RETENTION_PATH = "/v2/_regtui/ext/retention"


async def retention_log(client: RegistryClient, limit: int = 20) -> dict[str, Any]:
    """The bundled registry's scheduled retention: ``{"configured": {...} | None, "runs":
    [...]}``, the newest ``limit`` runs first (see ``embedded_registry/routes/ext_retention``)."""
    response = await _admin_request(client, "GET", f"{RETENTION_PATH}?n={int(limit)}")
    _check(client, response, "the retention log")
    document = _json_body(response, "the retention log")
    if not isinstance(document, dict) or not isinstance(document.get("runs"), list):
        raise MalformedResponseError("the retention log: not a log of runs")
    return document


async def run_retention(client: RegistryClient, *, dry_run: bool | None = None) -> dict[str, Any]:
    """One run of the bundled registry's ``regtui.retention`` now; its record."""
    body = {} if dry_run is None else {"dry_run": dry_run}
    response = await _admin_request(client, "POST", RETENTION_PATH, json=body)
    _check(client, response, "a retention run")
    document = _json_body(response, "a retention run")
    if not isinstance(document, dict):
        raise MalformedResponseError("a retention run: the record is not a JSON object")
    return document


async def recent_events(
    client: RegistryClient, *, since: int = 0, wait: float = 0.0, limit: int | None = None
) -> EventsPage:
    """The bundled registry's recent events after the cursor ``since`` (0: all it keeps).

    ``wait`` > 0 is a long poll: the server answers as soon as a newer event exists, or after
    ``wait`` seconds (kept below the client's own timeout) with none."""
    wait = max(0.0, min(wait, client.timeout - 5.0))
    query = f"?since={max(since, 0)}&wait={wait:g}"
    if limit is not None:
        query += f"&limit={limit}"
    response = await _admin_request(client, "GET", EVENTS_PATH + query)
    _check(client, response, "the registry's events")
    return EventsPage.from_json(_json_body(response, "the registry's events"))


# -- scrub ---------------------------------------------------------------------------------------

SCRUB_PATH = "/v2/_regtui/ext/scrub"
MAX_SCRUB_LINE = 64 << 20
"""The longest line of the scrub's stream (its report lists every problem)."""


@dataclass(frozen=True)
class ScrubProblem:
    """One thing the scrub found wrong, with the images it breaks and what a repair did."""

    kind: str
    key: str
    message: str
    digest: str | None
    repo: str | None
    images: tuple[str, ...]
    severity: str
    repaired: str | None

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ScrubProblem:
        images = doc.get("images")
        return cls(
            kind=_str(doc, "kind") or "",
            key=_str(doc, "key") or "",
            message=_str(doc, "message") or "",
            digest=_str(doc, "digest"),
            repo=_str(doc, "repository"),
            images=tuple(i for i in images if isinstance(i, str))
            if isinstance(images, list)
            else (),
            severity=_str(doc, "severity") or "error",
            repaired=_str(doc, "repaired"),
        )


@dataclass(frozen=True)
class ScrubResult:
    """The scrub's report (``document``: as the server sent it, for ``--json``)."""

    document: dict[str, Any]
    problems: tuple[ScrubProblem, ...]
    broken_images: tuple[str, ...]
    blobs: int
    bytes: int
    repositories: int
    resumed: bool
    warning: str | None

    @property
    def clean(self) -> bool:
        return not any(p.severity == "error" for p in self.problems)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ScrubResult:
        document = {k: v for k, v in doc.items() if k != "type"}
        broken = doc.get("broken_images")
        return cls(
            document=document,
            problems=tuple(ScrubProblem.from_json(p) for p in _objects(doc, "problems")),
            broken_images=tuple(b for b in broken if isinstance(b, str))
            if isinstance(broken, list)
            else (),
            blobs=_int(doc, "blobs"),
            bytes=_int(doc, "bytes"),
            repositories=_int(doc, "repositories"),
            resumed=doc.get("resumed") is True,
            warning=_str(doc, "warning"),
        )


async def _ndjson(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """The JSON objects of a streamed answer, one a line, each line bounded."""
    pending = b""
    async for piece in response.aiter_bytes():
        pending += piece
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            if line.strip():
                yield _ndjson_line(line)
        if len(pending) > MAX_SCRUB_LINE:
            raise MalformedResponseError("the scrub's answer has a line too long")
    if pending.strip():
        yield _ndjson_line(pending)


def _ndjson_line(line: bytes) -> dict[str, Any]:
    try:
        document = json.loads(line)
    except ValueError as exc:
        raise MalformedResponseError(f"the scrub's answer is not JSON lines ({exc})") from None
    if not isinstance(document, dict):
        raise MalformedResponseError("the scrub's answer has a line that is no JSON object")
    return document


async def _scrub_stream(
    client: RegistryClient,
    response: httpx.Response,
    progress: Callable[[dict[str, Any]], None] | None,
) -> ScrubResult | None:
    """Read the scrub's stream; ``None`` when the answer is a refusal the ordinary path may
    still pass (401/403 or a redirect to the local-admin request)."""
    if response.status_code >= 400:
        await response.aread()
        if response.status_code in (404, 405):
            raise UnsupportedError(
                f"{client.host} offers no scrub (only regtui's bundled registry does): run "
                "regtui scrub --root DIR or --config FILE on its storage"
            )
        _check(client, response, "the scrub")
    async for document in _ndjson(response):
        kind = document.get("type")
        if kind == "progress" and progress is not None:
            progress(document)
        elif kind == "report":
            return ScrubResult.from_json(document)
        elif kind == "error":
            message = _str(document, "message") or "the scrub failed"
            raise RegistryClientError(f"{client.host}: the scrub failed: {message}")
    raise MalformedResponseError("the scrub's answer ended without a report")


async def scrub_registry(
    client: RegistryClient,
    *,
    repair: bool = False,
    restart: bool = False,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> ScrubResult:
    """Run the bundled registry's scrub, calling ``progress`` with each progress line (a dict:
    ``phase``, ``blobs``, ``bytes``, ``fraction``, ``repositories``, ``problems`` ...);
    ``repair`` quarantines corrupt blobs and removes links to nothing."""
    body = {"repair": repair, "restart": restart}
    await client._ensure_base_url()  # the scheme of a loopback registry is probed first
    try:
        async with stream_as_local_admin(
            client.base_url,
            "POST",
            SCRUB_PATH,
            verify=client.verify,
            request_timeout=client.timeout,
            json=body,
        ) as response:
            if (
                response is not None
                and response.status_code not in (401, 403)
                and not response.is_redirect
            ):
                result = await _scrub_stream(client, response, progress)
                assert result is not None
                return result
    except (httpx.ConnectError, httpx.ConnectTimeout):
        pass  # not sent: the ordinary path says what is wrong, in its own terms
    except httpx.TransportError as exc:  # sent, perhaps acted on: never sent twice
        raise transport_error(exc, client.host) from exc
    response = await client._send("POST", SCRUB_PATH, stream=True, json=body)
    try:
        result = await _scrub_stream(client, response, progress)
    except httpx.TransportError as exc:
        raise transport_error(exc, client.host) from exc
    finally:
        await response.aclose()
    assert result is not None
    return result
