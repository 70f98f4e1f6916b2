"""``du HOST`` and ``du --root DIR`` print one table: same columns, order and binary units."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from tests.client.test_client_registries import populate
from tests.helpers.servers import RunningRegistry
from tui.cli import main

pytestmark = pytest.mark.timeout(120)
BINARY_SIZE = re.compile(r"^(\d+ Bytes?|\d+\.\d [KMGTPEZY]iB)$")


def table(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *argv: str
) -> list[str]:
    """The table part of ``du``'s output: the lines before the first blank one."""
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(list(argv)) == 0
    out = capsys.readouterr().out
    return out.split("\n\n", 1)[0].splitlines()


def test_du_host_and_du_root_print_the_same_table(
    registry: RunningRegistry,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    populate(registry.url)
    exact = table(capsys, monkeypatch, "du", registry.host)
    estimate = table(capsys, monkeypatch, "du", registry.host, "--estimate")
    offline = table(capsys, monkeypatch, "du", "--root", str(registry.root))
    header = ["REPOSITORY", "MANIFESTS", "TAGS", "REFERENCED", "ONLY", "HERE"]
    assert exact[0].split() == estimate[0].split() == offline[0].split() == header
    # Nothing here is garbage, so the numbers agree too: the very same lines.
    assert exact == offline == estimate
    for line in exact[1:]:
        _name, manifests, tags, rest = line.split(maxsplit=3)
        assert manifests.isdigit() and tags.isdigit()
        referenced, only_here = re.split(r"(?<=B)\s+", rest.strip())
        assert BINARY_SIZE.match(referenced) and BINARY_SIZE.match(only_here), line
