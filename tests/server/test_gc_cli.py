"""``regtui gc --root`` and ``regtui du --root`` on a directory Debian's docker-registry wrote."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx
import pytest

from embedded_registry.gc import remove_serving_marker, write_serving_marker
from tests.helpers.images import make_image, push_image
from tests.helpers.servers import distribution_registry
from tui.cli import main

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]


def _age(root: Path, seconds: float) -> None:
    """Make every file and directory under ``root`` look ``seconds`` old."""
    then = time.time() - seconds
    for dirpath, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            os.utime(os.path.join(dirpath, name), (then, then))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    kept = make_image([{"kept": b"k" * 100}])
    deleted = make_image([{"deleted": b"d" * 3000}])
    with distribution_registry(root) as dist:
        push_image(dist.url, "app", "v1", kept)
        push_image(dist.url, "app", "v2", deleted)
        assert httpx.delete(f"{dist.url}/v2/app/manifests/{deleted.digest}").status_code == 202
    return root


def test_gc_refuses_while_a_registry_just_wrote_and_says_how_to_stop_it(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["gc", "--root", str(root), "--grace-period", "0"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("regtui: error: a registry seems to be writing")
    assert "storage.maintenance.readonly.enabled: true" in err
    assert "--force" in err
    # Nothing was removed: a dry run still finds the garbage.
    assert main(["gc", "--root", str(root), "--dry-run", "--grace-period", "0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["eligible_blobs"] == 3


def test_gc_refuses_while_the_bundled_registry_serves_the_root(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _age(root, 3600)
    write_serving_marker(root, "127.0.0.1:5000")
    try:
        assert main(["gc", "--root", str(root)]) == 1
        assert f"pid {os.getpid()}" in capsys.readouterr().err
    finally:
        remove_serving_marker(root)
    assert main(["gc", "--root", str(root), "--json"]) == 0  # quiet for an hour: allowed
    assert json.loads(capsys.readouterr().out)["eligible_blobs"] == 3


def test_gc_dry_run_then_real_run(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gc", "--root", str(root), "-d", "--grace-period", "0", "--json"]) == 0
    planned = json.loads(capsys.readouterr().out)
    assert main(["gc", "--root", str(root), "--dry-run", "--grace-period", "0"]) == 0
    out = capsys.readouterr().out
    assert out.count("would remove blob ") == 3
    assert "3 blobs and 0 manifests eligible for deletion" in out
    assert "dry run: nothing removed" in out

    code = main(["gc", "--root", str(root), "--grace-period", "0", "--force", "--json"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["eligible_blobs"] == 3 and doc["bytes_freed"] >= doc["blob_bytes"] > 0
    assert doc["blob_bytes"] == planned["blob_bytes"]
    assert doc["bytes_freed"] == planned["bytes_planned"]
    assert all(r["removed"] for r in doc["removals"])

    assert main(["gc", "--root", str(root), "--grace-period", "0", "--force"]) == 0
    assert "0 blobs and 0 manifests deleted" in capsys.readouterr().out


def test_du_root(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["du", "--root", str(root), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["blob_count"] == 6
    assert [r["name"] for r in doc["repositories"]] == ["app"]
    assert doc["reclaimable_bytes"] == 0  # everything is younger than the default grace period

    assert main(["du", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == [
        "REPOSITORY",
        "MANIFESTS",
        "TAGS",
        "REFERENCED",
        "ONLY",
        "HERE",
    ]
    assert "gc would reclaim" in out


def test_not_a_storage_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gc", "--root", str(tmp_path)]) == 1
    assert main(["du", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all("is not a registry storage root" in line for line in err)


def test_grace_period_parsing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["gc", "--root", str(tmp_path), "--grace-period", "soon"])
    assert exited.value.code == 2
    assert "not a duration" in capsys.readouterr().err
