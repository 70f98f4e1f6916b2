"""The quick check of a sync file: which images are unchanged, read without asyncio, httpx, the
auth code or the copy engine (:mod:`tui.client.pipeline`), for the common run that moves nothing.

``regtui sync`` tries this first. It plans as :func:`tui.data.sync.plan_sync` does, with the same
requests, pipelined per registry (:class:`tui.client.pipeline.Pipelines`: each registry on a few
kept-alive connections, every registry at the same time), each asked as soon as what it needs
has arrived (no phase waits for the last answer of another):

1. the catalog of each whole-registry source (``repositories`` filtered as the engine does);
2. each source repository's tag list (the entry's tag filter applied), as its catalog arrives;
3. as a tag list arrives, each wanted tag's digest on the source (``HEAD``, on the connection
   that read the list), and on the target (in batches of :data:`TARGET_BATCH` requests while
   tag lists still arrive, the rest after the last one): a ``HEAD`` per tag, or for a
   repository of :data:`EXT_TAGS_FROM` tags or more, one ``GET
   /v2/<name>/_regtui/tags`` (the bundled registry's report of every tag's digest); a registry
   that does not serve it (Distribution: 404 without an OCI error; anything else but 200) gets
   the ``HEAD`` requests. A ``NAME_UNKNOWN`` there counts as an absent repository only on a
   registry that served the report for another one (the question waits until one did, or
   until nothing else is awaited: then its tags are asked by ``HEAD``).

It answers only the plain case: no credentials for any registry of the file (none in it, none
in Docker's config), no proxy, no ``ca_cert``, not Docker Hub, no ``rate_limit``, no entry with
a ``platform`` or ``referrers``; and every answer plain (a ``200``, a ``404`` where one means
absent, one page of a list). Anything else is ``None``, and the engine plans again with the full
client, which reports failures in its own words. A request that times out is asked again there
too (so a registry that hangs costs the timeout twice).
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable, Sequence
from functools import partial

from tui.client.pipeline import Answer, NotPlain, Origin, Pipelines, Request
from tui.client.quick import plain_origin
from tui.client.reference import api_host
from tui.data.sync_jobs import ImageJob
from tui.logic.sync_spec import SyncSpec, SyncSpecError, target_repository

__all__ = ["EXT_TAGS_FROM", "MANIFEST_ACCEPT", "quick_plan"]

MANIFEST_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "application/vnd.docker.distribution.manifest.v1+json",
    ]
)
"""The client's ``Accept`` of a manifest (:data:`tui.client.models.MANIFEST_ACCEPT`, which a
test keeps equal: that module's import costs more than this whole check's requests)."""
EXT_TAGS_FROM = 8
"""Tags compared in one target repository from which its bundled registry's report is asked
rather than a ``HEAD`` per tag: the report reads every manifest and config of the repository,
about five ``HEAD`` requests' time on the server (100 of each, loopback: 0.19 s against 0.04 s)."""
PAGE_SIZE = 1000
TARGET_BATCH = 32
"""A target's requests sent together while the sources' tag lists still arrive."""
JSON_ACCEPT = "application/json"


def quick_plan(spec: SyncSpec, *, timeout: float = 30.0) -> list[ImageJob] | None:
    """Every image of ``spec``, each marked unchanged or not, in the engine's order; ``None``
    when this is not the plain case (see the module)."""
    if spec.rate_limit or any(e.platform is not None or e.referrers for e in spec.entries):
        return None
    origins: dict[str, Origin] = {}
    for entry in spec.entries:
        for registry in (entry.source_registry, entry.target_registry):
            origin = _origin(spec, registry)
            if origin is None:
                return None
            origins[registry] = origin
    try:
        return _Check(spec, origins, timeout).run()
    except (NotPlain, SyncSpecError):
        return None


def _origin(spec: SyncSpec, registry: str) -> Origin | None:
    bare = registry.split("://", 1)[-1]
    access = spec.registries.get(bare) or spec.registries.get(api_host(bare))
    if access is not None and (access.username or access.password_env or access.ca_cert):
        return None
    insecure = access.insecure if access is not None else False
    plain = plain_origin(registry, insecure=insecure)
    return None if plain is None else (plain[0], plain[1], insecure)


def _json(answer: Answer) -> object:
    try:
        return json.loads(answer.body)
    except (ValueError, RecursionError):
        raise NotPlain("not JSON") from None


def _names(answer: Answer, key: str) -> list[str]:
    """The one page of names of a ``200`` (the client's checks), in order, each once."""
    if answer.status != 200 or b"link" in answer.headers:
        raise NotPlain(f"answered {answer.status}")
    data = _json(answer)
    items = data.get(key) if isinstance(data, dict) else None
    items = items or []
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise NotPlain("not a list of names")
    return list(dict.fromkeys(items))


def _digest(answer: Answer, ref: str, *, absent_ok: bool) -> str | None:
    """The digest a ``HEAD`` of a manifest answered (``None``: absent, where that is allowed)."""
    if answer.status == 404 and absent_ok:
        return None
    digest = answer.headers.get(b"docker-content-digest", b"").decode("ascii", "replace")
    length = answer.headers.get(b"content-length", b"")
    if answer.status != 200 or not digest or not length.isdigit():
        raise NotPlain(f"answered {answer.status}")  # (the client then reads the manifest)
    if ref.startswith("sha256:") and digest != ref:
        raise NotPlain("a digest other than the one asked for")
    return digest


def _name_unknown(answer: Answer) -> bool:
    if answer.status != 404 or not answer.body:
        return False
    try:
        document = json.loads(answer.body)
    except (ValueError, RecursionError):
        return False
    errors = document.get("errors") if isinstance(document, dict) else None
    return isinstance(errors, list) and any(
        isinstance(e, dict) and e.get("code") == "NAME_UNKNOWN" for e in errors
    )


def _report_digests(answer: Answer, refs: Sequence[str]) -> list[str | None]:
    """What each of ``refs`` names in a ``_regtui/tags`` report, as a ``HEAD`` would answer: a
    tag's digest, or a digest asked for, when the report lists that manifest (it leaves out one
    it cannot read, whose ``HEAD`` answers 404), else ``None``."""
    document = _json(answer)
    if not isinstance(document, dict):
        raise NotPlain("the tags report is not a JSON object")
    tags: dict[str, str] = {}
    held: set[str] = set()
    for item in document.get("tags") or []:
        if isinstance(item, dict) and isinstance(item.get("tag"), str):
            digest = item.get("digest")
            if not isinstance(digest, str):
                raise NotPlain("a tag without a digest in the tags report")
            tags[item["tag"]] = digest
    for item in document.get("manifests") or []:
        if isinstance(item, dict) and isinstance(item.get("digest"), str):
            held.add(item["digest"])
    named = [ref if ref.startswith("sha256:") else tags.get(ref) for ref in refs]
    return [digest if digest in held else None for digest in named]


class _Check:
    """The plan, answer by answer: each callback asks what its answer makes known."""

    def __init__(self, spec: SyncSpec, origins: dict[str, Origin], timeout: float) -> None:
        self.spec = spec
        self.origins = origins
        self.timeout = timeout
        self.pipes = Pipelines(timeout=timeout)
        self.wanted: list[tuple[int, str, str, str]] = []
        """Entry, source repository, reference, target repository: one per image compared."""
        self.source: dict[int, str | None] = {}
        self.target: dict[int, str | None] = {}
        self.served: set[Origin] = set()
        """Registries that served a ``_regtui/tags`` report."""
        self.unknown: list[tuple[Origin, list[int]]] = []
        """Repositories a registry said ``NAME_UNKNOWN`` of before it served any report."""
        self.listing = 0
        """Catalogs and tag lists awaited."""
        self.held: dict[Origin, tuple[list[Request], list[Callable[[Answer], None]]]] = {}
        """The targets' requests not yet sent: sent :data:`TARGET_BATCH` at a time, the rest
        once every tag list arrived (a registry woken for each alone spends more)."""

    def run(self) -> list[ImageJob]:
        entries = self.spec.entries
        with self.pipes:
            for index, entry in enumerate(entries):
                if entry.source is None:
                    self.listing += 1
                    self._ask(
                        entry.source_registry,
                        ("GET", f"/v2/_catalog?n={PAGE_SIZE}", JSON_ACCEPT),
                        partial(self._catalog, index),
                    )
                else:
                    self._repositories(index, [entry.source.repository])
            self._listed()
            while True:
                self.pipes.drain()
                if not self.unknown:
                    break
                # No report served by those registries: their tags are asked one by one.
                unknown, self.unknown = self.unknown, []
                for origin, places in unknown:
                    self._heads(origin, places)
        jobs = [
            ImageJob.compared(entries[index], repo, ref, self.source[n], self.target[n])
            for n, (index, repo, ref, _) in enumerate(self.wanted)
        ]
        order = {id(entry): n for n, entry in enumerate(entries)}
        jobs.sort(key=lambda j: (order[id(j.entry)], j.source_repository, j.reference))
        return jobs

    def _ask(self, registry: str, request: Request, on_answer: Callable[[Answer], None]) -> None:
        self.pipes.ask(self.origins[registry], request, on_answer)

    def _listed(self) -> None:
        """After a catalog or a tag list: once none is awaited, every held request goes."""
        if self.listing:
            return
        held, self.held = self.held, {}
        for origin, (requests, callbacks) in held.items():
            self.pipes.ask_all(origin, requests, callbacks)

    def _catalog(self, index: int, answer: Answer) -> None:
        self.listing -= 1
        entry = self.spec.entries[index]
        self._repositories(
            index,
            [
                name
                for name in _names(answer, "repositories")
                if not entry.repositories
                or any(fnmatch.fnmatchcase(name, pattern) for pattern in entry.repositories)
            ],
        )
        self._listed()

    def _repositories(self, index: int, repos: list[str]) -> None:
        entry = self.spec.entries[index]
        if entry.source is not None and entry.kind == "image":
            for repo in repos:
                self._compare(index, repo, [entry.source.digest or entry.source.tag or ""])
            return
        self.listing += len(repos)
        self.pipes.ask_all(
            self.origins[entry.source_registry],
            [("GET", f"/v2/{repo}/tags/list?n={PAGE_SIZE}", JSON_ACCEPT) for repo in repos],
            [partial(self._tags, index, repo) for repo in repos],
            spread=True,
        )

    def _tags(self, index: int, repo: str, answer: Answer) -> None:
        self.listing -= 1
        entry = self.spec.entries[index]
        if answer.status != 404 or entry.kind != "registry":
            self._compare(index, repo, entry.tags.select(_names(answer, "tags")))
        # (a 404 of a whole registry's repository: deleted since the catalog, as the engine says)
        self._listed()

    def _compare(self, index: int, repo: str, refs: list[str]) -> None:
        """Each of ``refs``'s digest asked of the source and of the target."""
        entry = self.spec.entries[index]
        target_repo = target_repository(entry, repo)
        places = list(range(len(self.wanted), len(self.wanted) + len(refs)))
        self.wanted += [(index, repo, ref, target_repo) for ref in refs]
        requests: list[Request] = []
        callbacks: list[Callable[[Answer], None]] = []
        for n, ref in zip(places, refs, strict=True):
            requests.append(("HEAD", f"/v2/{repo}/manifests/{ref}", MANIFEST_ACCEPT))
            callbacks.append(partial(self._source_digest, n, ref))
        self.pipes.ask_all(self.origins[entry.source_registry], requests, callbacks)
        origin = self.origins[entry.target_registry]
        if len(places) >= EXT_TAGS_FROM:
            self._hold(
                origin,
                [("GET", f"/v2/{target_repo}/_regtui/tags", JSON_ACCEPT)],
                [partial(self._report, origin, places)],
            )
        elif places:
            self._heads(origin, places)

    def _hold(
        self, origin: Origin, requests: list[Request], callbacks: list[Callable[[Answer], None]]
    ) -> None:
        """Requests to a target: sent in batches while tag lists are awaited, else at once."""
        if not self.listing:
            self.pipes.ask_all(origin, requests, callbacks)
            return
        held_requests, held_callbacks = self.held.setdefault(origin, ([], []))
        held_requests += requests
        held_callbacks += callbacks
        if len(held_requests) >= TARGET_BATCH:
            del self.held[origin]
            self.pipes.ask_all(origin, held_requests, held_callbacks)

    def _source_digest(self, n: int, ref: str, answer: Answer) -> None:
        self.source[n] = _digest(answer, ref, absent_ok=False)

    def _heads(self, origin: Origin, places: list[int]) -> None:
        requests: list[Request] = []
        callbacks: list[Callable[[Answer], None]] = []
        for n in places:
            _, _, ref, target_repo = self.wanted[n]
            requests.append(("HEAD", f"/v2/{target_repo}/manifests/{ref}", MANIFEST_ACCEPT))
            callbacks.append(partial(self._target_digest, n, ref))
        self._hold(origin, requests, callbacks)

    def _target_digest(self, n: int, ref: str, answer: Answer) -> None:
        self.target[n] = _digest(answer, ref, absent_ok=True)

    def _report(self, origin: Origin, places: list[int], answer: Answer) -> None:
        """A report's digests; the references of a registry without the report asked by
        ``HEAD`` instead (of a repository it may not know: once it served none at the end)."""
        if answer.status == 200:
            digests = _report_digests(answer, [self.wanted[n][2] for n in places])
            for n, digest in zip(places, digests, strict=True):
                self.target[n] = digest
            if origin not in self.served:
                self.served.add(origin)
                # NAME_UNKNOWN from a registry that serves the report: those are absent.
                for unknown_origin, unknown_places in self.unknown:
                    if unknown_origin == origin:
                        self.target.update(dict.fromkeys(unknown_places))
                self.unknown = [u for u in self.unknown if u[0] != origin]
        elif _name_unknown(answer):
            if origin in self.served:
                self.target.update(dict.fromkeys(places))
            else:
                self.unknown.append((origin, places))
        else:
            self._heads(origin, places)
