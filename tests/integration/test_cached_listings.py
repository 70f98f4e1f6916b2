"""The bundled registry's catalog and referrers stay right while other processes change its root.

The bundled registry keeps both in memory (checked against the disk per request). Here it
shares its storage root with Debian's docker-registry (CNCF Distribution 2.8), which pushes and
deletes; repositories are removed by hand and by ``regtui gc --root``. The tree is aged before
each change, so the bundled registry answers from what it cached unless its checks catch the
change.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.helpers.servers import RunningRegistry, bundled_registry, distribution_registry
from tui.cli import main
from tui.imagegen import make_artifact, make_image, push_image

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]


@dataclass
class Pair:
    ours: RunningRegistry
    theirs: RunningRegistry
    root: Path

    @property
    def repositories(self) -> Path:
        return self.root / "docker" / "registry" / "v2" / "repositories"

    def age(self) -> None:
        """Every time under the root an hour old; then one catalog request to settle on it."""
        then = time.time() - 3600
        for dirpath, dirs, files in os.walk(self.root):
            for name in [*dirs, *files]:
                os.utime(os.path.join(dirpath, name), (then, then))

    def catalog(self, **params: str) -> tuple[list[str], str | None]:
        response = httpx.get(f"{self.ours.url}/v2/_catalog", params=params, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()["repositories"], response.headers.get("Link")

    def distribution_catalog(self) -> list[str]:
        response = httpx.get(f"{self.theirs.url}/v2/_catalog?n=1000", timeout=30)
        assert response.status_code == 200, response.text
        names: list[str] = response.json()["repositories"]
        return names

    def referrers(self, repo: str, digest: str) -> list[str]:
        response = httpx.get(f"{self.ours.url}/v2/{repo}/referrers/{digest}", timeout=30)
        assert response.status_code == 200, response.text
        return sorted(entry["digest"] for entry in response.json()["manifests"])


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    root = tmp_path / "root"
    with distribution_registry(root) as theirs, bundled_registry(root) as ours:
        yield Pair(ours, theirs, root)


def test_catalog_follows_distribution_and_hands(pair: Pair) -> None:
    image = make_image([{"a": b"a"}])
    for repo in ("alpha", "team/one", "team/two"):
        push_image(pair.ours.url, repo, "v1", image)
    pair.age()
    assert pair.catalog()[0] == ["alpha", "team/one", "team/two"]

    # Distribution pushes into a new nested namespace and below an existing repository.
    push_image(pair.theirs.url, "deep/ns/repo", "v1", image)
    push_image(pair.theirs.url, "team/one/sub", "v1", image)
    assert pair.catalog()[0] == pair.distribution_catalog()
    assert pair.catalog()[0] == ["alpha", "deep/ns/repo", "team/one", "team/one/sub", "team/two"]

    # Deleted by hand: a repository, then the whole namespace that held the nested one.
    pair.age()
    pair.catalog()
    shutil.rmtree(pair.repositories / "team" / "two")
    assert pair.catalog()[0] == ["alpha", "deep/ns/repo", "team/one", "team/one/sub"]
    pair.age()
    pair.catalog()
    shutil.rmtree(pair.repositories / "deep")
    assert pair.catalog()[0] == ["alpha", "team/one", "team/one/sub"]
    assert pair.catalog()[0] == pair.distribution_catalog()


def test_catalog_pages_across_outside_changes(pair: Pair) -> None:
    image = make_image([{"p": b"p"}])
    for repo in ("ns/r1", "ns/r2", "ns/r3", "ns/r5", "ns/r6"):
        push_image(pair.ours.url, repo, "v1", image)
    pair.age()
    first, link = pair.catalog(n="2")
    assert first == ["ns/r1", "ns/r2"] and link is not None
    push_image(pair.theirs.url, "ns/r0", "v1", image)  # before the cursor: not on later pages
    push_image(pair.theirs.url, "ns/r4", "v1", image)  # after it: on them
    shutil.rmtree(pair.repositories / "ns" / "r5")
    second, link = pair.catalog(n="2", last="ns/r2")
    assert second == ["ns/r3", "ns/r4"] and link is not None
    third, link = pair.catalog(n="2", last="ns/r4")
    assert third == ["ns/r6"] and link is None


def test_catalog_after_regtui_gc_removes_empty_repositories(pair: Pair) -> None:
    kept = make_image([{"k": b"k"}])
    push_image(pair.ours.url, "ns/kept", "v1", kept)
    doomed = make_image([{"d": b"d"}])
    push_image(pair.ours.url, "ns/doomed", None, doomed)  # untagged only
    pair.age()
    assert pair.catalog()[0] == ["ns/doomed", "ns/kept"]
    code = main(
        [
            "gc",
            "--root",
            str(pair.root),
            "--delete-untagged",
            "--remove-empty-repos",
            "--grace-period",
            "0",
            "--force",
            "--json",
        ]
    )
    assert code == 0
    assert not (pair.repositories / "ns" / "doomed").exists()
    assert pair.catalog()[0] == ["ns/kept"]


def test_referrers_follow_distribution_and_regtui_gc(pair: Pair) -> None:
    image = make_image([{"app": b"app"}])
    push_image(pair.ours.url, "app", "v1", image)
    signature = make_artifact(image, annotations={"kind": "signature"})
    push_image(pair.ours.url, "app", None, signature)
    pair.age()
    assert pair.referrers("app", image.digest) == [signature.digest]

    # Distribution deletes the referrer by digest (only its link goes).
    deleted = httpx.delete(f"{pair.theirs.url}/v2/app/manifests/{signature.digest}", timeout=30)
    assert deleted.status_code == 202, deleted.text
    assert pair.referrers("app", image.digest) == []

    # Distribution pushes it again (the link comes back in the same directory), and another.
    pair.age()
    pair.referrers("app", image.digest)
    push_image(pair.theirs.url, "app", None, signature)
    assert pair.referrers("app", image.digest) == [signature.digest]
    sbom = make_artifact(image, artifact_type="application/spdx+json", payload=b"{}")
    push_image(pair.theirs.url, "app", None, sbom)
    assert pair.referrers("app", image.digest) == sorted([signature.digest, sbom.digest])

    # regtui gc --delete-untagged removes an untagged image and its referrer.
    orphan = make_image([{"orphan": b"o"}])
    push_image(pair.ours.url, "app", None, orphan)
    orphan_sig = make_artifact(orphan)
    push_image(pair.ours.url, "app", None, orphan_sig)
    pair.age()
    assert pair.referrers("app", orphan.digest) == [orphan_sig.digest]
    args = ["gc", "--root", str(pair.root), "-m", "--grace-period", "0", "--force", "--json"]
    assert main(args) == 0
    assert pair.referrers("app", orphan.digest) == []
    assert pair.referrers("app", image.digest) == sorted([signature.digest, sbom.digest])

    # The repository deleted by hand.
    pair.age()
    pair.referrers("app", image.digest)
    shutil.rmtree(pair.repositories / "app")
    assert pair.referrers("app", image.digest) == []


def test_tags_follow_distribution(pair: Pair) -> None:
    """Each repository's tags kept in memory (one stamp of its ``tags`` directory per request)
    follow what Distribution pushes and deletes in the same root."""

    def tags(url: str, repo: str) -> list[str]:
        response = httpx.get(f"{url}/v2/{repo}/tags/list", timeout=30)
        assert response.status_code == 200, response.text
        found: list[str] = response.json()["tags"] or []
        return found

    image = make_image([{"tags": b"t"}])
    push_image(pair.ours.url, "app", "v1", image)
    pair.age()
    assert tags(pair.ours.url, "app") == ["v1"]
    assert tags(pair.ours.url, "app") == ["v1"]  # settled: answered from memory now

    # Distribution tags the same image and pushes another one under a new tag.
    push_image(pair.theirs.url, "app", "v2", image)
    other = make_image([{"other": b"o"}])
    push_image(pair.theirs.url, "app", "v3", other)
    assert tags(pair.ours.url, "app") == ["v1", "v2", "v3"] == tags(pair.theirs.url, "app")

    # Distribution deletes the other image by digest: its tag goes with it.
    pair.age()
    tags(pair.ours.url, "app")
    deleted = httpx.delete(f"{pair.theirs.url}/v2/app/manifests/{other.digest}", timeout=30)
    assert deleted.status_code == 202, deleted.text
    assert tags(pair.ours.url, "app") == ["v1", "v2"] == tags(pair.theirs.url, "app")
