"""Words and conventions of the CLI (issue 20, item 10): plurals and sentences in gc's report,
``find`` with no hit exits 1 as grep does, ``--json`` is an output option, ``-n`` is the short
``--dry-run`` of every command, and ``gc --config`` warns while the registry it describes
answers on its ``http.addr``."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers.images import make_image, push_image
from tests.helpers.servers import RunningRegistry, bundled_registry, distribution_registry
from tui.cli import build_parser, main

pytestmark = pytest.mark.timeout(120)


def _main(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *argv: str
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    monkeypatch.setenv("DOCKER_CONFIG", "/nonexistent-regtui-test")
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    with bundled_registry(tmp_path_factory.mktemp("words") / "root") as registry:
        push_image(registry.url, "team/py", "3.12", make_image([{"py": b"3.12"}]))
        yield registry


def test_gc_reports_in_sentences_with_proper_plurals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "root"
    with bundled_registry(root) as registry:
        # One manifest left untagged (its tag moved on), and a repository emptied by a delete.
        push_image(registry.url, "team/py", "old", make_image([{"a": b"first"}]))
        push_image(registry.url, "team/py", "old", make_image([{"a": b"second"}]))
        gone = push_image(registry.url, "team/go", "v1", make_image([{"go": b"go"}]))
        deleted = httpx.delete(f"{registry.url}/v2/team/go/manifests/{gone}")
        assert deleted.status_code == 202
    args = ("gc", "--root", str(root), "--grace-period", "0", "--delete-untagged")
    code, out, err = _main(capsys, monkeypatch, *args, "--remove-empty-repos", "-n")
    assert code == 0, err
    assert re.search(r"^would remove repository team/go \(\d+ B\)$", out, re.M), out
    assert ":  (" not in out and ": (" not in out
    assert "1 manifest eligible for deletion" in out and "1 manifests" not in out
    assert re.search(r"\b1 \w+s\b", out) is None, out  # no "1 <plural>" anywhere


def test_find_without_a_hit_says_so_and_exits_1_as_grep(
    small: RunningRegistry, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    found = _main(capsys, monkeypatch, "find", small.host, "--insecure", "--tag", "3.*")
    assert found[0] == 0 and "team/py" in found[1]
    code, out, err = _main(capsys, monkeypatch, "find", small.host, "--insecure", "--tag", "9.*")
    assert (code, out) == (1, "")
    assert err == "regtui: no tag matches the pattern '9.*'\n"
    code, out, err = _main(
        capsys, monkeypatch, "find", small.host, "--insecure", "--tag", "9.*", "--json"
    )
    assert code == 1 and json.loads(out)["hits"] == [] and err == ""
    digest = "sha256:" + "0" * 64
    code, _, err = _main(capsys, monkeypatch, "find", small.host, "--insecure", "--digest", digest)
    assert code == 1 and err.startswith(f"regtui: nothing uses {digest}")


JSON_COMMANDS = ["ls", "refs", "tags", "inspect", "rm", "untag", "du", "find", "diff", "layers"]


@pytest.mark.parametrize("command", JSON_COMMANDS)
def test_json_is_an_output_option_not_registry_access(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        build_parser([command]).parse_args([command, "--help"])
    text = capsys.readouterr().out
    sections = dict(re.findall(r"^(\S[^\n]*):\n((?:(?: .*)?\n)*)", text + "\n", re.M))
    assert "--json" in sections["output"], text
    assert "--json" not in sections["registry access"], text


@pytest.mark.parametrize(
    "argv",
    [
        ["rm", "127.0.0.1:5000/a@sha256:" + "0" * 64],
        ["untag", "127.0.0.1:5000/a:b"],
        ["gc", "--root", "/nonexistent"],
        ["prune", "127.0.0.1:5000"],
    ],
    ids=lambda argv: argv[0],
)
def test_n_is_the_short_dry_run_of_every_command(argv: list[str]) -> None:
    parser = build_parser(argv)
    assert parser.parse_args([*argv, "-n"]).dry_run is True
    assert parser.parse_args(argv).dry_run is False


def test_gc_config_warns_while_its_registry_answers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "dist"
    with distribution_registry(root) as registry:
        push_image(registry.url, "team/py", "3.12", make_image([{"py": b"x"}]))
        config = root.parent / f"{root.name}-distribution.yml"
        code, _, err = _main(capsys, monkeypatch, "gc", "--config", str(config), "-n")
        assert code == 0, err
        warning = [line for line in err.splitlines() if line.startswith("regtui: warning: ")]
        assert len(warning) == 1, err
        assert f"a registry answers on {registry.host}, the http.addr of {config}" in warning[0]
        assert "unsafe" in warning[0] and "read-only" in warning[0]
    code, _, err = _main(capsys, monkeypatch, "gc", "--config", str(config), "-n")
    assert code == 0 and "warning" not in err, err
