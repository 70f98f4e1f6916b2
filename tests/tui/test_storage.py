"""Storage & GC screen: exact usage and GC on a storage directory, estimate elsewhere."""

from __future__ import annotations

import asyncio
import io
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from textual.widgets import ProgressBar, Static

from tests.helpers.servers import RunningRegistry
from tests.tui.conftest import AppFactory, wait_for
from tests.tui.helpers import notifications
from tui.commands.connect import directory_backend
from tui.data.backends import ExtensionBackend
from tui.data.storage import GcView
from tui.demo import populate
from tui.dialogs.confirm import ConfirmDialog
from tui.logic.fmt import human_size, signed_size
from tui.screens.storage import StorageScreen
from tui.widgets.usage_panel import UsagePanel


def blob_path(root: Path, digest: str) -> Path:
    hex_digest = digest.split(":", 1)[1]
    return root / "docker/registry/v2/blobs/sha256" / hex_digest[:2] / hex_digest / "data"


def _references(root: Path, digest: str) -> set[str]:
    """The config, layers and child manifests a manifest blob points at."""
    doc = json.loads(blob_path(root, digest).read_bytes())
    parts = [doc.get("config"), *doc.get("layers", []), *doc.get("manifests", [])]
    return {part["digest"] for part in parts if isinstance(part, dict)}


@dataclass(frozen=True)
class UntaggedGarbage:
    """What a GC with delete-untagged must remove, read from the registry's own storage."""

    manifests: set[str]
    blobs: set[str]
    """The untagged manifests' configs and layers that no other manifest references."""
    kept: set[str]
    """Their configs and layers that other manifests share (a GC must keep them)."""


def untagged_garbage(root: Path) -> UntaggedGarbage:
    repositories = root / "docker/registry/v2/repositories"
    revisions: set[str] = set()
    tagged: set[str] = set()
    for revision in repositories.glob("**/_manifests/revisions/sha256/*/link"):
        revisions.add(revision.read_text())
    for current in repositories.glob("**/_manifests/tags/*/current/link"):
        tagged.add(current.read_text())
    # Reachable: tagged manifests, their children, and referrers of anything reachable.
    reachable = set(tagged)
    changed = True
    while changed:
        changed = False
        for digest in revisions - reachable:
            doc = json.loads(blob_path(root, digest).read_bytes())
            subject = doc.get("subject", {}).get("digest")
            if subject in reachable:
                reachable.add(digest)
                changed = True
        for digest in list(reachable):
            children = {
                child for child in _references(root, digest) if child in revisions
            } - reachable
            if children:
                reachable |= children
                changed = True
    untagged = revisions - reachable
    assert untagged, "the demo overwrites a tag: one manifest must be untagged"
    used_elsewhere = set().union(*(_references(root, digest) for digest in reachable))
    theirs = set().union(*(_references(root, digest) for digest in untagged))
    return UntaggedGarbage(untagged, theirs - used_elsewhere, theirs & used_elsewhere)


def panel_text(screen: StorageScreen, selector: str) -> str:
    console = Console(width=118, record=True, file=io.StringIO())
    table = screen.query_one(selector, UsagePanel).table
    assert table is not None, f"{selector} shows no table"
    console.print(table)
    return console.export_text()


def line_of(text: str, label: str) -> str:
    for line in text.splitlines():
        if line.strip().startswith(label):
            return line
    raise AssertionError(f"no line {label!r} in the panel:\n{text}")


async def test_gc_on_a_storage_directory_frees_the_untagged_image(
    fresh_demo: RunningRegistry, app_for: AppFactory
) -> None:
    garbage = untagged_garbage(fresh_demo.root)
    doomed = {blob_path(fresh_demo.root, d) for d in garbage.manifests | garbage.blobs}
    survivors = {blob_path(fresh_demo.root, d) for d in garbage.kept}
    assert garbage.blobs and survivors  # its own layer goes, the shared base layer stays
    assert all(path.exists() for path in doomed | survivors)
    doomed_bytes = sum(path.stat().st_size for path in doomed)

    backend = directory_backend(fresh_demo.root, grace_period=0)
    app = app_for(fresh_demo, storage=backend)
    async with app.run_test(size=(120, 50)) as pilot:
        await app.push_screen(StorageScreen())
        screen = app.screen
        assert isinstance(screen, StorageScreen)
        await wait_for(pilot, lambda: screen.before is not None)
        before = screen.before
        assert before is not None and not before.estimate
        assert {repo.name for repo in before.repos} >= {"acme/api", "acme/web", "staging/web"}
        web = next(repo for repo in before.repos if repo.name == "staging/web")
        assert web.shared_bytes > 0  # its layers are acme/web's too
        # Both ways of collecting are in the panel: nothing is unreferenced, but the untagged
        # manifest and what only it references would go with delete-untagged.
        assert before.reclaimable_bytes == 0
        assert before.reclaimable_untagged_bytes == doomed_bytes
        text = panel_text(screen, "#usage-before")
        assert "0 B · 0 blobs" in line_of(text, "Reclaimable: unreferenced blobs")
        untagged_line = line_of(text, "Reclaimable: with untagged manifests")
        assert f"{human_size(doomed_bytes)} · {len(doomed)} blobs" in untagged_line

        await pilot.press("n")  # dry run without delete-untagged: nothing to collect
        await wait_for(pilot, lambda: screen.preview is not None)
        assert screen.preview is not None and screen.preview.dry_run
        assert not screen.preview.items

        await pilot.press("t", "n")  # untagged manifests too: what the panel announced
        await wait_for(pilot, lambda: screen.preview is not None and screen.preview.items)
        preview = screen.preview
        assert preview is not None
        assert {item.name for item in preview.items} == garbage.manifests | garbage.blobs
        assert preview.blob_bytes == doomed_bytes  # what "Reclaimable" announced
        assert preview.freed_bytes > doomed_bytes  # plus the links of the untagged manifest
        assert all(path.exists() for path in doomed)  # a dry run removes nothing

        await pilot.press("g")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        body = str(app.screen.query_one("#confirm-body", Static).render())
        assert all(digest in body for digest in garbage.blobs)
        await pilot.press("y")
        await wait_for(pilot, lambda: screen.after is not None, seconds=30)
        assert not any(path.exists() for path in doomed)
        assert all(path.exists() for path in survivors)
        after = screen.after
        assert after is not None
        assert after.total_bytes == before.total_bytes - doomed_bytes
        assert after.reclaimable_untagged_bytes == 0
        assert any("Freed" in n for n in notifications(app))

        # The panel after: the same lines, each with its change.
        text = panel_text(screen, "#usage-after")
        assert "Change" in text
        assert signed_size(-doomed_bytes) in line_of(text, "Total on disk")
        assert f"-{len(doomed)}" in line_of(text, "Blobs")
        assert signed_size(-doomed_bytes) in line_of(text, "Reclaimable: with untagged manifests")
        assert line_of(text, "Reclaimable: unreferenced blobs").rstrip().endswith("0 B")
        api = line_of(text, "acme/api")
        assert api.split()[-2].startswith("-")  # acme/api lost the untagged image
        assert line_of(text, "acme/web").rstrip().endswith("0 B")  # untouched
        # The progress bar was indeterminate and is gone; the label says what happened.
        assert not screen.query_one(ProgressBar).display
        activity = str(screen.query_one("#gc-activity", Static).render())
        assert activity.startswith("Done in") and human_size(doomed_bytes) in activity


async def test_other_registries_get_an_estimate_and_gc_explained(
    distribution: RunningRegistry, app_for: AppFactory
) -> None:
    await asyncio.to_thread(populate, distribution.url)
    app = app_for(distribution)
    async with app.run_test(size=(120, 50)) as pilot:
        await app.push_screen(StorageScreen())
        screen = app.screen
        assert isinstance(screen, StorageScreen)
        await wait_for(pilot, lambda: screen.before is not None)
        assert screen.before is not None and screen.backend is not None
        assert screen.before.estimate
        assert len(screen.before.repos) == 7
        explain = str(screen.query_one("#gc-explain", Static).render())
        assert "unavailable" in explain and "garbage-collect" in explain
        await pilot.press("g", "n")
        await pilot.pause(0.1)
        assert screen.preview is None and app.screen is screen


def age_storage(root: Path, seconds: float) -> None:
    """Make every file and directory look ``seconds`` old (past GC's grace period)."""
    past = time.time() - seconds
    for path in [root, *root.rglob("*")]:
        os.utime(path, (past, past))


async def test_gc_through_the_bundled_registrys_extension(
    fresh_demo: RunningRegistry, app_for: AppFactory
) -> None:
    garbage = untagged_garbage(fresh_demo.root)
    doomed = {blob_path(fresh_demo.root, d) for d in garbage.manifests | garbage.blobs}
    survivors = {blob_path(fresh_demo.root, d) for d in garbage.kept}
    age_storage(fresh_demo.root, 3 * 3600)
    app = app_for(fresh_demo)
    async with app.run_test(size=(120, 50)) as pilot:
        await app.push_screen(StorageScreen())
        screen = app.screen
        assert isinstance(screen, StorageScreen)
        await wait_for(pilot, lambda: screen.before is not None)
        backend = screen.backend
        assert isinstance(backend, ExtensionBackend)
        assert screen.before is not None and not screen.before.estimate
        # Hold the real collection until the test has seen the screen while it runs.
        gate = asyncio.Event()
        collect = backend.collect_garbage

        async def gated(
            *, dry_run: bool, delete_untagged: bool = False, grace_period: float | None = None
        ) -> GcView:
            if not dry_run:
                await gate.wait()
            return await collect(
                dry_run=dry_run, delete_untagged=delete_untagged, grace_period=grace_period
            )

        backend.collect_garbage = gated  # type: ignore[method-assign]
        await pilot.press("t", "g")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        body = str(app.screen.query_one("#confirm-body", Static).render())
        assert all(digest in body for digest in garbage.blobs)
        await pilot.press("y")
        # While it runs: an indeterminate bar (no invented percentage) and what is happening.
        await wait_for(pilot, lambda: screen.running)
        progress = screen.query_one(ProgressBar)
        assert progress.display and progress.total is None
        activity = str(screen.query_one("#gc-activity", Static).render())
        assert "holds new manifest commits while it marks" in activity
        gate.set()
        await wait_for(pilot, lambda: screen.after is not None, seconds=30)
        assert not any(path.exists() for path in doomed)
        assert all(path.exists() for path in survivors)
        assert "Change" in panel_text(screen, "#usage-after")


async def test_a_fresh_demo_frees_its_untagged_garbage_at_once(
    fresh_demo: RunningRegistry, app_for: AppFactory
) -> None:
    """The README's first run: everything was just pushed, yet nothing is being pushed now, so
    the registry's 1 h grace period protects nothing: t then g collect the overwritten tag's
    image at once, with the registry's own grace period (no p needed)."""
    garbage = untagged_garbage(fresh_demo.root)
    doomed = {blob_path(fresh_demo.root, d) for d in garbage.manifests | garbage.blobs}
    survivors = {blob_path(fresh_demo.root, d) for d in garbage.kept}
    doomed_bytes = sum(path.stat().st_size for path in doomed)
    assert doomed and survivors
    app = app_for(fresh_demo)
    async with app.run_test(size=(120, 50)) as pilot:
        await app.push_screen(StorageScreen())
        screen = app.screen
        assert isinstance(screen, StorageScreen)
        await wait_for(pilot, lambda: screen.before is not None)
        before = screen.before
        assert before is not None and isinstance(screen.backend, ExtensionBackend)
        assert before.reclaimable_untagged_bytes == doomed_bytes  # no push in flight
        assert before.protected_young_bytes == 0
        explain = str(screen.query_one("#gc-explain", Static).render())
        assert "Grace period: the registry's 1 h" in explain
        assert "p collects them now" not in explain  # nothing is kept back

        await pilot.press("t", "n")
        await wait_for(pilot, lambda: screen.preview is not None)
        assert screen.preview is not None and screen.preview.items
        assert screen.grace_period is None  # the registry's grace period
        await pilot.press("g")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), seconds=30)
        body = str(app.screen.query_one("#confirm-body", Static).render())
        assert all(digest in body for digest in garbage.manifests | garbage.blobs)
        await pilot.press("y")
        await wait_for(pilot, lambda: screen.after is not None, seconds=30)
        assert not any(path.exists() for path in doomed)
        assert all(path.exists() for path in survivors)
        after = screen.after
        assert after is not None and after.total_bytes == before.total_bytes - doomed_bytes
