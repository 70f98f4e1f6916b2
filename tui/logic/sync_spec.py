"""The ``regtui sync`` file: what to keep in step, read and checked before anything moves (pure).

The format follows regsync's (a list of ``sync`` entries, each a ``source`` and a ``target``
with its own tag filters, defaults beside them) rather than skopeo sync's (one YAML map per
source registry, the destination on the command line): several targets, per-entry filters and
a whole registry as a source all fit one file. From skopeo's it keeps the filter kinds
operators use (a tag list, a regular expression, a semver range). Passwords never live in the
file: ``password_env`` names the variable holding one, else the Docker config is used.

::

    version: 1
    defaults:
      platform: all          # or one platform, linux/amd64: the image for it, by itself
      referrers: false       # also the signatures and SBOMs that refer to each image
      parallel: 4            # images copied at once
      rate_limit: 0          # requests per second to each registry (0: no limit)
    registries:
      ghcr.io: {username: bot, password_env: GHCR_TOKEN}
      127.0.0.1:5000: {insecure: true}
    sync:
      - source: ghcr.io/acme/app            # a repository
        target: 127.0.0.1:5000/mirror/app
        tags:
          include: ["v*"]                    # globs
          regex: '^v\\d+\\.\\d+\\.\\d+$'     # RE2, the whole tag
          semver: ">=1.2 <2"
          exclude: ["*-rc*"]
          newest: 5                          # the 5 highest versions left
      - source: 127.0.0.1:5001               # a whole registry
        target: 127.0.0.1:5000/backup        # team/app -> backup/team/app
        repositories: ["team/*"]

Every mistake is a :class:`SyncSpecError` naming where it is (``sync[1].tags.semver``).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from regtui_retention.semver import SemverError, SemverRange, parse_range, parse_version
from regtui_retention.words import natural_key
from tui.client.reference import (
    NAME_RE,
    InvalidReferenceError,
    Reference,
    parse_reference,
    parse_registry,
)

if TYPE_CHECKING:
    from regtui_retention.patterns import TagRegex
    from tui.client.models import Platform

__all__ = [
    "Entry",
    "RegistryAccess",
    "SyncSpec",
    "SyncSpecError",
    "TagFilter",
    "parse_spec",
    "target_repository",
]

MAX_ENTRIES = 10_000
MAX_PARALLEL = 64


class SyncSpecError(ValueError):
    """The sync file cannot be used as written; the message says where and why."""


# The file's parts are named tuples, not dataclasses: a second run of unchanged sources checks
# them in a few tens of milliseconds, and dataclasses' imports (inspect, ast, dis) cost ~16 ms
# of CPU (a loaded machine's) of that (tests/client/test_cli_imports.py holds it).


class TagFilter(NamedTuple):
    """Which tags of a repository to copy: every filter given must hold, then ``newest``."""

    include: tuple[str, ...] = ()
    """Globs; a tag must match one (none given: every tag)."""
    exclude: tuple[str, ...] = ()
    regex: TagRegex | None = None
    semver: SemverRange | None = None
    newest: int | None = None
    """Then only the ``newest`` highest versions (tags that are no version rank below every
    version, in natural order)."""

    def select(self, tags: Iterable[str]) -> list[str]:
        """The tags to copy, highest version first."""
        chosen = [tag for tag in tags if self._passes(tag)]
        chosen.sort(key=_rank, reverse=True)
        return chosen if self.newest is None else chosen[: self.newest]

    def _passes(self, tag: str) -> bool:
        if self.include and not any(fnmatch.fnmatchcase(tag, g) for g in self.include):
            return False
        if any(fnmatch.fnmatchcase(tag, g) for g in self.exclude):
            return False
        if self.regex is not None and not self.regex.fullmatch(tag):
            return False
        return self.semver is None or self.semver.matches(tag)


def _rank(tag: str) -> tuple[int, Any, Any]:
    version = parse_version(tag)
    if version is None:
        return (0, (), natural_key(tag))
    return (1, version.key(), natural_key(tag))


class RegistryAccess(NamedTuple):
    username: str | None = None
    password_env: str | None = None
    insecure: bool = False
    ca_cert: str | None = None


class Entry(NamedTuple):
    """One ``sync`` item: a repository (or one image) or a whole registry, to a target."""

    where: str
    """``sync[N]``, for messages."""
    kind: str
    """``repository``, ``image`` (a tag or digest named) or ``registry``."""
    source: Reference | None
    """The source repository/image; ``None`` for a registry (see ``source_registry``)."""
    source_registry: str
    target_registry: str
    target_prefix: str
    """The target repository (``repository``/``image``) or prefix (``registry``, may be empty)."""
    tags: TagFilter = TagFilter()
    repositories: tuple[str, ...] = ()
    platform: Platform | None = None
    """``None``: every platform (the whole index)."""
    referrers: bool = False


class SyncSpec(NamedTuple):
    entries: tuple[Entry, ...]
    registries: Mapping[str, RegistryAccess]
    parallel: int = 4
    rate_limit: float = 0.0


_TOP = {"version", "defaults", "registries", "sync"}
_DEFAULTS = {"platform", "referrers", "parallel", "rate_limit"}
_ENTRY = {"source", "target", "type", "tags", "repositories", "platform", "referrers"}
_TAGS = {"include", "exclude", "regex", "semver", "newest"}
_ACCESS = {"username", "password_env", "insecure", "ca_cert"}


def _keys(value: Any, allowed: set[str], where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SyncSpecError(f"{where}: expected a mapping, not {_kind(value)}")
    unknown = sorted(str(k) for k in value if k not in allowed)
    if unknown:
        raise SyncSpecError(
            f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(allowed))})"
        )
    return value


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SyncSpecError(f"{where}: expected a non-empty string, not {_kind(value)}")
    return value.strip()


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise SyncSpecError(f"{where}: expected true or false, not {value!r}")
    return value


def _int(value: Any, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SyncSpecError(f"{where}: expected a whole number from {low} to {high}, not {value!r}")
    return value


def _globs(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Sequence) or not all(isinstance(v, str) and v for v in value):
        raise SyncSpecError(f"{where}: expected a glob or a list of globs")
    return tuple(value)


def _platform(value: Any, where: str) -> Platform | None:
    text = _text(value, where)
    if text == "all":
        return None
    # Only a file that names a platform loads the copy planner (and the client's models, with
    # httpx behind them): a run of a file without one checks its images without either.
    from tui.logic.copy_plan import PlatformError, parse_platform

    try:
        return parse_platform(text)
    except PlatformError:
        raise SyncSpecError(f"{where}: expected all or OS/ARCH[/VARIANT], not {text!r}") from None


def _tag_filter(value: Any, where: str) -> TagFilter:
    raw = _keys(value, _TAGS, where)
    regex = semver = None
    if "regex" in raw:
        from regtui_retention.patterns import PatternError, TagRegex  # (re2: a regex filter only)

        try:
            regex = TagRegex(_text(raw["regex"], f"{where}.regex"))
        except PatternError as error:
            raise SyncSpecError(f"{where}.regex: {error}") from None
    semver_text = None
    if "semver" in raw:
        semver_text = _text(raw["semver"], f"{where}.semver")
        try:
            semver = parse_range(semver_text)
        except SemverError as error:
            raise SyncSpecError(f"{where}.semver: {error}") from None
    return TagFilter(
        include=_globs(raw["include"], f"{where}.include") if "include" in raw else (),
        exclude=_globs(raw["exclude"], f"{where}.exclude") if "exclude" in raw else (),
        regex=regex,
        semver=semver,
        newest=_int(raw["newest"], f"{where}.newest", 1, 1_000_000) if "newest" in raw else None,
    )


def _registry_only(text: str) -> str | None:
    """``HOST[:PORT]`` (maybe with a scheme) when ``text`` names a registry alone."""
    if "/" in text.split("://", 1)[-1].rstrip("/"):
        return None
    try:
        parse_registry(text)
    except InvalidReferenceError:
        return None
    return text.rstrip("/")


def _entry(value: Any, where: str, defaults: Mapping[str, Any]) -> Entry:
    raw = _keys(value, _ENTRY, where)
    for needed in ("source", "target"):
        if needed not in raw:
            raise SyncSpecError(f"{where}: {needed} is missing")
    source_text = _text(raw["source"], f"{where}.source")
    target_text = _text(raw["target"], f"{where}.target")
    platform = _platform(raw.get("platform", defaults.get("platform", "all")), f"{where}.platform")
    referrers = _bool(raw.get("referrers", defaults.get("referrers", False)), f"{where}.referrers")
    tags = _tag_filter(raw["tags"], f"{where}.tags") if "tags" in raw else TagFilter()
    registry = _registry_only(source_text)
    kind = "registry" if registry is not None else "repository"
    source: Reference | None = None
    if registry is None:
        try:
            source = parse_reference(source_text, require_host=True)
        except InvalidReferenceError as error:
            raise SyncSpecError(f"{where}.source: {error}") from None
        if source.tag is not None or source.digest is not None:
            kind = "image"
    declared = raw.get("type")
    if declared is not None and declared != kind:
        raise SyncSpecError(
            f"{where}.type: {declared!r}, but the source {source_text!r} names a {kind}"
        )
    if kind == "image" and "tags" in raw:
        raise SyncSpecError(f"{where}.tags: the source names one image already; drop its tag")
    repositories: tuple[str, ...] = ()
    if "repositories" in raw:
        if kind != "registry":
            raise SyncSpecError(f"{where}.repositories: only for a whole registry as source")
        repositories = _globs(raw["repositories"], f"{where}.repositories")
    target_registry, target_prefix = _target(target_text, kind, f"{where}.target")
    return Entry(
        where=where,
        kind=kind,
        source=source,
        source_registry=registry if registry is not None else _registry_of(source),
        target_registry=target_registry,
        target_prefix=target_prefix,
        tags=tags,
        repositories=repositories,
        platform=platform,
        referrers=referrers,
    )


def _registry_of(source: Reference | None) -> str:
    assert source is not None
    return f"{source.scheme}://{source.registry}" if source.scheme else source.registry


def _target(text: str, kind: str, where: str) -> tuple[str, str]:
    registry = _registry_only(text)
    if registry is not None:
        if kind != "registry":
            raise SyncSpecError(f"{where}: name the target repository, HOST/REPO")
        return registry, ""
    try:
        ref = parse_reference(text, require_host=True)
    except InvalidReferenceError as error:
        raise SyncSpecError(f"{where}: {error}") from None
    if ref.digest is not None or (ref.tag is not None and kind != "image"):
        raise SyncSpecError(f"{where}: a target takes no tag nor digest (the source's are kept)")
    if ref.tag is not None:
        raise SyncSpecError(f"{where}: a target takes no tag (the source's is kept)")
    registry_text = f"{ref.scheme}://{ref.registry}" if ref.scheme else ref.registry
    return registry_text, ref.repository


def _access(value: Any, where: str) -> RegistryAccess:
    if isinstance(value, Mapping) and "password" in value:
        raise SyncSpecError(f"{where}.password: never in the file; name a variable: password_env")
    raw = _keys(value, _ACCESS, where)
    return RegistryAccess(
        username=_text(raw["username"], f"{where}.username") if "username" in raw else None,
        password_env=(
            _text(raw["password_env"], f"{where}.password_env") if "password_env" in raw else None
        ),
        insecure=_bool(raw.get("insecure", False), f"{where}.insecure"),
        ca_cert=_text(raw["ca_cert"], f"{where}.ca_cert") if "ca_cert" in raw else None,
    )


def parse_spec(document: Any) -> SyncSpec:
    """Check a loaded YAML document and turn it into a :class:`SyncSpec`."""
    raw = _keys(document, _TOP, "the sync file")
    version = raw.get("version", 1)
    if version != 1:
        raise SyncSpecError(f"version: {version!r} is not known (this regtui reads version 1)")
    defaults = _keys(raw.get("defaults") or {}, _DEFAULTS, "defaults")
    parallel = _int(defaults.get("parallel", 4), "defaults.parallel", 1, MAX_PARALLEL)
    rate = defaults.get("rate_limit", 0)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or rate < 0:
        raise SyncSpecError(f"defaults.rate_limit: expected requests per second >= 0, not {rate!r}")
    registries_raw = raw.get("registries") or {}
    if not isinstance(registries_raw, Mapping):
        raise SyncSpecError("registries: expected a mapping of HOST[:PORT] to its access")
    registries = {}
    for name, access in registries_raw.items():
        where = f"registries[{name!r}]"
        if not isinstance(name, str) or _registry_only(name) is None:
            raise SyncSpecError(f"{where}: not a registry HOST[:PORT]")
        registries[name] = _access(access, where)
    items = raw.get("sync")
    if not isinstance(items, list) or not items:
        raise SyncSpecError("sync: expected a list of entries (source, target)")
    if len(items) > MAX_ENTRIES:
        raise SyncSpecError(f"sync: {len(items)} entries, more than {MAX_ENTRIES}")
    entries = tuple(_entry(item, f"sync[{n}]", defaults) for n, item in enumerate(items))
    return SyncSpec(entries, registries, parallel=parallel, rate_limit=float(rate))


def target_repository(entry: Entry, source_repository: str) -> str:
    """Where a source repository goes: the entry's target, or the prefix + its name."""
    if entry.kind != "registry":
        return entry.target_prefix
    prefix = entry.target_prefix
    name = f"{prefix}/{source_repository}" if prefix else source_repository
    if not NAME_RE.match(name):
        raise SyncSpecError(f"{entry.where}: {name!r} is not a repository name")
    return name
