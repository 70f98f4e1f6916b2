"""Prometheus metrics of one application (``http.debug.prometheus``), with ``prometheus_client``
from the ``metrics`` extra.

Names: ``registry_`` for what Distribution also measures (its ``registry_http_*`` family and
``registry_storage_action_seconds``, so a dashboard built for registry:2 keeps most of its
queries) or zot does (``registry_repository_storage_bytes``), ``regtui_`` for regtui's own (GC
runs). Storage driver operations are counted by the driver the factory wraps
(:mod:`embedded_registry.storage.metered`), bytes per repository by
:mod:`embedded_registry.repository_bytes`, GC runs by GC's observer hook.

Labels stay bounded: ``route`` is the route's pattern (``/v2/{name}/manifests/{reference}``),
never the raw path, and ``unmatched`` for a path no route serves; ``method`` is one of the
methods a route accepts (anything else is ``other``); ``code`` is the status; ``repository``
has one value per repository, as zot's.

Each application has its own :class:`~prometheus_client.CollectorRegistry` (never the global one),
so several apps in one process keep separate counts.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web
from aiohttp.web_urldispatcher import MatchInfoError
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge
from prometheus_client.exposition import generate_latest

from embedded_registry.gc import GcReport
from embedded_registry.gc.collect import COMPLETED
from embedded_registry.repository_bytes import RepositoryBytes
from embedded_registry.storage.api import RegistryStorage
from embedded_registry.storage.driver.base import StorageDriver
from embedded_registry.storage.metered import Cell, CounterSet, HistogramSet, Series, driver_metrics

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UPLOAD_ROUTE_MARK = "/blobs/uploads"
MANIFEST_ROUTE = "/v2/{name}/manifests/{reference}"
BLOB_ROUTE = "/v2/{name}/blobs/{digest}"
WRITES = frozenset({"PUT", "DELETE"})
CHANGING_ROUTES = frozenset({MANIFEST_ROUTE, BLOB_ROUTE})
"""A write that succeeded on these may move a repository's bytes (a manifest or a blob link
came or went)."""
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class _Answer:
    """The series one kind of answer (route, method, status) moves, and what it counts."""

    __slots__ = ("body_out", "changing", "latency", "received", "requests", "sent")

    def __init__(
        self,
        requests: Cell,
        latency: Series,
        received: Cell,
        sent: Cell,
        *,
        body_out: bool,
        changing: bool,
    ) -> None:
        self.requests, self.latency, self.received, self.sent = requests, latency, received, sent
        self.body_out = body_out
        """Whether it sends a body (a HEAD or a 304 declares a length it does not send)."""
        self.changing = changing
        """Whether it may move a repository's bytes (:data:`CHANGING_ROUTES`)."""


class RegistryMetrics:
    """The collectors of one application and the middleware that feeds them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # Per answer: plain numbers, turned into families when scraped (storage.metered).
        self.requests = CounterSet(
            "registry_http_requests",
            "HTTP requests answered, by route pattern, method and status code.",
            ["route", "method", "code"],
        )
        self.latency = HistogramSet(
            "registry_http_request_duration_seconds",
            "Time from the request to the last byte of the answer, by route pattern and method.",
            ["route", "method"],
            LATENCY_BUCKETS,
        )
        self.received = CounterSet(
            "registry_http_request_bytes",
            "Request body bytes received, by route pattern.",
            ["route"],
        )
        self.sent = CounterSet(
            "registry_http_response_bytes",
            "Response body bytes sent, by route pattern.",
            ["route"],
        )
        for collector in (self.requests, self.latency, self.received, self.sent):
            r.register(collector)
        self.uploads = Gauge(
            "registry_uploads_in_flight",
            "Blob upload requests (POST, PATCH, PUT under /blobs/uploads/) being served.",
            registry=r,
        )
        self.gc_runs = Counter(
            "regtui_gc_runs",
            "Online garbage collections, by outcome (completed, dry_run, busy, failed).",
            ["outcome"],
            registry=r,
        )
        self.gc_freed = Counter(
            "regtui_gc_freed_bytes",
            "Bytes freed by online garbage collections.",
            registry=r,
        )
        self.repository_bytes: RepositoryBytes | None = None

        self._answers: dict[tuple[object, str, int], _Answer] = {}
        """Series by (route object, method, status): bounded by the route table."""
        self._labels: dict[object, str] = {}
        """Route labels by route (the route table's objects)."""

    def attach(self, app: web.Application, storage: RegistryStorage) -> None:
        """Count ``storage``'s driver operations (when the factory metered its driver) and
        keep its bytes per repository (:mod:`embedded_registry.repository_bytes`), renewed in
        the background while ``app`` runs."""
        driver = getattr(storage, "driver", None)
        if not isinstance(driver, StorageDriver):
            return
        operations = driver_metrics(driver)
        if operations is not None:
            for collector in operations.collectors:
                self.registry.register(collector)
        self.repository_bytes = RepositoryBytes(driver)
        self.registry.register(self.repository_bytes)
        app.cleanup_ctx.append(self.repository_bytes.background)

    def gc_finished(self, outcome: str, report: GcReport | None) -> None:
        """GC's observer (:data:`embedded_registry.gc.collect.GcObserver`)."""
        self.gc_runs.labels(outcome).inc()
        if outcome == COMPLETED and report is not None:
            if report.bytes_freed > 0:
                self.gc_freed.inc(report.bytes_freed)
            self._changed()

    def _changed(self) -> None:
        if self.repository_bytes is not None:
            self.repository_bytes.changed()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def finished(self, request: web.BaseRequest, response: web.StreamResponse, took: float) -> None:
        """Count an answer once it was sent (called by the access logger, which aiohttp calls
        after the last byte): the latency and the bytes out are the whole answer's.

        The series of an answer are found with one lookup by (route object, method, status);
        the label, the method's bound and what the answer counts are worked out the first
        time only (:meth:`_answer`)."""
        try:
            route = request.match_info.route  # type: ignore[attr-defined]  # web.Request's
        except AttributeError:  # a bare BaseRequest: no route
            route = None
        method = request.method
        status = response.status
        answer = self._answers.get((route, method, status))
        if answer is None:
            answer = self._answer(request, route, method, status)
        answer.requests.value += 1
        latency = answer.latency
        latency.counts[bisect_left(latency.bounds, took)] += 1
        latency.sum += took
        body_in = getattr(request.content, "total_bytes", 0)
        if body_in:
            answer.received.value += body_in
        if answer.body_out:
            answer.sent.value += _sent(response)
        if answer.changing:
            self._changed()

    def _answer(self, request: web.BaseRequest, route: object, method: str, status: int) -> _Answer:
        """The series of an answer seen for the first time; kept for the next ones unless
        the route is the one-off route of an unmatched path (aiohttp makes one per such
        request) or the method is not one a route accepts (the table stays bounded)."""
        label = (
            UNMATCHED if route is None else self._labels.get(route) or self._label(request, route)
        )
        bounded = method if method in METHODS else "other"
        answer = _Answer(
            self.requests.cell(label, bounded, str(status)),
            self.latency.child(label, bounded),
            self.received.cell(label),
            self.sent.cell(label),
            body_out=bounded != "HEAD" and status != 304,
            changing=bounded in WRITES and status < 300 and label in CHANGING_ROUTES,
        )
        if label != UNMATCHED and bounded == method:
            self._answers[(route, method, status)] = answer
        return answer

    def _label(self, request: web.BaseRequest, matched: object) -> str:
        """The label of a route seen for the first time, kept unless it is the one-off route
        of an unmatched path (aiohttp makes one per such request)."""
        label = route_label(request)
        if label != UNMATCHED:
            self._labels[matched] = label
        return label

    def middleware(self) -> Callable[..., Awaitable[web.StreamResponse]]:
        """Blob uploads in flight (the handler's time: the body is read there); every answer
        is counted by :meth:`finished`. Other routes pass straight through."""

        @web.middleware
        async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.method == "GET" or request.method == "HEAD":
                return await handler(request)
            route = route_label(request)
            if UPLOAD_ROUTE_MARK not in route or request.method == "DELETE":
                return await handler(request)
            self.uploads.inc()
            try:
                return await handler(request)
            finally:
                self.uploads.dec()

        return metrics_middleware


def _sent(response: web.StreamResponse) -> int:
    """Body bytes sent: the declared length (aiohttp's ``body_length`` counts the headers
    too, and ``content_length`` reads the header twice)."""
    if not response.prepared:
        return 0
    declared = response.headers.get(hdrs.CONTENT_LENGTH)
    if declared is not None:
        return int(declared)
    return max(response.body_length, 0)


def route_label(request: web.BaseRequest) -> str:
    """The route's pattern: bounded, whatever names and digests the clients send."""
    if not isinstance(request, web.Request):
        return UNMATCHED
    match_info = request.match_info
    if isinstance(match_info, MatchInfoError):
        return UNMATCHED
    route = match_info.route
    resource = route.resource
    if resource is None:
        return UNMATCHED
    return resource.canonical


def metrics_handler(metrics: RegistryMetrics) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(
            body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    return handler
