"""Fixtures shared by every test: real registries on loopback ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.servers import (
    ADMIN_DIR_ENV,
    RunningRegistry,
    bundled_registry,
    distribution_registry,
)


@pytest.fixture(autouse=True)
def admin_secret_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A per-test directory for the bundled registry's local admin secrets (servers started by
    the test write there, the client library reads there): never the user's own."""
    directory = tmp_path_factory.mktemp("admin-secrets")
    monkeypatch.setenv(ADMIN_DIR_ENV, str(directory))
    return directory


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[RunningRegistry]:
    """The bundled registry, running on an empty storage root."""
    with bundled_registry(tmp_path / "registry") as running:
        yield running


@pytest.fixture
def distribution(tmp_path: Path) -> Iterator[RunningRegistry]:
    """Debian's docker-registry (CNCF Distribution 2.8) with delete enabled, on an empty root."""
    with distribution_registry(tmp_path / "distribution") as running:
        yield running
