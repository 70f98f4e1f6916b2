"""GC on the filesystem goes through its driver only, and its scan looks at what a decision
needs: names of the layout, one ``stat`` per revision and tag link, and the blob data of
removal candidates only (issue 21: nothing opens a file of the store around the driver;
issue 22: GC's speed)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest

from embedded_registry.gc import collect_garbage
from embedded_registry.gc.collect import collect_garbage_on
from embedded_registry.gc.scrub import Scrubber
from embedded_registry.storage.driver import filesystem as filesystem_driver
from embedded_registry.storage.driver.filesystem import FilesystemDriver
from embedded_registry.storage.paths import Layout
from tests.helpers.layout import LayoutWriter

HOURS = 3600.0


class NoLocalPaths(FilesystemDriver):
    """The filesystem driver without its local paths: whoever asks for one fails."""

    def local_path(self, path: str) -> str:
        raise AssertionError(f"a local path was asked for: {path}")


def _store(root: Path) -> tuple[LayoutWriter, list[str], list[str]]:
    """Two tagged images kept, one deleted (its revision link gone): the kept blobs and the
    deleted image's blobs."""
    writer = LayoutWriter(root)
    writer.ensure()
    kept = []
    for label in ("one", "two"):
        body = writer.manifest("app", label)
        kept.append(writer.put("app", body, tag=label))
    gone_body = writer.manifest("app", "gone")
    gone = writer.put("app", gone_body)
    layout = Layout(root)
    layout.revision_link("app", gone).unlink()
    blobs = {d.parent.name for d in layout.blobs_dir.glob("*/*/*/data")}
    gone_blobs = [gone, *_referenced(writer, gone)]
    kept_blobs = sorted(f"sha256:{h}" for h in blobs if f"sha256:{h}" not in gone_blobs)
    old = time.time() - 2 * HOURS
    for path in (root / "docker").rglob("*"):
        os.utime(path, (old, old))
    return writer, kept_blobs, gone_blobs


def _referenced(writer: LayoutWriter, manifest: str) -> list[str]:
    doc = json.loads(writer.read_blob(manifest))
    return [doc["config"]["digest"], *(layer["digest"] for layer in doc["layers"])]


def test_gc_and_scrub_never_ask_the_driver_for_a_local_path(tmp_path: Path) -> None:
    """A real GC run (scan, plan, the rename-aside sweep, its journal) and a scrub go through
    the driver's operations and capabilities, never around it by a local path."""
    root = tmp_path / "root"
    _writer, kept, gone = _store(root)

    report = asyncio.run(collect_garbage_on(NoLocalPaths(root), grace_period=HOURS))

    assert not report.problems
    assert sorted(report.eligible_blobs) == sorted(gone)
    assert all(r.removed for r in report.removals if r.kind == "blob")
    layout = Layout(root)
    assert not any(layout.blob_data(d).exists() for d in gone)
    assert all(layout.blob_data(d).exists() for d in kept)
    assert report.removals[0].path.startswith(str(root))  # reports name local paths still
    scrubbed = asyncio.run(Scrubber(NoLocalPaths(root)).run())
    assert scrubbed.clean and scrubbed.progress.blobs == len(kept)


def test_a_dry_run_stats_the_blob_data_of_removal_candidates_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The blobs a manifest keeps are known by name: their data is never stat'ed (the scan
    lists names; the stats a decision needs are taken when it asks)."""
    root = tmp_path / "root"
    _writer, kept, gone = _store(root)
    stated: list[str] = []
    real_stat = os.stat

    def counting(path: str | os.PathLike[str], *args: object, **kw: object) -> os.stat_result:
        stated.append(os.fspath(path))
        return real_stat(path, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(filesystem_driver.os, "stat", counting)
    report = collect_garbage(root, dry_run=True, grace_period=0)
    monkeypatch.undo()

    assert sorted(report.eligible_blobs) == sorted(gone)
    layout = Layout(root)
    data_stats = {p for p in stated if p.endswith("/data")}
    assert data_stats == {str(layout.blob_data(d)) for d in gone}
    assert not {str(layout.blob_data(d)) for d in kept} & set(stated)
