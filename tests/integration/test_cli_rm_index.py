"""``regtui rm`` of a platform manifest names every index that lists it and says it breaks; of a
referrer, names its subject (issue 20, item 3), in human output and ``--json``, as the app's delete
dialog does (the same search: ``tui.data.deletion``), against the bundled registry."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest

from tests.helpers.images import make_artifact, make_image, make_index, push_image
from tests.helpers.servers import RunningRegistry, bundled_registry
from tui.cli import main

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningRegistry, dict]]:
    amd64 = make_image([{"bin/app": b"amd64"}], architecture="amd64")
    arm64 = make_image([{"bin/app": b"arm64"}], architecture="arm64", variant="v8")
    with bundled_registry(tmp_path_factory.mktemp("rm-index") / "root") as registry:
        url = registry.url
        digests = {
            "amd64": push_image(url, "team/py", None, amd64),
            "arm64": push_image(url, "team/py", None, arm64),
            "index": push_image(url, "team/py", "3.12", make_index([amd64, arm64])),
            "signature": push_image(url, "team/py", None, make_artifact(arm64)),
        }
        push_image(url, "team/py", "latest", make_index([amd64, arm64]))
        push_image(url, "team/py", "amd64-only", make_index([amd64]))
        yield registry, digests


def _rm(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *argv: str
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    monkeypatch.setenv("DOCKER_CONFIG", "/nonexistent-regtui-test")
    code = main(["rm", *argv, "--dry-run"])
    out, err = capsys.readouterr()
    return code, out, err


def test_rm_of_a_platform_manifest_names_every_index_that_lists_it(
    pushed: tuple[RunningRegistry, dict],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry, digests = pushed
    ref = f"{registry.host}/team/py@{digests['amd64']}"
    code, out, err = _rm(capsys, monkeypatch, ref)
    assert (code, err) == (0, "")
    assert "2 indexes list it. Deleting it BREAKS them" in out
    assert f"index {digests['index']}" in out
    assert "Tagged team/py:3.12 and team/py:latest; lists it as linux/amd64." in out
    assert "Tagged team/py:amd64-only; lists it as linux/amd64." in out

    code, out, _ = _rm(capsys, monkeypatch, ref, "--json")
    plan = json.loads(out)
    indexes = {tuple(index["tags"]): index for index in plan["indexes"]}
    assert set(indexes) == {("3.12", "latest"), ("amd64-only",)}
    assert indexes[("3.12", "latest")]["digest"] == digests["index"]
    assert indexes[("amd64-only",)]["platform"] == {
        "os": "linux",
        "architecture": "amd64",
        "variant": None,
    }
    assert plan["subject"] is None and plan["indexes_truncated"] is False


def test_rm_of_a_referrer_names_its_subject_and_of_the_subject_its_referrers(
    pushed: tuple[RunningRegistry, dict],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry, digests = pushed
    code, out, _ = _rm(capsys, monkeypatch, f"{registry.host}/team/py@{digests['signature']}")
    assert code == 0
    assert f"it refers to {digests['arm64']}, which stays" in out
    assert "Untagged." in out and "BREAKS" not in out
    code, out, _ = _rm(
        capsys, monkeypatch, f"{registry.host}/team/py@{digests['signature']}", "--json"
    )
    plan = json.loads(out)
    assert plan["subject"] == {
        "digest": digests["arm64"],
        "media_type": "application/vnd.oci.image.manifest.v1+json",
        "tags": [],
    }

    code, out, _ = _rm(capsys, monkeypatch, f"{registry.host}/team/py@{digests['arm64']}")
    assert code == 0
    assert "1 referrer (signatures, SBOMs) will point at nothing:" in out
    assert digests["signature"] in out
    assert "Tagged team/py:3.12 and team/py:latest; lists it as linux/arm64/v8." in out
