"""Where the local admin secret goes: a directory private to the server's user, or none.

``REGTUI_ADMIN_DIR`` pointing at an existing shared directory used to be chmodded to 0700 (a
``/tmp`` made private to one user); it is now refused with one warning line, left as it is, and
the registry serves without a local secret (its extension endpoints open to credentials only).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import httpx
import pytest

from tests.helpers.servers import ADMIN_SECRET_HEADER, bundled_registry

STORAGE_PATH = "/v2/_regtui/ext/storage"


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o1777, 0o722], ids=oct)
def test_a_directory_others_may_write_to_is_refused_not_chmodded(tmp_path: Path, mode: int) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, mode)
    with bundled_registry(tmp_path / "root", env={"REGTUI_ADMIN_DIR": str(shared)}) as running:
        assert httpx.get(f"{running.url}/v2/").status_code == 200
        assert list(shared.iterdir()) == []  # no secret written there
        denied = httpx.get(f"{running.url}{STORAGE_PATH}", headers={ADMIN_SECRET_HEADER: "x"})
        assert denied.status_code == 403
        log = running.log()
    assert stat.S_IMODE(shared.stat().st_mode) == mode  # left as it was
    warnings = [line for line in log.splitlines() if "local admin secret" in line]
    assert len(warnings) == 1, log
    assert "writable by group or others" in warnings[0] and str(shared) in warnings[0]


def test_a_missing_directory_is_created_private(tmp_path: Path) -> None:
    missing = tmp_path / "state" / "regtui" / "admin"
    with bundled_registry(tmp_path / "root", env={"REGTUI_ADMIN_DIR": str(missing)}) as running:
        assert stat.S_IMODE(missing.stat().st_mode) == 0o700
        secret_file = missing / str(running.port)
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
        headers = {ADMIN_SECRET_HEADER: secret_file.read_text().strip()}
        assert httpx.get(f"{running.url}{STORAGE_PATH}", headers=headers).status_code == 200


def test_an_own_private_directory_keeps_its_mode(tmp_path: Path) -> None:
    """Read access for others (0755) lets nobody in (the files are 0600): used as it is."""
    own = tmp_path / "own"
    own.mkdir()
    os.chmod(own, 0o755)
    with bundled_registry(tmp_path / "root", env={"REGTUI_ADMIN_DIR": str(own)}) as running:
        secret_file = own / str(running.port)
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(own.stat().st_mode) == 0o755
