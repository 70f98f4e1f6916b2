"""Many tags' manifests and their configs, pipelined: what the tag table reads of a big repository.

Through the full client a tag's row costs two requests of ~0.35 ms of CPU each (httpx's request
and response objects, the auth flow, the event loop) plus the parsing, all on the app's event
loop. Here the same GETs go over :mod:`tui.client.pipeline`'s kept-alive connections (a few per
registry, requests written back to back, answers read in order, each connection read in a thread
of its own), and each answer is checked and parsed in that thread:

* a manifest is read by tag, bounded (1 MiB: a bigger one ends the pipelining, the full client
  reads the rest), its digest computed and checked against ``Docker-Content-Digest``, parsed
  with the client's parser (:func:`tui.client.models.parse_manifest`, bounded nesting);
* an image's config is read once per distinct digest, however many tags share it, its digest
  checked, parsed with :func:`tui.client.models.parse_config`;
* whatever is not that plain (a status other than 200, a redirect, a digest that does not
  match, a body that does not parse, an index whose platforms are still to read) is handed back
  as an unfinished :class:`BulkItem`: the caller reads it with the full client, which retries,
  follows, and says in its own words what is wrong. A 401 or 403 also stops the pipelining (a
  token expired: the client fetches another, and reads the rest).

Credentials: the ``Authorization`` the client would send now (:meth:`RegistryAuth.
known_authorization`: Basic, or the Bearer token of the repository's pull scope), to the
registry's own origin, the only one connected to (a redirect is not followed here). TLS: the
client's trust (the system store, ``--ca-cert``'s context, or none with ``--insecure``). Only a
client with its own transport and no proxy in the environment pipelines (see :func:`origin_of`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

from tui.client._digests import compute_digest, digest_algorithm, manifest_digest
from tui.client.errors import RegistryClientError
from tui.client.models import (
    MANIFEST_ACCEPT,
    ImageConfig,
    ImageIndex,
    ImageManifest,
    ManifestResult,
    parse_config,
    parse_manifest,
)
from tui.client.pipeline import CONNECTIONS, DEPTH, Answer, NotPlain, Pipelines, Request
from tui.client.quick import _proxied

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ssl

    from tui.client.registry import RegistryClient

__all__ = ["BulkItem", "BulkOrigin", "BulkReader", "origin_of"]

FIRST = 16
"""Tags asked at first (see :class:`BulkReader`)."""
_PARSE_ERRORS = (RegistryClientError, ValueError, KeyError, TypeError, RecursionError)
"""What a malformed body raises while it is checked and parsed: the tag is left to the client."""


@dataclass(frozen=True)
class BulkItem:
    """What the pipeline read of one tag."""

    tag: str
    result: ManifestResult | None = None
    """Its manifest, digest checked (``None``: not read here)."""
    config: ImageConfig | None = None
    """The image's config, where its manifest is an image's (not an artifact's)."""
    complete: bool = False
    """Whether this is all the row needs; else the caller reads the rest with the client."""


@dataclass(frozen=True)
class BulkOrigin:
    """Where and how the pipeline connects: the client's registry, as the client speaks to it."""

    scheme: str
    host: str
    insecure: bool
    tls: ssl.SSLContext | None
    authorization: Callable[[str], str | None]
    """The ``Authorization`` for a scope (``repository:NAME:pull``) now, if any."""
    timeout: float


async def origin_of(client: RegistryClient) -> BulkOrigin | None:
    """How to pipeline to ``client``'s registry, or ``None`` where the client alone is to be
    asked (a transport given to it, a proxy in the environment)."""
    import ssl

    if not client.own_transport or _proxied():
        return None
    await client._ensure_base_url()  # the scheme decided (a probe on loopback)
    scheme, _, host = client.base_url.partition("://")
    if scheme not in ("http", "https"):
        return None
    verify = client.verify
    return BulkOrigin(
        scheme,
        host,
        insecure=verify is False,
        tls=verify if isinstance(verify, ssl.SSLContext) else None,
        authorization=client.auth.known_authorization,
        timeout=client.timeout,
    )


class BulkReader:
    """Reads the manifest of each tag ``next_tag`` gives (``None``: no more) and each image's
    config, pipelined (see the module); every tag asked ends in one call of ``deliver``, from
    one of the reader's threads. :meth:`run` (in a thread of the caller's) returns once every
    tag asked is delivered: tags still unanswered when the pipelining stopped (a failure, an
    answer it does not read, :meth:`cancel`) are delivered unfinished.

    Up to ``connections * depth / 2`` tags are in flight at a time (a manifest and a config
    each), :data:`FIRST` at first, two more as each manifest arrives until then (the first
    answers come soon: the rows on screen, that ``next_tag`` puts first, are not queued behind
    a whole window of others); ``next_tag`` is asked again as each manifest arrives.
    """

    def __init__(
        self,
        origin: BulkOrigin,
        repo: str,
        next_tag: Callable[[], str | None],
        deliver: Callable[[BulkItem], None],
        *,
        connections: int = CONNECTIONS,
        depth: int = DEPTH,
    ) -> None:
        self.origin = origin
        self.repo = repo
        self.next_tag = next_tag
        self.deliver = deliver
        self.connections = max(1, connections)
        self.depth = max(2, depth)
        self.window = self.connections * self.depth // 2
        """Tags whose manifest is asked and not answered, at most."""
        self.requests = 0
        """Requests sent (manifests and configs)."""
        self.stopped: str | None = None
        """Why the pipelining stopped early (the client read the rest), if it did."""
        self._scope = f"repository:{repo}:pull"
        self._lock = threading.Lock()
        """Guards the state below (callbacks run one at a time, :meth:`run` primes beside)."""
        self._asked: set[str] = set()
        """Tags whose manifest is asked, not answered."""
        self._waiting: dict[str, list[tuple[str, ManifestResult]]] = {}
        """Config digest -> the tags (and their manifests) waiting for it (asked once)."""
        self._configs: dict[str, ImageConfig | None] = {}
        """Config digest -> the config read (``None``: not readable here)."""
        self._stop = False
        self._pipelines: Pipelines | None = None
        self._cancelled = threading.Event()
        self.done = threading.Event()
        """Set once :meth:`run` has returned (every tag asked delivered)."""

    # -- the caller's side --------------------------------------------------------------------
    def run(self) -> None:
        """Read until ``next_tag`` has no more (blocking: call it in a thread)."""
        try:
            self._run()
        finally:
            self.done.set()

    def _run(self) -> None:
        origin = self.origin
        with Pipelines(
            timeout=origin.timeout,
            connections=self.connections,
            depth=self.depth,
            tls=origin.tls,
        ) as pipelines:
            self._pipelines = pipelines
            try:
                if not self._cancelled.is_set():
                    first: list[str] = []
                    for _ in range(min(FIRST, self.window)):
                        tag = self.next_tag()
                        if tag is None:
                            break
                        first.append(tag)
                    with self._lock:
                        self._asked.update(first)
                    if first:
                        self.requests += len(first)
                        pipelines.ask_all(
                            self._where(),
                            [self._manifest_request(tag) for tag in first],
                            [self._on_manifest(tag) for tag in first],
                            spread=True,
                        )
                    pipelines.drain()
            except NotPlain as error:
                self.stopped = str(error)
            finally:
                self._pipelines = None
        self._deliver_leftovers()

    def cancel(self) -> None:
        """Stop: nothing more is asked, connections are closed (from any thread)."""
        self._cancelled.set()
        with self._lock:
            self._stop = True
        pipelines = self._pipelines
        if pipelines is not None:
            pipelines.close()

    def _deliver_leftovers(self) -> None:
        with self._lock:
            asked, self._asked = self._asked, set()
            waiting, self._waiting = self._waiting, {}
        for tag in asked:
            self.deliver(BulkItem(tag))
        for tags in waiting.values():
            for tag, result in tags:
                self.deliver(BulkItem(tag, result))

    # -- requests ------------------------------------------------------------------------------
    def _where(self) -> tuple[str, str, bool]:
        return (self.origin.scheme, self.origin.host, self.origin.insecure)

    def _request(self, target: str, accept: str) -> Request:
        authorization = self.origin.authorization(self._scope)
        if authorization:
            return ("GET", target, accept, authorization)
        return ("GET", target, accept)

    def _manifest_request(self, tag: str) -> Request:
        return self._request(f"/v2/{quote(self.repo)}/manifests/{quote(tag)}", MANIFEST_ACCEPT)

    def _ask(self, request: Request, on_answer: Callable[[Answer], None]) -> None:
        pipelines = self._pipelines
        if pipelines is None:
            raise NotPlain("the pipelines closed")
        self.requests += 1
        pipelines.ask(self._where(), request, on_answer)

    def _feed(self) -> None:
        """The next tags' manifests asked (from a callback): one for the one answered, and
        one more while the window is not full."""
        with self._lock:
            room = 0 if self._stop else min(2, self.window - len(self._asked))
        for _ in range(room):
            tag = self.next_tag()
            if tag is None:
                return
            with self._lock:
                self._asked.add(tag)
            self.requests += 1
            pipelines = self._pipelines
            if pipelines is None:
                raise NotPlain("the pipelines closed")
            # Spread: to the connection with the fewest unanswered (the registry answers the
            # connections in parallel); a config goes on the connection its manifest came by.
            pipelines.ask_all(
                self._where(),
                [self._manifest_request(tag)],
                [self._on_manifest(tag)],
                spread=True,
            )

    # -- answers (in the connections' threads, one at a time) ----------------------------------
    def _on_manifest(self, tag: str) -> Callable[[Answer], None]:
        def on_answer(answer: Answer) -> None:
            with self._lock:
                self._asked.discard(tag)
                if answer.status in (401, 403) and not self._stop:
                    self._stop = True  # the client renews the token and reads the rest
                    self.stopped = f"the registry answered {answer.status}"
            item = self._read_manifest(tag, answer)
            if isinstance(item, BulkItem):
                self.deliver(item)
            else:
                self._wait_for_config(tag, item)
            self._feed()

        return on_answer

    def _read_manifest(self, tag: str, answer: Answer) -> BulkItem | ManifestResult:
        """The tag's item when it is done (or not readable here), else its image manifest
        (whose config is to read)."""
        if answer.status != 200:
            return BulkItem(tag)
        raw = answer.body
        header_digest = answer.headers.get(b"docker-content-digest", b"").decode("latin-1")
        content_type = answer.headers.get(b"content-type", b"").decode("latin-1") or None
        try:
            algorithm = digest_algorithm(header_digest) if header_digest else "sha256"
            digest = manifest_digest(raw, algorithm)
            if header_digest and digest != header_digest:
                return BulkItem(tag)  # the client reports the mismatch
            media_type, manifest = parse_manifest(raw, content_type)
        except _PARSE_ERRORS:
            return BulkItem(tag)
        result = ManifestResult(digest=digest, media_type=media_type, raw=raw, manifest=manifest)
        if isinstance(manifest, ImageManifest) and not manifest.is_artifact:
            return result
        # An index: its platforms' manifests are the client's to read; the rest is complete.
        return BulkItem(tag, result, complete=not isinstance(manifest, ImageIndex))

    def _wait_for_config(self, tag: str, result: ManifestResult) -> None:
        assert isinstance(result.manifest, ImageManifest)
        digest = result.manifest.config.digest
        with self._lock:
            if digest in self._configs:
                config = self._configs[digest]
                ready = True
            else:
                ready = False
                first = digest not in self._waiting
                self._waiting.setdefault(digest, []).append((tag, result))
        if ready:
            self.deliver(BulkItem(tag, result, config, complete=config is not None))
            return
        if first:
            target = f"/v2/{quote(self.repo)}/blobs/{quote(digest, safe=':')}"
            self._ask(self._request(target, "*/*"), self._on_config(digest))

    def _on_config(self, digest: str) -> Callable[[Answer], None]:
        def on_answer(answer: Answer) -> None:
            config: ImageConfig | None = None
            if answer.status == 200:
                try:
                    if compute_digest(answer.body, digest_algorithm(digest)) == digest:
                        config = parse_config(answer.body)
                except _PARSE_ERRORS:
                    config = None
            with self._lock:
                self._configs[digest] = config
                tags = self._waiting.pop(digest, [])
            for tag, result in tags:
                self.deliver(BulkItem(tag, result, config, complete=config is not None))

        return on_answer
