"""Fixtures of the black-box spec tests of the bundled registry."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.helpers.servers import RunningRegistry
from tests.helpers.spec import client_for


@pytest.fixture
def client(registry: RunningRegistry) -> Iterator[httpx.Client]:
    """An HTTP client on a running bundled registry (a test file may bind it elsewhere)."""
    with client_for(registry) as client:
        yield client
