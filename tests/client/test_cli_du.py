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
BINARY_SIZE = re.compile(r"^(\d+ B|\d+\.\d [KMGTPE]iB)$")


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
    header = ["REPOSITORY", "MANIFESTS", "TAGS", "TOTAL", "EXCLUSIVE"]
    assert exact[0].split() == estimate[0].split() == offline[0].split() == header
    # Nothing here is garbage, so the numbers agree too: the very same lines.
    assert exact == offline == estimate
    for line in exact[1:]:
        _name, manifests, tags, rest = line.split(maxsplit=3)
        assert manifests.isdigit() and tags.isdigit()
        total, exclusive = re.split(r"(?<=B)\s+", rest.strip())
        assert BINARY_SIZE.match(total) and BINARY_SIZE.match(exclusive), line


def test_sharing_saves_nothing_negative_when_the_store_holds_garbage(
    registry: RunningRegistry,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """5 MiB that no manifest references: part of the total, but no part of what sharing saves
    (it used to say "sharing saves -5.0 MiB" here)."""
    import json
    import os

    import httpx

    from tests.helpers.images import make_image, make_layer, push_image
    from tui.commands import _common as c
    from tui.imagegen import push_blob

    base = make_layer({"base.bin": os.urandom(300_000)})
    for repo in ("one", "two"):  # the base layer stored once, referenced by two repositories
        push_image(registry.url, repo, "v1", make_image([base, {"own": repo.encode()}]))
    garbage = make_layer({"garbage.bin": os.urandom(5 * 1024 * 1024)}, compression="none")
    with httpx.Client(base_url=registry.url, timeout=60) as client:
        push_blob(client, "one", garbage)  # uploaded, never named by a manifest
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["du", registry.host, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total_bytes"] - data["referenced_bytes"] == garbage.size
    assert data["sum_of_repositories_bytes"] - data["referenced_bytes"] == base.size
    assert main(["du", registry.host]) == 0
    total_line = next(
        line for line in capsys.readouterr().out.splitlines() if line.startswith("total (exact)")
    )
    assert total_line.endswith(f"sharing saves {c.size(base.size)}"), total_line
