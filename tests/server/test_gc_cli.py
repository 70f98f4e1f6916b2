"""``regtui gc --root`` and ``regtui du --root`` on a directory Debian's docker-registry wrote."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx
import pytest

from embedded_registry.gc import remove_serving_marker, write_serving_marker
from embedded_registry.storage.paths import Layout
from tests.helpers.images import Image, make_image, push_image
from tests.helpers.servers import distribution_registry
from tui.cli import main

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]


def _age(root: Path, seconds: float) -> None:
    """Make every file and directory under ``root`` look ``seconds`` old."""
    then = time.time() - seconds
    for dirpath, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            os.utime(os.path.join(dirpath, name), (then, then))


DELETED = make_image([{"deleted": b"d" * 3000}])


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A registry:2 directory right after a push, a second push and a delete: the registry
    stopped at once, as the how-tos say to stop it before a GC."""
    root = tmp_path / "root"
    kept = make_image([{"kept": b"k" * 100}])
    with distribution_registry(root) as dist:
        push_image(dist.url, "app", "v1", kept)
        push_image(dist.url, "app", "v2", DELETED)
        assert httpx.delete(f"{dist.url}/v2/app/manifests/{DELETED.digest}").status_code == 202
    return root


def test_gc_right_after_a_stopped_registry_wrote_frees_the_deleted_image(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No refusal for recent writes of a stopped registry, and the default grace period keeps
    nothing of an image deleted after its push: no push is in flight."""
    assert main(["gc", "--root", str(root), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["eligible_blobs"] == 3
    removed = {r["digest"] for r in doc["removals"] if r["kind"] == "blob" and r["removed"]}
    assert removed == {b.digest for b in DELETED.blobs()} | {DELETED.digest}
    blobs = root / "docker" / "registry" / "v2" / "blobs" / "sha256"
    for digest in removed:
        hex_part = digest.split(":", 1)[1]
        assert not (blobs / hex_part[:2] / hex_part).exists()
    assert doc["grace_period_seconds"] == 3600.0 and doc["kept_young_blobs"] == 0


def test_gc_refuses_while_a_push_is_going_on_and_names_force(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An upload session written a moment ago is a sign of a live server: refused, in one line
    that says what to do; ``--force`` runs anyway and keeps the session."""
    with distribution_registry(root) as dist:
        opened = httpx.post(f"{dist.url}/v2/app/blobs/uploads/")
        assert opened.status_code == 202
        patched = httpx.patch(
            httpx.URL(dist.url).join(opened.headers["Location"]),
            content=b"half a layer",
            headers={"Content-Type": "application/octet-stream"},
        )
        assert patched.status_code == 202
        assert main(["gc", "--root", str(root), "--grace-period", "0"]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("regtui: error: a registry seems to be")
        assert "an upload session in app was written" in err
        assert "storage.maintenance.readonly.enabled: true" in err
        assert "--force" in err
        # Nothing was removed: a dry run still finds the garbage.
        assert main(["gc", "--root", str(root), "--dry-run", "--grace-period", "0", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["eligible_blobs"] == 3
    assert main(["gc", "--root", str(root), "--grace-period", "0", "--force", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["eligible_blobs"] == 3 and not [r for r in doc["removals"] if r["kind"] == "upload"]
    uploads = root / "docker" / "registry" / "v2" / "repositories" / "app" / "_uploads"
    assert len(list(uploads.iterdir())) == 1


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
    assert main(["gc", "--root", str(root), "-n", "--grace-period", "0", "--json"]) == 0
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
    # The deleted image is young, but no push is in flight: reclaimable at once.
    assert doc["reclaimable_bytes"] == sum(b.size for b in DELETED.blobs()) + len(
        DELETED.manifest.data
    )

    assert main(["du", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == [
        "REPOSITORY",
        "MANIFESTS",
        "TAGS",
        "TOTAL",
        "EXCLUSIVE",
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


def files(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``root``: relative path -> (size, mtime in ns)."""
    found = {}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = os.path.join(dirpath, name)
            st = os.stat(path)
            found[os.path.relpath(path, root)] = (st.st_size, st.st_mtime_ns)
    return found


@pytest.fixture
def untagged_root(tmp_path: Path) -> tuple[Path, Image, Image]:
    """A Distribution root with ``app:v1`` and an image pushed to ``app`` by digest only."""
    root = tmp_path / "untagged"
    tagged = make_image([{"tagged": b"t" * 500}])
    untagged = make_image([{"untagged": b"u" * 7000}], labels={"which": "untagged"})
    with distribution_registry(root) as dist:
        push_image(dist.url, "app", "v1", tagged)
        push_image(dist.url, "app", None, untagged)
    _age(root, 3600)
    return root, tagged, untagged


def _present(root: Path, repo: str, image: Image) -> dict[str, bool]:
    layout = Layout(root)
    state = {"revision": layout.revision_link(repo, image.digest).exists()}
    for blob in [image.manifest, image.config, *image.layers]:
        state[blob.digest] = layout.blob_data(blob.digest).exists()
    return state


def test_gc_delete_untagged_removes_the_untagged_manifest_on_disk(
    untagged_root: tuple[Path, Image, Image], capsys: pytest.CaptureFixture[str]
) -> None:
    root, tagged, untagged = untagged_root
    every = dict.fromkeys(_present(root, "app", untagged), True)
    assert _present(root, "app", untagged) == every == dict.fromkeys(every, True)
    before = files(root)

    # A dry run, however asked, removes nothing.
    args = ["gc", "--root", str(root), "--grace-period", "0", "--delete-untagged"]
    assert main([*args, "--dry-run", "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert {r["digest"] for r in plan["removals"] if r["kind"] == "manifest"} == {untagged.digest}
    assert main([*args, "-d"]) == 0
    assert f"would remove manifest {untagged.digest} in app (" in capsys.readouterr().out
    assert files(root) == before

    # Without --delete-untagged, an untagged manifest is kept with everything it references.
    assert main(["gc", "--root", str(root), "--grace-period", "0"]) == 0
    assert "0 blobs and 0 manifests deleted" in capsys.readouterr().out
    assert files(root) == before

    assert main([*args, "--json"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert done["dry_run"] is False and done["delete_untagged"] is True
    assert _present(root, "app", untagged) == dict.fromkeys(every, False)
    assert _present(root, "app", tagged) == dict.fromkeys(_present(root, "app", tagged), True)
    assert done["bytes_freed"] == sum(before[p][0] for p in before if p not in files(root))

    # Distribution serves what is left as before.
    accept = {"Accept": tagged.manifest.media_type}
    with distribution_registry(root) as dist:
        manifests = f"{dist.url}/v2/app/manifests"
        assert httpx.head(f"{manifests}/v1", headers=accept).status_code == 200
        assert httpx.head(f"{manifests}/{untagged.digest}", headers=accept).status_code == 404
