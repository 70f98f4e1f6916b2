"""``RegistryClient``: an async client for the OCI distribution API (and Docker's v2 API).

Use it as a context manager::

    async with RegistryClient("127.0.0.1:5000") as client:
        for repo in await client.catalog():
            print(repo, await client.list_tags(repo))

Every failure is a :class:`~tui.client.errors.RegistryClientError`.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import hashlib
import json
import random
import ssl
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from tui.client.auth import RegistryAuth, resolve_credentials
from tui.client.errors import (
    AuthError,
    CatalogUnsupportedError,
    ConnectError,
    DeleteDisabledError,
    DigestMismatchError,
    MalformedResponseError,
    NotFoundError,
    RateLimitedError,
    RegistryClientError,
    TLSError,
    UnsupportedError,
)
from tui.client.models import (
    INDEX_MEDIA_TYPES,
    MANIFEST_ACCEPT,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_MANIFEST,
    DeletePlan,
    Descriptor,
    ImageConfig,
    ImageIndex,
    ImageManifest,
    ManifestResult,
    PingResult,
    UntagResult,
    parse_config,
    parse_manifest,
)
from tui.client.reference import (
    DIGEST_RE,
    InvalidReferenceError,
    api_host,
    is_loopback_host,
    parse_registry,
)

__all__ = ["BlobStream", "RegistryClient", "compute_digest", "manifest_digest"]

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})
RETRY_STATUSES = frozenset({429, 502, 503, 504})
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
EMPTY_JSON = b"{}"


def compute_digest(data: bytes, algorithm: str = "sha256") -> str:
    if algorithm not in ("sha256", "sha512"):
        raise MalformedResponseError(f"Unsupported digest algorithm {algorithm}")
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def manifest_digest(raw: bytes, algorithm: str = "sha256") -> str:
    """The digest a registry gives ``raw``: for signed schema1, of the unsigned payload."""
    if b'"signatures"' in raw:
        try:
            data = json.loads(raw)
            protected = json.loads(_b64url(data["signatures"][0]["protected"]))
            length, tail = int(protected["formatLength"]), _b64url(protected["formatTail"])
            return compute_digest(raw[:length] + tail, algorithm)
        except (ValueError, KeyError, IndexError, TypeError):
            pass  # not a JWS-signed schema1 manifest after all: hash the bytes as they are
    return compute_digest(raw, algorithm)


def _algorithm(digest: str) -> str:
    return digest.split(":", 1)[0]


def _is_digest(ref: str) -> bool:
    return bool(DIGEST_RE.match(ref))


def _oci_errors(response: httpx.Response) -> tuple[str | None, str | None]:
    """The first OCI error ``(code, message)`` of a response body, if it has one."""
    try:
        data = json.loads(response.content)
    except (ValueError, httpx.ResponseNotRead):
        return None, None
    errors = data.get("errors") if isinstance(data, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        code, message = first.get("code"), first.get("message")
        return (str(code) if code else None, str(message) if message else None)
    return None, None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        if parsed is None:
            return None
        return max(0.0, parsed.timestamp() - time.time())


class BlobStream:
    """A blob being downloaded: ``size`` and an async iterator of chunks, checked at the end."""

    def __init__(self, response: httpx.Response, digest: str, chunk_size: int) -> None:
        self.response = response
        self.digest = digest
        length = response.headers.get("Content-Length")
        self.size: int | None = int(length) if length and length.isdigit() else None
        self._chunk_size = chunk_size
        self.bytes_read = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        hasher = hashlib.new(_algorithm(self.digest))
        async for chunk in self.response.aiter_bytes(self._chunk_size):
            hasher.update(chunk)
            self.bytes_read += len(chunk)
            yield chunk
        actual = f"{_algorithm(self.digest)}:{hasher.hexdigest()}"
        if self.size is not None and self.bytes_read != self.size:
            raise MalformedResponseError(
                f"Blob {self.digest} was cut short: {self.bytes_read} of {self.size} bytes",
                response=self.response,
            )
        if actual != self.digest:
            raise DigestMismatchError(
                f"Blob {self.digest} hashes to {actual}",
                expected=self.digest,
                actual=actual,
                response=self.response,
            )

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self])


class RegistryClient:
    """An authenticated, retrying, concurrency-bounded client of one registry."""

    def __init__(
        self,
        registry: str,
        *,
        username: str | None = None,
        password: str | None = None,
        insecure: bool = False,
        ca_cert: str | None = None,
        timeout: float = 30.0,
        max_concurrency: int = 8,
        docker_config: Path | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        max_retries: int = 3,
        max_retry_wait: float = 60.0,
        backoff: float = 0.2,
    ) -> None:
        try:
            scheme, host = parse_registry(registry)
        except InvalidReferenceError as exc:
            raise RegistryClientError(str(exc), title="Invalid registry") from exc
        self.registry = "docker.io" if api_host(host) != host else host
        self.host = api_host(host)
        self.insecure = insecure
        self._explicit_scheme = scheme
        if scheme == "http" and not insecure and not is_loopback_host(self.host):
            raise TLSError(
                f"Refusing plain HTTP to {self.host}: pass --insecure to allow it",
                title="Plain HTTP refused",
            )
        self.base_url = f"{scheme or 'https'}://{self.host}"
        """``scheme://host[:port]``; final once the client is entered (plain-HTTP probing)."""
        self.credentials = resolve_credentials(
            self.registry, username=username, password=password, docker_config=docker_config
        )
        self.auth = RegistryAuth(self.credentials)
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        self.backoff = backoff
        """First retry delay in seconds; it doubles per retry (with jitter), capped at 8 s."""
        self._semaphore = asyncio.Semaphore(max_concurrency)
        verify: ssl.SSLContext | bool
        if insecure:
            verify = False
        else:
            verify = ssl.create_default_context()  # the system trust store (and SSL_CERT_FILE)
            if ca_cert:
                try:
                    verify.load_verify_locations(cafile=ca_cert)
                except (OSError, ssl.SSLError) as exc:
                    raise TLSError(f"Cannot load the CA certificate {ca_cert}: {exc}") from exc
        limits = httpx.Limits(
            max_connections=max_concurrency, max_keepalive_connections=max_concurrency
        )
        self._http = httpx.AsyncClient(
            auth=self.auth,
            verify=verify,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=limits,
            transport=transport,
            follow_redirects=True,
            headers={"User-Agent": "regtui"},
        )
        self._probed = scheme is not None
        self._probe_lock = asyncio.Lock()

    # ------------------------------------------------------------------ lifecycle
    async def __aenter__(self) -> RegistryClient:
        await self._ensure_base_url()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _ensure_base_url(self) -> None:
        """Decide the scheme when the user did not: HTTPS, or plain HTTP where Docker allows it.

        Loopback hosts are probed with plain HTTP first (the common case for a local registry:
        no TLS handshake to fail first); a TLS-only server on loopback is then detected and
        HTTPS used. With ``--insecure`` on other hosts, HTTPS is tried first, as Docker does, and
        plain HTTP only when HTTPS cannot be spoken. Probes never carry credentials.
        """
        if self._probed:
            return
        async with self._probe_lock:
            if self._probed:
                return
            if is_loopback_host(self.host):
                if await self._speaks_plain_http():
                    self.base_url = f"http://{self.host}"
            elif self.insecure:
                try:
                    await self._http.get(f"https://{self.host}/v2/", timeout=5.0, auth=None)
                except (httpx.TransportError, ssl.SSLError):
                    self.base_url = f"http://{self.host}"
            self._probed = True

    async def _speaks_plain_http(self) -> bool:
        try:
            response = await self._http.get(f"http://{self.host}/v2/", timeout=5.0, auth=None)
        except httpx.TransportError:
            return False  # a TLS server drops a plain request, or nothing listens: use HTTPS
        # Go's TLS servers answer a plain request with this 400 instead of dropping it.
        return not (response.status_code == 400 and b"HTTPS server" in response.content)

    # ------------------------------------------------------------------ requests
    def _url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}{path}"

    async def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """Send an authenticated request; idempotent ones are retried with back-off.

        Transport failures become :class:`ConnectError`/:class:`TLSError`; HTTP statuses are
        returned as they are (use :meth:`raise_for_status`), except that a 429 still there after
        the retries raises :class:`RateLimitedError`. The body is read.
        """
        return await self._send(method, path, stream=False, **kw)

    async def _send(self, method: str, path: str, *, stream: bool, **kw: Any) -> httpx.Response:
        await self._ensure_base_url()
        url = self._url(path)
        retriable = method.upper() in IDEMPOTENT
        attempt = 0
        while True:
            try:
                async with self._semaphore:
                    request = self._http.build_request(method, url, **kw)
                    response = await self._http.send(request, stream=True)
                    if not stream:
                        try:
                            await response.aread()
                        finally:
                            await response.aclose()
            except httpx.TransportError as exc:
                if retriable and attempt < self.max_retries and not _is_tls(exc):
                    attempt += 1
                    await asyncio.sleep(self._backoff(attempt))
                    continue
                raise _transport_error(exc, self.host) from exc
            if retriable and response.status_code in RETRY_STATUSES:
                wait = self._backoff(attempt + 1)
                if response.status_code == 429:
                    wait = _retry_after(response) or wait
                if attempt < self.max_retries and wait <= self.max_retry_wait:
                    if stream:
                        await response.aclose()
                    attempt += 1
                    await asyncio.sleep(wait)
                    continue
            if response.status_code == 429:
                if stream:
                    await response.aread()
                    await response.aclose()
                raise self._status_error(response, "request")
            return response

    def _backoff(self, attempt: int) -> float:
        return min(8.0, self.backoff * 2 ** (attempt - 1)) * (0.75 + random.random() / 2)

    def raise_for_status(self, response: httpx.Response, what: str) -> None:
        if response.status_code < 400:
            return
        raise self._status_error(response, what)

    def _status_error(self, response: httpx.Response, what: str) -> RegistryClientError:
        code, message = _oci_errors(response)
        said = f": the registry says {message!r}" if message else ""
        status = response.status_code
        method = response.request.method
        if status == 401:
            who = "anonymously" if self.credentials is None else "with the given credentials"
            token = f" ({self.auth.token_error})" if self.auth.token_error else ""
            return AuthError(
                f"Not authorized {who} for {what} on {self.host}{said}{token}",
                response=response,
                code=code,
            )
        if status == 403:
            return AuthError(f"Access to {what} denied by {self.host}{said}", response=response)
        if status == 404:
            return NotFoundError(
                f"{what} not found on {self.host}" + (f" ({code})" if code else ""),
                response=response,
                code=code,
            )
        if status == 405 and method == "DELETE":
            return DeleteDisabledError(
                f"{self.host} does not allow deletion of {what} (deletion is disabled)",
                response=response,
                code=code,
            )
        if status == 429:
            retry_after = _retry_after(response)
            hint = f"; retry in {retry_after:.0f} s" if retry_after is not None else ""
            return RateLimitedError(
                f"{self.host} is rate limiting requests for {what}{hint}",
                retry_after=retry_after,
                response=response,
                code=code,
            )
        if code == "UNSUPPORTED" or status in (405, 501):
            return UnsupportedError(
                f"{self.host} does not support {method} for {what}{said}",
                response=response,
                code=code,
            )
        return RegistryClientError(
            f"{self.host} answered {status} to {method} {what}{said}",
            response=response,
            code=code,
        )

    async def _get_ok(self, path: str, what: str, **kw: Any) -> httpx.Response:
        response = await self.request("GET", path, **kw)
        self.raise_for_status(response, what)
        return response

    # ------------------------------------------------------------------ discovery
    async def ping(self) -> PingResult:
        """``GET /v2/``: is this a registry, and do our credentials (if any) work?"""
        response = await self.request("GET", "/v2/")
        if response.status_code not in (200, 401):
            if response.status_code == 404:
                raise MalformedResponseError(
                    f"{self.host} does not serve the registry API (/v2/ answered 404)",
                    response=response,
                )
            self.raise_for_status(response, "/v2/")
            raise MalformedResponseError(f"{self.host} answered {response.status_code} to /v2/")
        return PingResult(
            base_url=self.base_url,
            status_code=response.status_code,
            api_version=response.headers.get("Docker-Distribution-API-Version"),
            auth_scheme=self.auth.scheme,
            authenticated=response.status_code == 200,
        )

    async def _paginate(self, path: str, key: str, what: str) -> AsyncIterator[list[str]]:
        seen_urls: set[str] = set()
        seen_items: set[str] = set()
        await self._ensure_base_url()
        url: str | None = self._url(path)
        while url is not None:
            if url in seen_urls:
                raise MalformedResponseError(
                    f"The registry's pagination of {what} loops back to {url}"
                )
            seen_urls.add(url)
            response = await self.request("GET", url)
            if what == "the catalog":
                self._raise_catalog(response)
            self.raise_for_status(response, what)
            try:
                data = response.json()
                items = data.get(key) or []
            except (ValueError, AttributeError) as exc:
                raise MalformedResponseError(f"The list of {what} is not JSON") from exc
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise MalformedResponseError(f"The list of {what} is not a list of names")
            fresh = [item for item in items if item not in seen_items]
            seen_items.update(fresh)
            next_url = _next_link(response)
            if next_url is not None and not fresh and items:
                raise MalformedResponseError(
                    f"The registry's pagination of {what} repeats the same page"
                )
            if fresh:
                yield fresh
            url = str(response.url.join(next_url)) if next_url else None

    def _raise_catalog(self, response: httpx.Response) -> None:
        status = response.status_code
        if status == 404 or (status in (401, 403) and self.auth.scheme == "bearer"):
            raise CatalogUnsupportedError(
                f"{self.host} does not list its repositories (no catalog for this account); "
                "name a repository instead",
                response=response,
            )

    def iter_catalog(self, page_size: int = 1000) -> AsyncIterator[list[str]]:
        """Pages of repository names, following ``Link``; registries that ignore ``n`` work."""
        return self._paginate(f"/v2/_catalog?n={page_size}", "repositories", "the catalog")

    async def catalog(self) -> list[str]:
        return [name async for page in self.iter_catalog() for name in page]

    def iter_tags(self, repo: str, page_size: int = 1000) -> AsyncIterator[list[str]]:
        return self._paginate(f"/v2/{repo}/tags/list?n={page_size}", "tags", f"tags of {repo}")

    async def list_tags(self, repo: str) -> list[str]:
        return [tag async for page in self.iter_tags(repo) for tag in page]

    # ------------------------------------------------------------------ manifests
    async def head_manifest(self, repo: str, ref: str) -> Descriptor:
        """The descriptor of ``repo:ref`` without downloading it (no pull counted on Docker Hub)."""
        what = f"manifest {repo}:{ref}" if not _is_digest(ref) else f"manifest {repo}@{ref}"
        response = await self.request(
            "HEAD", f"/v2/{repo}/manifests/{ref}", headers={"Accept": MANIFEST_ACCEPT}
        )
        if response.status_code == 404:
            raise NotFoundError(f"{what} not found on {self.host}", response=response)
        self.raise_for_status(response, what)
        digest = response.headers.get("Docker-Content-Digest")
        length = response.headers.get("Content-Length", "")
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        if not digest or not length.isdigit():
            result = await self.get_manifest(repo, ref)
            return Descriptor(result.media_type, result.digest, result.size)
        if _is_digest(ref) and digest != ref:
            raise DigestMismatchError(
                f"{self.host} answered {digest} for {ref}", expected=ref, actual=digest
            )
        return Descriptor(media_type, digest, int(length))

    async def get_manifest(self, repo: str, ref: str) -> ManifestResult:
        """Fetch, verify (digest computed here) and parse a manifest of any supported type."""
        what = f"manifest {repo}:{ref}" if not _is_digest(ref) else f"manifest {repo}@{ref}"
        response = await self.request(
            "GET", f"/v2/{repo}/manifests/{ref}", headers={"Accept": MANIFEST_ACCEPT}
        )
        self.raise_for_status(response, what)
        raw = response.content
        length = response.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) != len(raw):
            raise MalformedResponseError(
                f"The {what} was cut short: {len(raw)} of {length} bytes", response=response
            )
        if len(raw) > MAX_MANIFEST_BYTES:
            raise MalformedResponseError(f"The {what} is larger than 4 MiB", response=response)
        header_digest = response.headers.get("Docker-Content-Digest")
        expected = ref if _is_digest(ref) else header_digest
        algorithm = _algorithm(expected) if expected else "sha256"
        digest = manifest_digest(raw, algorithm)
        if expected and digest != expected:
            raise DigestMismatchError(
                f"The {what} hashes to {digest}, not {expected}",
                expected=expected,
                actual=digest,
                response=response,
            )
        media_type, manifest = parse_manifest(raw, response.headers.get("Content-Type"))
        return ManifestResult(digest=digest, media_type=media_type, raw=raw, manifest=manifest)

    async def get_blob(self, repo: str, digest: str) -> bytes:
        """A small blob (a config), read whole and verified."""
        async with self.stream_blob(repo, digest) as blob:
            return await blob.read()

    async def get_config(self, repo: str, manifest: ImageManifest) -> ImageConfig:
        return parse_config(await self.get_blob(repo, manifest.config.digest))

    @asynccontextmanager
    async def stream_blob(
        self, repo: str, digest: str, chunk_size: int = 256 * 1024
    ) -> AsyncIterator[BlobStream]:
        """Stream a blob (redirects followed); the digest is checked when the stream ends."""
        if not _is_digest(digest):
            raise RegistryClientError(f"Not a digest: {digest!r}", title="Invalid digest")
        response = await self._send("GET", f"/v2/{repo}/blobs/{digest}", stream=True)
        try:
            if response.status_code >= 400:
                await response.aread()
                self.raise_for_status(response, f"blob {repo}@{digest}")
            yield BlobStream(response, digest, chunk_size)
        except httpx.TransportError as exc:
            raise _transport_error(exc, self.host) from exc
        finally:
            await response.aclose()

    async def get_referrers(
        self, repo: str, digest: str, artifact_type: str | None = None
    ) -> list[Descriptor]:
        """Manifests whose ``subject`` is ``digest``: the referrers API, else the tag schema."""
        params = {"artifactType": artifact_type} if artifact_type else None
        response = await self.request("GET", f"/v2/{repo}/referrers/{digest}", params=params)
        if response.status_code == 200:
            _, index = _parse_index(response.content, "referrers")
            found = list(index.manifests)
        elif response.status_code in (404, 405, 400):
            fallback_tag = digest.replace(":", "-")
            try:
                result = await self.get_manifest(repo, fallback_tag)
            except NotFoundError:
                return []
            if not isinstance(result.manifest, ImageIndex):
                return []
            found = list(result.manifest.manifests)
        else:
            self.raise_for_status(response, f"referrers of {repo}@{digest}")
            return []
        if artifact_type:
            found = [d for d in found if d.artifact_type == artifact_type]
        return found

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
        if not _is_digest(digest):
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
        if _is_digest(tag):
            raise RegistryClientError(f"{tag!r} is a digest, not a tag", title="Invalid tag")
        head = await self.head_manifest(repo, tag)
        siblings = tuple(t for t in await self.tags_for_digest(repo, head.digest) if t != tag)
        if dry_run:
            return UntagResult(repo, tag, head.digest, "dry-run", siblings)
        response = await self.request("DELETE", f"/v2/{repo}/manifests/{tag}")
        if response.status_code in (200, 202, 204):
            return UntagResult(repo, tag, head.digest, "tag-delete", siblings)
        code, _ = _oci_errors(response)
        if response.status_code not in (400, 405, 501) and code != "UNSUPPORTED":
            self.raise_for_status(response, f"tag {repo}:{tag}")
        placeholder = await self._put_placeholder(repo, tag)
        await self.delete_manifest(repo, placeholder)
        return UntagResult(repo, tag, head.digest, "placeholder", siblings, placeholder)

    async def _put_placeholder(self, repo: str, tag: str) -> str:
        """Point ``tag`` at a fresh, unique, empty OCI manifest; return its digest."""
        empty_digest = compute_digest(EMPTY_JSON)
        await self.upload_blob(repo, EMPTY_JSON, empty_digest)
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_EMPTY, "digest": empty_digest, "size": len(EMPTY_JSON)},
            "layers": [],
            "annotations": {
                "io.github.regtui.placeholder": f"untag {tag} {uuid.uuid4()}",
            },
        }
        raw = json.dumps(manifest, separators=(",", ":"), sort_keys=True).encode()
        await self.put_manifest(repo, tag, raw, OCI_MANIFEST)
        return compute_digest(raw)

    async def put_manifest(self, repo: str, ref: str, raw: bytes, media_type: str) -> str:
        response = await self.request(
            "PUT",
            f"/v2/{repo}/manifests/{ref}",
            content=raw,
            headers={"Content-Type": media_type},
        )
        self.raise_for_status(response, f"manifest upload {repo}:{ref}")
        return response.headers.get("Docker-Content-Digest") or compute_digest(raw)

    async def upload_blob(self, repo: str, data: bytes, digest: str | None = None) -> str:
        """Upload a small blob (monolithic POST + PUT); skipped when the registry has it."""
        digest = digest or compute_digest(data)
        head = await self.request("HEAD", f"/v2/{repo}/blobs/{digest}")
        if head.status_code == 200:
            return digest
        start = await self.request("POST", f"/v2/{repo}/blobs/uploads/")
        self.raise_for_status(start, f"blob upload to {repo}")
        location = start.headers.get("Location")
        if not location:
            raise MalformedResponseError("The upload answer has no Location", response=start)
        url = start.url.join(location)
        joiner = "&" if url.query else "?"
        done = await self.request(
            "PUT",
            f"{url}{joiner}digest={quote(digest)}",
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        self.raise_for_status(done, f"blob upload to {repo}")
        return digest


def _parse_index(raw: bytes, what: str) -> tuple[str, ImageIndex]:
    media_type, manifest = parse_manifest(raw, OCI_INDEX)
    if media_type not in INDEX_MEDIA_TYPES or not isinstance(manifest, ImageIndex):
        raise MalformedResponseError(f"The {what} answer is not an image index")
    return media_type, manifest


def _next_link(response: httpx.Response) -> str | None:
    """The ``rel="next"`` target of a ``Link`` header (RFC 8288), if any."""
    for header in response.headers.get_list("Link"):
        for part in header.split(","):
            target, _, params = part.partition(";")
            target = target.strip()
            if target.startswith("<") and target.endswith(">") and "next" in params:
                rels = [
                    p.split("=", 1)[1].strip().strip('"')
                    for p in params.split(";")
                    if p.strip().startswith("rel=")
                ]
                if any("next" in rel.split() for rel in rels):
                    return target[1:-1]
    return None


def _is_tls(exc: httpx.TransportError) -> bool:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return True
        cause = cause.__cause__ or cause.__context__
    text = str(exc).lower()
    return "certificate" in text or "ssl" in text or "tls" in text


def _transport_error(exc: httpx.TransportError, host: str) -> RegistryClientError:
    if _is_tls(exc):
        return TLSError(
            f"TLS with {host} failed ({exc}); use --ca-cert for a private CA or --insecure"
        )
    if isinstance(exc, httpx.TimeoutException):
        return ConnectError(f"{host} did not answer in time ({type(exc).__name__})")
    if isinstance(exc, httpx.RemoteProtocolError):
        return MalformedResponseError(f"{host} broke the connection mid-answer ({exc})")
    return ConnectError(f"Cannot reach {host}: {exc or type(exc).__name__}")
