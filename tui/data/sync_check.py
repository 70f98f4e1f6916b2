"""The quick check of a sync file: which images are unchanged, read without asyncio, httpx, the
auth code or the copy engine (:mod:`tui.client.pipeline`), for the common run that moves nothing.

``regtui sync`` tries this first. It plans as :func:`tui.data.sync.plan_sync` does, with the same
requests, pipelined per registry (the registries read at the same time, each in its threads):

1. the catalog of each whole-registry source (``repositories`` filtered as the engine does);
2. each source repository's tag list (the entry's tag filter applied);
3. each wanted tag's digest on the source (``HEAD``), and on the target: a ``HEAD`` per tag, or
   for a target repository compared on :data:`EXT_TAGS_FROM` tags or more, one ``GET
   /v2/<name>/_regtui/tags`` (the bundled registry's report of every tag's digest); a registry
   that does not serve it (Distribution: 404 without an OCI error; anything else but 200) gets
   the ``HEAD`` requests. A ``NAME_UNKNOWN`` there counts as an absent repository only on a
   registry that served the report for another one (else its tags are asked by ``HEAD``).

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
from collections.abc import Sequence

from tui.client.pipeline import Answer, NotPlain, Request, fetch_all, in_threads
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
JSON_ACCEPT = "application/json"

Origin = tuple[str, str, bool]
"""``(scheme, HOST[:PORT], insecure)``."""


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


def _fetch(work: dict[Origin, list[Request]], timeout: float) -> dict[Origin, list[Answer]]:
    """Each origin's requests, the origins at the same time."""
    results: dict[Origin, list[Answer]] = {}

    def one(origin: Origin) -> None:
        scheme, host, insecure = origin
        results[origin] = fetch_all(scheme, host, work[origin], insecure=insecure, timeout=timeout)

    in_threads(one, [origin for origin, requests in work.items() if requests])
    return results


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
    def __init__(self, spec: SyncSpec, origins: dict[str, Origin], timeout: float) -> None:
        self.spec = spec
        self.origins = origins
        self.timeout = timeout

    def run(self) -> list[ImageJob]:
        entries = self.spec.entries
        repositories = self._repositories()
        # (entry index, repository) -> the references to compare, in the engine's order
        refs = self._references(repositories)
        wanted: list[tuple[int, str, str, str]] = []  # entry, repository, reference, target
        for (index, repo), selected in refs.items():
            target_repo = target_repository(entries[index], repo)
            wanted += [(index, repo, ref, target_repo) for ref in selected]
        source_digests, target_digests = self._digests(wanted)
        jobs: list[ImageJob] = []
        for n, (index, repo, ref, target_repo) in enumerate(wanted):
            entry = entries[index]
            digest, have = source_digests[n], target_digests[n]
            jobs.append(
                ImageJob(
                    entry=entry,
                    source_registry=entry.source_registry,
                    source_repository=repo,
                    reference=ref,
                    target_registry=entry.target_registry,
                    target_repository=target_repo,
                    source_digest=digest,
                    target_digest=have,
                    unchanged=have == digest,
                )
            )
        order = {id(entry): n for n, entry in enumerate(entries)}
        jobs.sort(key=lambda j: (order[id(j.entry)], j.source_repository, j.reference))
        return jobs

    def _repositories(self) -> list[tuple[int, str]]:
        """``(entry index, source repository)`` of every entry, catalogs read."""
        whole = [n for n, e in enumerate(self.spec.entries) if e.source is None]
        work: dict[Origin, list[Request]] = {}
        for n in whole:
            origin = self.origins[self.spec.entries[n].source_registry]
            work.setdefault(origin, []).append(("GET", f"/v2/_catalog?n={PAGE_SIZE}", JSON_ACCEPT))
        answers = _fetch(work, self.timeout)
        taken = {origin: iter(found) for origin, found in answers.items()}
        found: list[tuple[int, str]] = []
        for n, entry in enumerate(self.spec.entries):
            if entry.source is not None:
                found.append((n, entry.source.repository))
                continue
            names = _names(next(taken[self.origins[entry.source_registry]]), "repositories")
            found += [
                (n, name)
                for name in names
                if not entry.repositories
                or any(fnmatch.fnmatchcase(name, pattern) for pattern in entry.repositories)
            ]
        return found

    def _references(self, repositories: list[tuple[int, str]]) -> dict[tuple[int, str], list[str]]:
        entries = self.spec.entries
        work: dict[Origin, list[Request]] = {}
        listed: list[tuple[int, str]] = []
        refs: dict[tuple[int, str], list[str]] = {}
        for index, repo in repositories:
            entry = entries[index]
            if entry.source is not None and entry.kind == "image":
                refs[(index, repo)] = [entry.source.digest or entry.source.tag or ""]
                continue
            origin = self.origins[entry.source_registry]
            target = f"/v2/{repo}/tags/list?n={PAGE_SIZE}"
            work.setdefault(origin, []).append(("GET", target, JSON_ACCEPT))
            listed.append((index, repo))
        answers = _fetch(work, self.timeout)
        taken = {origin: iter(found) for origin, found in answers.items()}
        for index, repo in listed:
            entry = entries[index]
            answer = next(taken[self.origins[entry.source_registry]])
            if answer.status == 404 and entry.kind == "registry":
                continue  # deleted between the catalog and now, as the engine says
            refs[(index, repo)] = entry.tags.select(_names(answer, "tags"))
        return refs

    def _digests(
        self, wanted: list[tuple[int, str, str, str]]
    ) -> tuple[list[str | None], list[str | None]]:
        entries = self.spec.entries
        work: dict[Origin, list[Request]] = {}
        source_at: list[tuple[Origin, int]] = []
        for index, repo, ref, _ in wanted:
            origin = self.origins[entries[index].source_registry]
            requests = work.setdefault(origin, [])
            source_at.append((origin, len(requests)))
            requests.append(("HEAD", f"/v2/{repo}/manifests/{ref}", MANIFEST_ACCEPT))
        # The target: per repository, its references (and which of ``wanted`` each is).
        by_repo: dict[tuple[Origin, str], list[int]] = {}
        for n, (index, _, _, target_repo) in enumerate(wanted):
            origin = self.origins[entries[index].target_registry]
            by_repo.setdefault((origin, target_repo), []).append(n)
        reports: list[tuple[Origin, str, int]] = []  # origin, repository, request's place
        heads: list[tuple[Origin, int, int]] = []  # origin, wanted's place, request's place
        for (origin, target_repo), places in by_repo.items():
            requests = work.setdefault(origin, [])
            if len(places) >= EXT_TAGS_FROM:
                reports.append((origin, target_repo, len(requests)))
                requests.append(("GET", f"/v2/{target_repo}/_regtui/tags", JSON_ACCEPT))
            else:
                for n in places:
                    heads.append((origin, n, len(requests)))
                    requests.append(self._target_head(wanted[n]))
        answers = _fetch(work, self.timeout)
        source = [
            _digest(answers[origin][at], wanted[n][2], absent_ok=False)
            for n, (origin, at) in enumerate(source_at)
        ]
        target: list[str | None] = [None] * len(wanted)
        for origin, n, at in heads:
            target[n] = _digest(answers[origin][at], wanted[n][2], absent_ok=True)
        self._read_reports(reports, answers, by_repo, wanted, target)
        return source, target

    @staticmethod
    def _target_head(want: tuple[int, str, str, str]) -> Request:
        _, _, ref, target_repo = want
        return ("HEAD", f"/v2/{target_repo}/manifests/{ref}", MANIFEST_ACCEPT)

    def _read_reports(
        self,
        reports: list[tuple[Origin, str, int]],
        answers: dict[Origin, list[Answer]],
        by_repo: dict[tuple[Origin, str], list[int]],
        wanted: list[tuple[int, str, str, str]],
        target: list[str | None],
    ) -> None:
        """Each report's digests into ``target``; the references of a registry without the
        report (or of a repository it may not know) asked by ``HEAD`` instead."""
        served: set[Origin] = set()
        unknown: list[tuple[Origin, str]] = []
        unserved: list[tuple[Origin, str]] = []
        for origin, target_repo, at in reports:
            answer = answers[origin][at]
            places = by_repo[(origin, target_repo)]
            if answer.status == 200:
                served.add(origin)
                digests = _report_digests(answer, [wanted[n][2] for n in places])
                for n, digest in zip(places, digests, strict=True):
                    target[n] = digest
            elif _name_unknown(answer):
                unknown.append((origin, target_repo))
            else:
                unserved.append((origin, target_repo))
        ask = unserved + [(o, r) for o, r in unknown if o not in served]
        # (a NAME_UNKNOWN from a registry that served a report: the repository is absent)
        work: dict[Origin, list[Request]] = {}
        heads: list[tuple[Origin, int, int]] = []
        for origin, target_repo in ask:
            requests = work.setdefault(origin, [])
            for n in by_repo[(origin, target_repo)]:
                heads.append((origin, n, len(requests)))
                requests.append(self._target_head(wanted[n]))
        more = _fetch(work, self.timeout)
        for origin, n, at in heads:
            target[n] = _digest(more[origin][at], wanted[n][2], absent_ok=True)
