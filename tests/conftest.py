"""Fixtures shared by every test: a hermetic environment and real registries on loopback ports."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.servers import (
    ADMIN_DIR_ENV,
    SCRUBBED_ENV_PREFIXES,
    RunningRegistry,
    bundled_registry,
    distribution_registry,
)


@pytest.fixture(scope="session", autouse=True)
def admin_secret_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Where the bundled registries of this test session write their local admin secrets, and
    where the client library looks for them: never the user's own directory. Session-wide so
    that module-scoped registries use it too; the files are per port, so registries never
    collide (each xdist worker has its own session directory). A test that wants a directory
    of its own sets ``REGTUI_ADMIN_DIR`` itself (``monkeypatch``)."""
    directory = tmp_path_factory.mktemp("admin-secrets")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ADMIN_DIR_ENV, str(directory))
        yield directory


XDG_DIRS = ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME")


@pytest.fixture(autouse=True)
def hermetic_environment(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    admin_secret_dir: Path,
) -> Path:
    """No test sees the developer's settings: an empty home, no Docker config, no ``REGTUI_*``
    or ``REGISTRY_*`` variables. Returns the temporary home (outside ``tmp_path``, so tests that
    list ``tmp_path`` see only their own files). A test may set any of them again itself."""
    for name in list(os.environ):
        if name.startswith(SCRUBBED_ENV_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.setenv(ADMIN_DIR_ENV, str(admin_secret_dir))  # the session's, not the user's
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
