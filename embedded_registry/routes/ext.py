"""Extension endpoints under ``/v2/_regtui/ext/`` (storage report, GC): written by the GC work."""

from __future__ import annotations

from aiohttp import web


def setup_routes(app: web.Application) -> None:
    """Register the extension routes on ``app`` (none yet)."""
    del app
