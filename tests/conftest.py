"""Fixtures shared by every test: a hermetic environment and real registries on loopback ports."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.servers import (
    SCRUBBED_ENV_PREFIXES,
    RunningRegistry,
    bundled_registry,
    distribution_registry,
)

XDG_DIRS = ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME")


@pytest.fixture(autouse=True)
def hermetic_environment(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """No test sees the developer's settings: an empty home, no Docker config, no ``REGTUI_*``
    or ``REGISTRY_*`` variables. Returns the temporary home (outside ``tmp_path``, so tests that
    list ``tmp_path`` see only their own files). A test may set any of them again itself."""
    for name in list(os.environ):
        if name.startswith(SCRUBBED_ENV_PREFIXES):
            monkeypatch.delenv(name)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("DOCKER_CONFIG", str(home / ".docker"))
    for name in XDG_DIRS:
        monkeypatch.setenv(name, str(home / name.lower()))
    return home


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
