"""Image references: ``[scheme://]host[:port]/namespace/repo[:tag][@sha256:...]``.

Follows Docker's rules: the first path component is a registry host only when it contains a
``.`` or a ``:`` or is ``localhost``; otherwise the registry is Docker Hub (``docker.io``, served
by ``registry-1.docker.io``) and single-component names get the ``library/`` prefix there.
"""

from __future__ import annotations

import re

__all__ = [
    "DOCKER_HUB",
    "DOCKER_HUB_API",
    "InvalidReferenceError",
    "Reference",
    "api_host",
    "is_loopback_host",
    "parse_reference",
    "parse_registry",
]

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})

# The OCI distribution spec's grammar for names, tags and digests.
_NAME_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_RE = re.compile(rf"^{_NAME_COMPONENT}(?:/{_NAME_COMPONENT})*$")
TAG_RE = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
_HOST_RE = re.compile(r"^(?:\[[0-9a-fA-F:.]+\]|[a-zA-Z0-9.-]+)(?::[0-9]+)?$")


class InvalidReferenceError(ValueError):
    """The text is not an image reference (a usage error for the CLI)."""


TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy reads both)

if TYPE_CHECKING:
    from typing import NamedTuple

    class _Fields(NamedTuple):
        registry: str
        repository: str
        tag: str | None = None
        digest: str | None = None
        scheme: str | None = None

else:  # the same tuple without loading typing: regtui tags parses one on its quick path
    from collections import namedtuple

    _Fields = namedtuple(
        "_Fields", ("registry", "repository", "tag", "digest", "scheme"), defaults=(None,) * 3
    )


class Reference(_Fields):
    """An image reference, parsed. (A named tuple, not a dataclass: ``regtui tags`` parses one
    on its quick path, and :mod:`dataclasses` costs its imports, ``inspect`` among them, a
    few milliseconds of a command that should take a few tens; :mod:`typing`'s
    ``NamedTuple`` costs that module.)

    ``registry`` as the user names it (``docker.io``, ``127.0.0.1:5000``, ``ghcr.io``);
    ``scheme`` is ``http``/``https`` when the user wrote it explicitly, else ``None`` (decided
    later)."""

    __slots__ = ()

    @property
    def ref(self) -> str:
        """What to ask ``/manifests/`` for: the digest when there is one, else the tag."""
        return self.digest or self.tag or "latest"

    @property
    def api_host(self) -> str:
        return api_host(self.registry)

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def api_host(registry: str) -> str:
    """The host that serves the API: Docker Hub's name differs from its API host."""
    return DOCKER_HUB_API if registry in _HUB_ALIASES else registry


def _split_scheme(text: str) -> tuple[str | None, str]:
    for scheme in ("http", "https"):
        prefix = f"{scheme}://"
        if text.lower().startswith(prefix):
            return scheme, text[len(prefix) :]
    if "://" in text:
        raise InvalidReferenceError(f"unsupported scheme in {text!r} (use http:// or https://)")
    return None, text


def _looks_like_host(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost"


def parse_registry(text: str) -> tuple[str | None, str]:
    """Parse ``[scheme://]host[:port][/]`` into ``(scheme, host)``."""
    scheme, rest = _split_scheme(text.strip())
    host = rest.rstrip("/")
    if not host or "/" in host or not _HOST_RE.match(host):
        raise InvalidReferenceError(f"not a registry host: {text!r}")
    return scheme, host.lower()


def parse_reference(text: str, *, require_host: bool = False) -> Reference:
    """Parse an image reference; raise :class:`InvalidReferenceError` when it is not one."""
    scheme, rest = _split_scheme(text.strip())
    if not rest:
        raise InvalidReferenceError("empty image reference")
    digest: str | None = None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not DIGEST_RE.match(digest):
            raise InvalidReferenceError(f"invalid digest {digest!r}")
    first, sep, remainder = rest.partition("/")
    if sep and _looks_like_host(first):
        registry, path = first.lower(), remainder
    elif scheme is not None or require_host:
        raise InvalidReferenceError(f"{text!r} does not start with a registry host")
    else:
        registry, path = DOCKER_HUB, rest
    tag: str | None = None
    last_slash = path.rfind("/")
    colon = path.rfind(":")
    if colon > last_slash:
        path, tag = path[:colon], path[colon + 1 :]
        if not TAG_RE.match(tag):
            raise InvalidReferenceError(f"invalid tag {tag!r}")
    if not path or not NAME_RE.match(path):
        raise InvalidReferenceError(f"invalid repository name {path!r}")
    if registry in _HUB_ALIASES:
        registry = DOCKER_HUB
        if "/" not in path:
            path = f"library/{path}"
    return Reference(registry=registry, repository=path, tag=tag, digest=digest, scheme=scheme)


def is_loopback_host(host: str) -> bool:
    """True for ``localhost``, ``127.0.0.0/8`` and ``[::1]`` (with or without a port)."""
    name = host
    if name.startswith("["):
        name = name[1 : name.find("]")]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    name = name.lower()
    return name in ("localhost", "::1") or name.startswith("127.")
