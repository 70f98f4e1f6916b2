"""Fixtures of the client tests: the client's two transports."""

from __future__ import annotations

import pytest

LIGHT, FAST = "light", "aiohttp"


@pytest.fixture(params=[LIGHT, FAST])
def each_transport(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test once on the light transport (what a command that makes a few requests
    uses) and once on aiohttp's pool (what a walk switches to): clients made without
    ``fast_after`` use the one named."""
    from tui.client import _transport

    monkeypatch.setattr(_transport, "FAST_AFTER", 10**9 if request.param == LIGHT else 0)
    return str(request.param)
