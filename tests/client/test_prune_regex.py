"""``prune --keep-tag`` and ``find --regex`` on a real registry with a tag that makes a
backtracking engine spin: they answer within the pytest timeout, and a pattern RE2 refuses is
one line and exit 2 before anything is read."""

from __future__ import annotations

import json

import pytest

from tests.helpers.images import make_image, push_image
from tests.helpers.servers import RunningRegistry
from tui.cli import main

EVIL = r"(a+)+$"
TAG = "a" * 40 + "b"


@pytest.mark.timeout(30)
def test_catastrophic_patterns_on_the_command_line_finish(
    registry: RunningRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    image = make_image([{"f": b"x"}])
    for tag in (TAG, "a" * 40):
        push_image(registry.url, "evil", tag, image)
    code = main(["prune", registry.host, "--keep-tag", EVIL, "--dry-run", "--json"])
    assert code == 0
    plan = json.loads(capsys.readouterr().out)["plan"]
    (repo,) = plan["repositories"]
    assert [t["tag"] for t in repo["tags_going"]] == [TAG]
    assert main(["find", registry.host, "--tag", EVIL, "--regex", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert {hit["tag"] for hit in found["hits"]} == {"a" * 40}


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "argv",
    [
        ["prune", "127.0.0.1:1", "--keep-tag", r"^(?!dev-).*", "--dry-run"],
        ["find", "127.0.0.1:1", "--tag", r"(a)\1", "--regex"],
    ],
)
def test_a_refused_pattern_is_one_line_and_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("regtui: error:"), err
    assert "is refused" in err and "RE2" in err
