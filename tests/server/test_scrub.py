"""``regtui scrub --root``: each kind of damage one line with the images it breaks, nothing lost;
``--repair`` quarantines and unlinks only; a stopped run resumes.

Stores written file by file as Distribution lays them out (``tests/helpers/layout.py``), or
pushed over HTTP to the bundled registry, then damaged by hand on disk.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from embedded_registry.gc import scrub as scrub_module
from embedded_registry.gc.scrub import QUARANTINE_DIR, STATE_KEY, Scrubber, ScrubProgress
from embedded_registry.storage.driver.filesystem import FilesystemDriver
from tests.helpers.images import make_image, make_index, push_image
from tests.helpers.layout import LayoutWriter
from tests.helpers.servers import bundled_registry
from tui.cli import main

pytestmark = pytest.mark.timeout(120)


def _scrub(capsys: pytest.CaptureFixture[str], root: Path, *extra: str) -> tuple[int, Any, str]:
    code = main(["scrub", "--root", str(root), "--json", *extra])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def _errors(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in doc["problems"] if p["severity"] == "error"]


@pytest.fixture
def store(tmp_path: Path) -> tuple[Path, LayoutWriter, dict[str, str]]:
    """Two tagged images in ``app`` and one in ``lib``; their manifests' digests by tag."""
    root = tmp_path / "root"
    writer = LayoutWriter(root)
    writer.ensure()
    digests = {
        "app:v1": writer.put("app", writer.manifest("app", "one"), "v1"),
        "app:v2": writer.put("app", writer.manifest("app", "two"), "v2"),
        "lib:v1": writer.put("lib", writer.manifest("lib", "three"), "v1"),
    }
    return root, writer, digests


def _layer(writer: LayoutWriter, manifest: str) -> str:
    return str(json.loads(writer.read_blob(manifest))["layers"][0]["digest"])


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes (what "nothing lost" compares)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_a_clean_store_exits_0(store: Any, capsys: pytest.CaptureFixture[str]) -> None:
    root, _writer, _digests = store
    code, doc, _err = _scrub(capsys, root)
    assert code == 0, doc
    assert doc["clean"] is True and doc["problems"] == []
    assert doc["blobs"] == 9 and doc["repositories"] == 2 and doc["manifests"] == 3


def test_a_truncated_blob_is_one_line_naming_the_image(
    store: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    root, writer, digests = store
    layer = _layer(writer, digests["app:v2"])
    path = writer.layout.blob_data(layer)
    path.write_bytes(path.read_bytes()[:7])
    before = _tree(root)
    code, doc, _err = _scrub(capsys, root)
    assert code == 1
    [problem] = doc["problems"]
    assert problem["kind"] == "blob-corrupt" and problem["digest"] == layer
    assert problem["message"].startswith("truncated: 7 of 30 bytes")
    assert problem["images"] == ["app:v2"] and doc["broken_images"] == ["app:v2"]
    assert _tree(root) == {**before, **_state_of(root)}  # nothing lost, only the state added
    # The table: one line for the problem, one for the verdict.
    assert main(["scrub", "--root", str(root)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and "truncated" in lines[1] and "app:v2" in lines[1]
    assert lines[2].startswith("scrub: 1 problem, 1 broken image")


def _state_of(root: Path) -> dict[str, bytes]:
    state = root / STATE_KEY.lstrip("/")
    return {str(state.relative_to(root)): state.read_bytes()}


def test_a_flipped_byte_is_found(store: Any, capsys: pytest.CaptureFixture[str]) -> None:
    root, writer, digests = store
    config = json.loads(writer.read_blob(digests["lib:v1"]))["config"]["digest"]
    path = writer.layout.blob_data(config)
    data = bytearray(path.read_bytes())
    data[3] ^= 0x01
    path.write_bytes(bytes(data))
    code, doc, _err = _scrub(capsys, root)
    assert code == 1
    [problem] = doc["problems"]
    assert problem["kind"] == "blob-corrupt" and problem["digest"] == config
    assert "does not match its digest" in problem["message"]
    assert problem["images"] == ["lib:v1"]


def test_a_manifest_edited_by_hand_breaks_its_tag(
    store: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    root, writer, digests = store
    path = writer.layout.blob_data(digests["app:v1"])
    document = json.loads(path.read_bytes())
    document["annotations"] = {"edited": "by hand"}
    path.write_bytes(json.dumps(document).encode())
    code, doc, _err = _scrub(capsys, root)
    assert code == 1
    [problem] = doc["problems"]
    assert problem["kind"] == "blob-corrupt" and problem["digest"] == digests["app:v1"]
    assert problem["images"] == ["app:v1"]


def test_a_link_to_a_missing_blob_is_reported_and_repair_removes_it(
    store: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    root, writer, _digests = store
    ghost = "sha256:" + hashlib.sha256(b"never stored").hexdigest()
    writer.link("app", ghost)
    code, doc, _err = _scrub(capsys, root)
    assert code == 1
    [problem] = doc["problems"]
    assert problem["kind"] == "link-dangling" and problem["digest"] == ghost
    assert problem["repository"] == "app" and problem["repaired"] is None
    assert writer.layout.layer_link("app", ghost).exists()  # a scrub alone changes nothing

    code, doc, _err = _scrub(capsys, root, "--repair")
    assert code == 1  # what was wrong is reported, with what was done about it
    assert doc["problems"][0]["repaired"] == "link removed"
    assert not writer.layout.layer_link("app", ghost).exists()
    code, doc, _err = _scrub(capsys, root)
    assert code == 0, doc


def test_a_directory_where_a_file_should_be(store: Any, capsys: pytest.CaptureFixture[str]) -> None:
    root, writer, digests = store
    layer = _layer(writer, digests["lib:v1"])
    data = writer.layout.blob_data(layer)
    data.unlink()
    (data / "inner").mkdir(parents=True)
    link = writer.layout.tag_current_link("app", "v2")
    link.unlink()
    link.mkdir()
    code, doc, _err = _scrub(capsys, root)
    assert code == 1
    by_kind = {p["kind"]: p for p in doc["problems"]}
    assert set(by_kind) == {"blob-not-a-file", "link-not-a-file"}
    assert by_kind["blob-not-a-file"]["images"] == ["lib:v1"]
    assert by_kind["link-not-a-file"]["images"] == ["app:v2"]
    assert (data / "inner").is_dir() and link.is_dir()


def test_a_tag_pointing_at_a_missing_revision(
    store: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    root, writer, digests = store
    shutil.rmtree(writer.layout.revision_link("app", digests["app:v2"]).parent)
    writer.layout.blob_data(digests["app:v2"]).unlink()
    code, doc, _err = _scrub(capsys, root)
    assert code == 1
    [problem] = _errors(doc)
    assert problem["kind"] == "tag-dangling" and problem["images"] == ["app:v2"]
    assert "is not stored" in problem["message"]
    code, doc, _err = _scrub(capsys, root, "--repair")
    assert doc["problems"][0]["repaired"] == "link removed"
    assert not writer.layout.tag_current_link("app", "v2").exists()
    assert _scrub(capsys, root)[0] == 0


def test_a_child_missing_from_an_index_breaks_the_index_tag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root"
    with bundled_registry(root) as registry:
        index = make_index(
            [
                make_image([{"a": b"a" * 100}], architecture="amd64"),
                make_image([{"b": b"b" * 100}], architecture="arm64"),
            ]
        )
        push_image(registry.url, "multi", "latest", index)
    child = index.images[1].digest
    blob = Path(root, "docker/registry/v2/blobs/sha256", child[7:9], child[7:], "data")
    blob.unlink()
    code, doc, _err = _scrub(capsys, root)
    assert code == 1
    kinds = sorted(p["kind"] for p in doc["problems"])
    assert kinds == ["child-missing", "link-dangling"]
    for problem in doc["problems"]:
        assert problem["images"] == ["multi:latest"]


def test_repair_quarantines_a_corrupt_blob_and_the_next_push_heals_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root"
    image = make_image([{"layer": b"L" * 5000}])
    layer = image.layers[0].digest
    with bundled_registry(root) as registry:
        push_image(registry.url, "app", "v1", image)
        blob = Path(root, "docker/registry/v2/blobs/sha256", layer[7:9], layer[7:], "data")
        damaged = bytearray(blob.read_bytes())
        damaged[100] ^= 0xFF
        blob.write_bytes(bytes(damaged))

        code, doc, _err = _scrub(capsys, root, "--repair")
        assert code == 1
        [problem] = doc["problems"]
        assert problem["kind"] == "blob-corrupt" and problem["images"] == ["app:v1"]
        assert problem["repaired"].startswith(f"quarantined to {QUARANTINE_DIR}/sha256/")
        # Nothing lost: the damaged bytes are kept in quarantine.
        kept = list(Path(root, QUARANTINE_DIR.lstrip("/"), "sha256", layer[7:]).iterdir())
        assert [p.read_bytes() for p in kept] == [bytes(damaged)]
        # The blob reads as absent, so a client pushes it again, and the store is whole.
        head = httpx.head(f"{registry.url}/v2/app/blobs/{layer}")
        assert head.status_code == 404
        push_image(registry.url, "app", "v1", image)
        got = httpx.get(f"{registry.url}/v2/app/blobs/{layer}")
        assert hashlib.sha256(got.content).hexdigest() == layer[7:]
    assert _scrub(capsys, root)[0] == 0


def test_a_stopped_run_resumes_after_its_cursor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "root"
    writer = LayoutWriter(root)
    writer.ensure()
    for number in range(60):
        writer.put(
            f"r{number % 3}", writer.manifest(f"r{number % 3}", f"image {number}"), f"t{number}"
        )
    total = 180  # 60 manifests, 60 configs, 60 layers
    monkeypatch.setattr(scrub_module, "PROGRESS_INTERVAL", 0.0)
    monkeypatch.setattr(scrub_module, "SAVE_INTERVAL", 0.0)
    hashed: list[str] = []
    real = scrub_module.hash_blobs

    async def counting(driver: Any, digests: list[str]) -> Any:
        hashed.extend(digests)
        return await real(driver, digests)

    monkeypatch.setattr(scrub_module, "hash_blobs", counting)

    class Stop(Exception):
        pass

    def stop_at_50(progress: ScrubProgress) -> None:
        if progress.blobs >= 50:
            raise Stop

    with pytest.raises(Stop):
        asyncio.run(Scrubber(FilesystemDriver(root), progress=stop_at_50).run())
    first = len(hashed)
    assert 50 <= first < total
    hashed.clear()
    report = asyncio.run(Scrubber(FilesystemDriver(root)).run())
    assert report.resumed and report.clean
    assert report.progress.blobs == total and report.progress.repositories == 3
    # Only what was not done: at most the batches in flight when it stopped are read again.
    assert len(hashed) <= total - 50 + scrub_module.DEFAULT_JOBS * scrub_module.BATCH
    # A finished run leaves nothing to resume: the next one starts over.
    hashed.clear()
    again = asyncio.run(Scrubber(FilesystemDriver(root)).run())
    assert not again.resumed and len(hashed) == total


def test_usage_mistakes_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scrub"]) == 2
    assert main(["scrub", "localhost:5000", "--root", str(tmp_path)]) == 2
    assert main(["scrub", "--root", str(tmp_path), "--jobs", "0"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and all(line.startswith("regtui: error: ") for line in err)
    assert main(["scrub", "--root", str(tmp_path)]) == 1  # not a storage root: one line
    assert len(capsys.readouterr().err.splitlines()) == 1


def test_config_names_the_filesystem_root_and_state_may_be_a_local_file(
    store: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, writer, digests = store
    config = tmp_path / "config.yml"
    config.write_text(json.dumps({"storage": {"filesystem": {"rootdirectory": str(root)}}}))
    state = tmp_path / "scrub-state.json"
    layer = _layer(writer, digests["lib:v1"])
    writer.layout.blob_data(layer).write_bytes(b"not the layer")
    code = main(["scrub", "--config", str(config), "--state", str(state), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert code == 1 and [p["images"] for p in doc["problems"]] == [["lib:v1"]]
    assert json.loads(state.read_text())["phase"] == "done"
    assert not (root / STATE_KEY.lstrip("/")).exists()  # --state: nothing written in the store


def test_a_revision_that_is_no_manifest_is_manifest_invalid(
    store: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    root, writer, _digests = store
    not_json = writer.blob(b"\x1f\x8b not a manifest")
    writer.revision("lib", not_json)
    code, doc, _err = _scrub(capsys, root)
    assert code == 1
    [problem] = doc["problems"]
    assert problem["kind"] == "manifest-invalid" and problem["digest"] == not_json
    assert problem["message"].startswith("unreadable manifest: not JSON")
    assert problem["images"] == [f"lib@{not_json}"]  # untagged: named by digest


def test_a_cancelled_run_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the server does when its client goes away: the scrub's task is cancelled; its
    saved progress lets the next run go on from there."""
    root = tmp_path / "root"
    writer = LayoutWriter(root)
    writer.ensure()
    for number in range(40):
        writer.put("app", writer.manifest("app", f"image {number}"), f"t{number}")
    monkeypatch.setattr(scrub_module, "SAVE_INTERVAL", 0.0)
    monkeypatch.setattr(scrub_module, "PROGRESS_INTERVAL", 0.0)

    async def cancel_midway() -> None:
        midway = asyncio.Event()

        def progress(snapshot: ScrubProgress) -> None:
            if snapshot.blobs >= 40:
                midway.set()

        scrubber = Scrubber(FilesystemDriver(root), jobs=1, progress=progress)
        task = asyncio.ensure_future(scrubber.run())
        await midway.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_midway())
    saved = json.loads((root / STATE_KEY.lstrip("/")).read_text())
    # The save under way when the task was cancelled may not have run: an earlier one holds.
    assert saved["phase"] == "blobs" and 0 < saved["progress"]["blobs"] < 120
    report = asyncio.run(Scrubber(FilesystemDriver(root)).run())
    assert report.resumed and report.clean and report.progress.blobs == 120


def test_a_referrer_before_its_subject_is_a_warning_only(
    store: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """The OCI spec lets a referrer (a signature) be pushed before its subject: reported as a
    warning, and the store is still clean (exit 0)."""
    root, writer, _digests = store
    absent = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 10}
    absent["digest"] = "sha256:" + "2" * 64
    signature = writer.put("app", writer.manifest("app", "signature", subject=absent))
    code, doc, _err = _scrub(capsys, root)
    assert code == 0 and doc["clean"] is True
    [problem] = doc["problems"]
    assert problem["kind"] == "subject-missing" and problem["severity"] == "warning"
    assert problem["digest"] == signature


def test_json_follows_the_convention(store: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """docs/json.md: fixed key sets, snake_case, ``repository``, ``elapsed_seconds``."""
    root, writer, _digests = store
    writer.link("app", "sha256:" + "3" * 64)
    _code, doc, _err = _scrub(capsys, root)
    assert set(doc) == {
        "clean", "repair", "resumed", "blobs", "bytes", "repositories", "manifests", "links",
        "elapsed_seconds", "broken_images", "problems",
    }  # fmt: skip
    [problem] = doc["problems"]
    assert set(problem) == {
        "kind", "key", "message", "digest", "repository", "images", "severity", "repaired",
    }  # fmt: skip
    assert isinstance(doc["elapsed_seconds"], float) and isinstance(doc["bytes"], int)
