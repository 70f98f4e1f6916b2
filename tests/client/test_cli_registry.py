"""``regtui ls/tags/inspect/rm/untag/du`` against Debian's docker-registry, checked with skopeo."""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.client.test_client_registries import _htpasswd, app_image, populate
from tests.helpers.servers import RunningRegistry, distribution_registry, require_tool
from tui.cli import main

pytestmark = pytest.mark.interop


@pytest.fixture(scope="module")
def readonly(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """A populated registry that no test in this module changes."""
    with distribution_registry(tmp_path_factory.mktemp("cli") / "ro") as running:
        populate(running.url)
        yield running


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[RunningRegistry]:
    with distribution_registry(tmp_path / "rw") as running:
        populate(running.url)
        yield running


def run(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    *argv: str,
    stdin: str = "",
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    monkeypatch.setenv("DOCKER_CONFIG", "/nonexistent-regtui-test")
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def skopeo_tags(registry: RunningRegistry, repo: str) -> dict[str, Any]:
    skopeo = require_tool("skopeo")
    done = subprocess.run(
        [skopeo, "list-tags", "--tls-verify=false", f"docker://{registry.host}/{repo}"],
        capture_output=True,
        check=True,
        text=True,
        timeout=60,
    )
    return json.loads(done.stdout)


def test_ls_and_tags_match_skopeo(
    readonly: RunningRegistry, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run(capsys, monkeypatch, "ls", readonly.host)
    assert (code, err) == (0, "")
    repos = out.split()
    assert repos == ["team/app", "tools"]
    code, out, _ = run(capsys, monkeypatch, "ls", readonly.host, "--json")
    assert json.loads(out)["repositories"] == repos
    for repo in repos:
        expected = skopeo_tags(readonly, repo)
        code, out, _ = run(capsys, monkeypatch, "tags", f"{readonly.host}/{repo}", "--json")
        assert code == 0
        doc = json.loads(out)  # skopeo's names, in its order, under regtui's snake_case keys
        assert f"{doc['registry']}/{doc['repository']}" == expected["Repository"]
        assert doc["tags"] == expected["Tags"]
        code, out, _ = run(capsys, monkeypatch, "tags", f"{readonly.host}/{repo}")
        assert out.split() == expected["Tags"]


def test_tags_long(
    readonly: RunningRegistry, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run(capsys, monkeypatch, "tags", "-l", f"{readonly.host}/team/app")
    assert code == 0
    lines = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert lines["v1"][1] == app_image(1).digest and lines["v1"][2] == "oci"
    assert lines["multi"][2] == "index"


def test_inspect_matches_skopeo(
    readonly: RunningRegistry, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = f"{readonly.host}/team/app:v2"
    code, out, _ = run(capsys, monkeypatch, "inspect", ref, "--json")
    assert code == 0
    report = json.loads(out)
    skopeo = require_tool("skopeo")
    theirs = json.loads(
        subprocess.run(
            [skopeo, "inspect", "--tls-verify=false", f"docker://{ref}"],
            capture_output=True,
            check=True,
            text=True,
            timeout=60,
        ).stdout
    )
    assert report["digest"] == theirs["Digest"]
    assert [layer["digest"] for layer in report["layers"]] == theirs["Layers"]
    assert report["config"]["labels"] == theirs["Labels"]
    assert [h["created_by"] for h in report["history"]][:2] == ["ADD rootfs /", "COPY app2 /app"]
    code, out, _ = run(capsys, monkeypatch, "inspect", ref)
    assert 'Entrypoint: ["/app/run"]' in out and "COPY app2 /app" in out
    code, out, _ = run(capsys, monkeypatch, "inspect", f"{readonly.host}/team/app:multi", "--json")
    platforms = [p["platform"] for p in json.loads(out)["platforms"]]
    assert platforms == [
        {"os": "linux", "architecture": "amd64", "variant": None},
        {"os": "linux", "architecture": "arm64", "variant": "v8"},
    ]
    code, out, _ = run(
        capsys,
        monkeypatch,
        "inspect",
        f"{readonly.host}/team/app:multi",
        "--platform",
        "linux/arm64",
        "--json",
    )
    platform = json.loads(out)["config"]["platform"]
    assert platform == {"os": "linux", "architecture": "arm64", "variant": "v8"}


def test_du_estimate(
    readonly: RunningRegistry, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run(capsys, monkeypatch, "du", readonly.host, "--json")
    assert code == 0
    report = json.loads(out)
    assert report["is_estimate"] is True
    one, two = app_image(1), app_image(2)
    by_name = {repo["name"]: repo for repo in report["repositories"]}
    app = by_name["team/app"]
    assert app["tags"] == 5 and app["manifests"] == 5  # v1=stable=latest, v2, multi + 2 children
    # The base layer is shared by v1 and v2: counted once.
    base = one.layers[0]
    assert base.digest == two.layers[0].digest
    blob_sum = sum(
        b.size for image in (one, two) for b in [image.manifest, image.config, *image.layers]
    )
    assert app["referenced_bytes"] > blob_sum - base.size
    code, out, _ = run(capsys, monkeypatch, "du", readonly.host)
    assert "total (estimate)" in out and "team/app" in out


def test_rm_refuses_without_yes_when_not_a_tty(
    scratch: RunningRegistry, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = f"{scratch.host}/team/app:stable"
    code, out, err = run(capsys, monkeypatch, "rm", ref)
    assert code == 2 and "--yes" in err and err.count("\n") == 1
    code, out, _ = run(capsys, monkeypatch, "rm", ref, "--dry-run")
    assert code == 0
    assert "Would delete" in out and "latest, stable, v1" in out
    code, out, _ = run(capsys, monkeypatch, "tags", f"{scratch.host}/team/app")
    assert "stable" in out.split()  # nothing deleted so far
    code, out, _ = run(capsys, monkeypatch, "rm", ref, "--yes", "--json")
    assert code == 0 and json.loads(out)["tags"] == ["latest", "stable", "v1"]
    code, out, _ = run(capsys, monkeypatch, "tags", f"{scratch.host}/team/app")
    assert sorted(out.split()) == ["multi", "v2"]


def test_untag_keeps_siblings(
    scratch: RunningRegistry, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = f"{scratch.host}/team/app:v1"
    code, out, _ = run(capsys, monkeypatch, "untag", ref, "--dry-run")
    assert code == 0 and "Would remove tag team/app:v1" in out and "latest, stable" in out
    code, out, _ = run(capsys, monkeypatch, "untag", ref, "--json")
    assert code == 0
    result = json.loads(out)
    assert result["method"] == "placeholder" and result["sibling_tags"] == ["latest", "stable"]
    assert sorted(skopeo_tags(scratch, "team/app")["Tags"]) == ["latest", "multi", "stable", "v2"]


def test_errors_are_one_line(
    readonly: RunningRegistry, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run(capsys, monkeypatch, "inspect", f"{readonly.host}/team/app:nope")
    assert code == 1 and out == ""
    assert err.startswith("regtui: error: ") and err.count("\n") == 1
    code, _, err = run(capsys, monkeypatch, "tags", "Not A Ref")
    assert code == 2 and err.startswith("regtui: error: ")
    code, _, err = run(capsys, monkeypatch, "untag", f"{readonly.host}/team/app@sha256:" + "0" * 64)
    assert code == 2
    code, _, err = run(capsys, monkeypatch, "ls", "127.0.0.1:9", "--timeout", "2")
    assert code == 1 and "Cannot reach 127.0.0.1:9" in err and err.count("\n") == 1


def test_password_stdin_never_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    htpasswd = _htpasswd(tmp_path / "htpasswd", "alice", "wonder-pass")
    config = {"auth": {"htpasswd": {"realm": "regtui-test", "path": str(htpasswd)}}}
    with distribution_registry(tmp_path / "basic", config=config) as running:
        populate(running.url, auth=("alice", "wonder-pass"))
        args = ("ls", running.host, "--username", "alice", "--password-stdin")
        code, out, err = run(capsys, monkeypatch, *args, stdin="wonder-pass\n")
        assert (code, out.split()) == (0, ["team/app", "tools"])
        code, out, err = run(capsys, monkeypatch, *args, stdin="not-the-pass\n")
        assert code == 1 and "Not authorized" in err and "not-the-pass" not in out + err
        code, out, err = run(capsys, monkeypatch, "ls", running.host)
        assert code == 1 and "anonymously" in err


def test_dry_runs_change_nothing_on_disk(
    scratch: RunningRegistry, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``rm --dry-run`` and ``untag --dry-run`` reach the code: not one file of the registry's
    storage changes, however the command is asked; without --dry-run the same commands do."""
    from tests.server.test_gc_cli import files

    before = files(scratch.root)
    for argv in (
        ("rm", f"{scratch.host}/team/app:stable", "--dry-run"),
        ("rm", f"{scratch.host}/team/app:stable", "--dry-run", "--yes", "--json"),
        ("untag", f"{scratch.host}/team/app:v2", "--dry-run"),
        ("untag", f"{scratch.host}/team/app:v2", "--dry-run", "--json"),
    ):
        code, _, err = run(capsys, monkeypatch, *argv)
        assert (code, err) == (0, ""), argv
        assert files(scratch.root) == before, argv
    code, _, _ = run(capsys, monkeypatch, "untag", f"{scratch.host}/team/app:v2")
    assert code == 0 and files(scratch.root) != before
    after_untag = files(scratch.root)
    code, _, _ = run(capsys, monkeypatch, "rm", f"{scratch.host}/team/app:stable", "--yes")
    assert code == 0 and files(scratch.root) != after_untag
    assert skopeo_tags(scratch, "team/app")["Tags"] == ["multi"]
