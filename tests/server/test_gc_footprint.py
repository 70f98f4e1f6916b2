"""What ``regtui gc --root`` holds besides GC itself (issue 22): the modules it imports and the
text of its ``--json`` report both count in the peak memory of a run on a large store."""

from __future__ import annotations

import io
import json
import sys
import tracemalloc
from pathlib import Path

import pytest

from embedded_registry.gc import GcReport, Removal
from tests.helpers.layout import LayoutWriter
from tests.helpers.modules import modules_of
from tui.commands import _common
from tui.commands._common import json_pieces, print_json
from tui.commands.gc import gc_json

CONFIGURATION = (
    "embedded_registry.config",
    "embedded_registry.storage.factory",
    "embedded_registry.storage.store",
    "embedded_registry.govern_rules",
    "regtui_retention.policy",
    "yaml",
    "re2",
)
"""What reading a registry's configuration and opening its store loads: ``gc --root`` on a
directory uses none of it (~6 MiB of the peak memory of a run)."""


@pytest.mark.parametrize(
    ("command", "runs"),
    [
        (["gc", "--dry-run", "--json"], "embedded_registry.gc.sweep"),
        (["gc", "--force"], "embedded_registry.gc.sweep"),
        (["du", "--json"], "embedded_registry.usage"),
    ],
)
def test_offline_gc_of_a_directory_loads_no_configuration(
    tmp_path: Path, command: list[str], runs: str
) -> None:
    root = tmp_path / "root"
    writer = LayoutWriter(root)
    writer.ensure()
    writer.put("app", writer.manifest("app", "one image"), tag="v1")
    modules = modules_of(tmp_path, *command, "--root", str(root))
    assert runs in modules
    heavy = sorted(m for m in modules if m.startswith(CONFIGURATION))
    assert heavy == [], heavy


def _report(removals: int) -> GcReport:
    return GcReport(
        root="/srv/registry",
        dry_run=True,
        delete_untagged=False,
        remove_empty_repos=False,
        grace_period=0.0,
        marked_blobs=7,
        blobs_total=7 + removals,
        removals=[
            Removal(
                "blob",
                f"/srv/registry/docker/registry/v2/blobs/sha256/{n:064x}",
                n,
                f"sha256:{n:064x}",
            )
            for n in range(removals)
        ],
        problems=[],
    )


def test_gc_json_is_written_without_holding_its_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ``--json`` report of 20,000 removals (~5 MB of text) is written in pieces, each
    removal's object made when written: writing it never holds more than a small part of it
    (json.dumps held the text twice, with an object per removal, ~20 MiB at 20,000 images)."""
    report = _report(20_000)
    expected = json.dumps(
        {**gc_json(report), "removals": list(gc_json(report)["removals"])}, indent=2
    )
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    tracemalloc.start()
    try:
        print_json(gc_json(report))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    text = out.getvalue()
    assert text == expected + "\n"
    assert len(text) > 5_000_000
    # The output buffer itself grows by the text: only what print_json holds besides counts.
    assert peak - sys.getsizeof(text) < 20 * _common.JSON_WRITE_SIZE, peak


@pytest.mark.parametrize(
    "value",
    [
        {},
        [],
        {"a": [], "b": {}, "c": [[]]},
        [1, 2.5, -0.0, None, True, False, 'quote " and é\n', {"x": [1, {"y": ()}]}],
        {"nan": float("nan"), "inf": float("-inf"), 1: 2, None: 3, 2.5: 1, False: 0},
        "text",
        12,
    ],
)
def test_json_pieces_are_json_dumps_text(value: object) -> None:
    assert "".join(json_pieces(value)) == json.dumps(value, indent=2)


def test_json_pieces_take_iterators_as_lists_and_refuse_what_json_refuses() -> None:
    assert "".join(json_pieces({"r": iter([{"a": 1}, {"b": [2]}])})) == json.dumps(
        {"r": [{"a": 1}, {"b": [2]}]}, indent=2
    )
    assert "".join(json_pieces({"r": iter(())})) == json.dumps({"r": []}, indent=2)
    with pytest.raises(TypeError):
        "".join(json_pieces({"x": object()}))
