"""What ``regtui connect`` and ``regtui serve --local`` tell the app (no Textual here)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AppSettings:
    """What ``regtui connect`` and ``regtui serve --local`` tell the app."""

    registry: str
    """``host[:port]`` (or a URL) of the registry."""
    username: str | None = None
    password: str | None = None
    insecure: bool = False
    ca_cert: str | None = None
    read_only: bool = False
    timeout: float = 30.0
    max_concurrency: int = 8
    title: str | None = None
    """Shown in the header instead of the registry address."""
    pull_host: str | None = None
    """The registry name for ``docker pull`` when it differs (a proxy, a DNS name)."""
