"""``regtui prune`` against a concurrent pusher: every change is checked right before it is made.

A proxy between prune and a real registry (the bundled one, Debian's Distribution 2.8.2) lets a
second writer act at an exact point of the apply: when the first DELETE arrives, i.e. after the
plan and after whatever the apply read before its first change. The writer then

* pushes ``b-moving`` again, onto a new image: the plan untags ``b-moving`` (its sibling
  ``keep-1`` stays), so removing it now would leave the new image untagged;
* tags ``c-doomed``'s image ``c-new`` too: the plan deletes that manifest, which would take
  ``c-new`` with it; only ``c-doomed`` may go;
* (bundled registry, which lists untagged manifests) tags the untagged manifest the plan
  deletes as ``u-new``: it must stay.

Before the fix, the apply read each repository's tags once, before its first change: both
``b-moving`` (now the new image's) and ``c-new`` were removed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.hookproxy import hook_proxy
from tests.helpers.images import Image, make_image, push_image
from tests.helpers.servers import RunningRegistry, bundled_registry, distribution_registry
from tui.cli import main
from tui.imagegen import push_manifest

pytestmark = pytest.mark.timeout(180)
REPO = "race/app"
WINDOW = 3.0
"""Seconds the pusher holds the DELETE after its pushes: past twice a read of the tags, even
under load (a read takes milliseconds on a quiet machine)."""
ACCEPT = {
    "Accept": "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"
}


@dataclass
class Scene:
    images: dict[str, Image]
    untagged: Image | None


def image(name: str) -> Image:
    return make_image([{f"{name}.bin": os.urandom(2000)}], created="2024-01-01T00:00:00Z")


def set_scene(url: str, *, untagged: bool) -> Scene:
    images = {name: image(name) for name in ("old", "moving", "doomed", "kept", "new")}
    layout = {
        "a-old": "old",
        "b-moving": "moving",
        "keep-1": "moving",
        "c-doomed": "doomed",
        "keep": "kept",
    }
    with httpx.Client(base_url=url, timeout=60) as client:
        for tag, name in layout.items():
            push_image(client, REPO, tag, images[name])
        loose = image("loose") if untagged else None
        if loose is not None:
            push_image(client, REPO, None, loose)
    return Scene(images, loose)


def pusher(url: str, scene: Scene) -> Any:
    """The other writer: acts once, when the apply's first DELETE arrives at the proxy."""
    done: list[str] = []

    def hook(method: str, path: str) -> None:
        if method != "DELETE" or done:
            return
        done.append(path)
        with httpx.Client(base_url=url, timeout=60) as client:
            push_image(client, REPO, "b-moving", scene.images["new"])
            push_manifest(client, REPO, "c-new", scene.images["doomed"].manifest)
            if scene.untagged is not None:
                push_manifest(client, REPO, "u-new", scene.untagged.manifest)
        # What the apply promises (tui.data.retention._TagMap): a manifest's delete is checked
        # against tags read at most twice one read's time before. On a loaded machine one read
        # took longer than these pushes, so they fell inside that window; the DELETE goes on
        # only once the window is surely over.
        time.sleep(WINDOW)

    return hook, done


def digest_of(client: httpx.Client, reference: str) -> str | None:
    response = client.head(f"/v2/{REPO}/manifests/{reference}", headers=ACCEPT)
    return response.headers["Docker-Content-Digest"] if response.status_code == 200 else None


def prune_through_proxy(
    running: RunningRegistry, scene: Scene, capsys: pytest.CaptureFixture[str], *extra: str
) -> dict[str, Any]:
    hook, done = pusher(running.url, scene)
    with hook_proxy(running.url, hook) as proxy:
        code = main(["prune", proxy, "--keep-tag", "keep.*", *extra, "--yes", "--json"])
    out, err = capsys.readouterr()
    assert done, "the pusher never ran: no DELETE reached the registry"
    report = json.loads(out)
    assert code == 0, (report["applied"], err)
    return report


def check(url: str, scene: Scene) -> None:
    """Every fact at once, so a failure shows each race that went wrong."""
    images = scene.images
    expected = {
        "b-moving": images["new"].digest,  # pushed again during the apply: kept
        "c-new": images["doomed"].digest,  # tagged during the apply: kept, with its manifest
        images["doomed"].digest: images["doomed"].digest,
        "c-doomed": None,  # the planned tag did go
        "keep-1": images["moving"].digest,
        "keep": images["kept"].digest,
        "a-old": None,  # planned and untouched by the pusher: deleted
        images["old"].digest: None,
    }
    if scene.untagged is not None:
        expected["u-new"] = scene.untagged.digest
    with httpx.Client(base_url=url, timeout=30) as client:
        found = {reference: digest_of(client, reference) for reference in expected}
    assert found == expected


def outcomes_by_digest(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {o["digest"]: o for o in report["applied"]}


def test_the_bundled_registry_keeps_what_a_concurrent_pusher_tagged(
    registry: RunningRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    scene = set_scene(registry.url, untagged=True)
    report = prune_through_proxy(registry, scene, capsys, "--untagged-older-than", "0")
    check(registry.url, scene)
    assert scene.untagged is not None
    applied = outcomes_by_digest(report)
    moving = applied[scene.images["moving"].digest]
    assert moving["action"] == "skip" and "left alone: b-moving" in moving["note"]
    doomed = applied[scene.images["doomed"].digest]
    assert doomed["action"] == "untag" and doomed["tags"] == ["c-doomed"]
    assert "tagged since the plan (c-new): only untagged" in doomed["note"]
    loose = applied[scene.untagged.digest]
    assert loose["note"] == "tagged since the plan (u-new)"


@pytest.fixture
def distribution(tmp_path: Path) -> Iterator[RunningRegistry]:
    with distribution_registry(tmp_path / "distribution") as running:
        yield running


@pytest.mark.interop
def test_distribution_keeps_what_a_concurrent_pusher_tagged(
    distribution: RunningRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    """Distribution 2.8 cannot delete a tag: untag goes through a placeholder manifest, which
    is put on the tag only after the tag was found still on the planned digest."""
    scene = set_scene(distribution.url, untagged=False)
    prune_through_proxy(distribution, scene, capsys)
    check(distribution.url, scene)


def test_untag_checks_the_tag_right_before_removing_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``regtui untag``'s own window: the tag pushed again while untag reads its siblings."""
    with bundled_registry(tmp_path / "root") as running:
        old, new = image("old"), image("new")
        with httpx.Client(base_url=running.url, timeout=60) as client:
            push_image(client, REPO, "v1", old)
        lists: list[str] = []

        def hook(method: str, path: str) -> None:
            if method == "GET" and path.startswith(f"/v2/{REPO}/tags/list") and not lists:
                lists.append(path)
                push_image(running.url, REPO, "v1", new)

        with hook_proxy(running.url, hook) as proxy:
            code = main(["untag", f"{proxy}/{REPO}:v1"])
        err = capsys.readouterr().err
        assert lists and code == 1
        assert "pushed again since, left alone" in err and len(err.strip().splitlines()) == 1
        with httpx.Client(base_url=running.url, timeout=30) as client:
            assert digest_of(client, "v1") == new.digest


def test_offline_prune_with_force_checks_each_change_against_the_directory(
    registry: RunningRegistry, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``prune --root --force`` beside a registry serving the same directory: the pusher goes
    through that registry (another process) when the apply's first manifest delete starts."""
    from embedded_registry.storage.store import DriverStorage

    scene = set_scene(registry.url, untagged=True)
    hook, done = pusher(registry.url, scene)
    delete = DriverStorage.delete_manifest

    async def delete_after_the_pusher(self: DriverStorage, name: str, digest: str) -> list[str]:
        hook("DELETE", f"/v2/{name}/manifests/{digest}")
        return await delete(self, name, digest)

    monkeypatch.setattr(DriverStorage, "delete_manifest", delete_after_the_pusher)
    argv = ["prune", "--root", str(registry.root), "--keep-tag", "keep.*"]
    code = main([*argv, "--untagged-older-than", "0", "--force", "--yes", "--json"])
    out, err = capsys.readouterr()
    assert done and code == 0, (out, err)
    check(registry.url, scene)
