"""regtui's GC against Distribution's own ``registry garbage-collect`` on directories it wrote.

Debian's ``docker-registry`` (CNCF Distribution 2.8) writes the data directory: images pushed with
skopeo and over plain HTTP, some deleted through the API, a tag moved. Then both collectors look
at identical copies: regtui's dry run must name exactly the blobs (and, with delete-untagged, the
manifests) that Distribution names; after regtui's real run Distribution still serves every tagged
image byte for byte, and the files under the root shrank by exactly the bytes regtui reported.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from embedded_registry.gc import collect_garbage
from tests.helpers.images import Image, make_image, make_layer, push_image, write_oci_layout
from tests.helpers.servers import distribution_config, distribution_registry, require_tool
from tui.imagegen import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]

ACCEPT = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST])
BLOB_LINE = re.compile(r"^blob eligible for deletion: (sha256:[0-9a-f]{64})$", re.M)
MANIFEST_LINE = re.compile(r"^manifest eligible for deletion: (sha256:[0-9a-f]{64})$", re.M)


@dataclass
class Populated:
    root: Path
    tagged: dict[tuple[str, str], Image]


def _file_bytes(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        total += sum(os.lstat(os.path.join(dirpath, name)).st_size for name in files)
    return total


def _delete(url: str, repo: str, digest: str) -> None:
    response = httpx.delete(f"{url}/v2/{repo}/manifests/{digest}", timeout=30)
    assert response.status_code == 202, response.text


def _populate(root: Path, tmp_path: Path) -> Populated:
    """Images on Distribution: shared layers, deletions, a moved tag, one pushed with skopeo."""
    skopeo = require_tool("skopeo")
    base = make_layer({"etc/os-release": b"ID=regtui-base\n"})
    tagged: dict[tuple[str, str], Image] = {}
    with distribution_registry(root) as dist:
        app_v1 = make_image([base, {"app/v": b"1"}], oci=False)
        app_v2 = make_image([base, {"app/v": b"2"}], oci=False)
        app_v3 = make_image([base, {"app/v": b"3" * 5000}], oci=False)
        push_image(dist.url, "team/app", "v1", app_v1)
        push_image(dist.url, "team/app", "v2", app_v2)
        push_image(dist.url, "team/app", "latest", app_v2)
        push_image(dist.url, "team/app", "v3", app_v3)
        _delete(dist.url, "team/app", app_v3.digest)  # deleted: its own layer becomes garbage
        tagged[("team/app", "v1")] = app_v1
        tagged[("team/app", "v2")] = app_v2
        tagged[("team/app", "latest")] = app_v2

        # A tag moved: the old manifest stays as an untagged revision.
        tool_old = make_image([{"bin/tool": b"old" * 100}])
        tool_new = make_image([{"bin/tool": b"new" * 100}])
        push_image(dist.url, "tools", "stable", tool_old)
        push_image(dist.url, "tools", "stable", tool_new)
        tagged[("tools", "stable")] = tool_new

        # A tag moved, then its old manifest deleted: the tag's history still names it.
        first = make_image([{"moved": b"first" * 100}])
        second = make_image([{"moved": b"second" * 100}])
        push_image(dist.url, "moved", "t", first)
        push_image(dist.url, "moved", "t", second)
        _delete(dist.url, "moved", first.digest)
        tagged[("moved", "t")] = second

        # A repository whose only image was deleted; a layer shared with another repo stays.
        gone = make_image([base, {"tmp/x": b"gone" * 300}], oci=False)
        push_image(dist.url, "scratch/gone", "v1", gone)
        _delete(dist.url, "scratch/gone", gone.digest)

        # Pushed with skopeo from an OCI layout, as an outside client does.
        skopeo_image = make_image([{"skopeo/file": b"pushed by skopeo"}])
        layout_dir = write_oci_layout(tmp_path / "oci-layout", skopeo_image, tag="v1")
        subprocess.run(
            [
                skopeo,
                "copy",
                "--quiet",
                "--dest-tls-verify=false",
                f"oci:{layout_dir}:v1",
                f"docker://{dist.host}/ext/skopeo:v1",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        tagged[("ext/skopeo", "v1")] = skopeo_image
    return Populated(root, tagged)


def _distribution_gc(root: Path, tmp_path: Path, *args: str) -> str:
    binary = require_tool("docker-registry")
    config = tmp_path / f"gc-{len(list(tmp_path.iterdir()))}.yml"
    config.write_text(yaml.safe_dump(distribution_config(root, 5000)))
    done = subprocess.run(
        [binary, "garbage-collect", *args, str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> Populated:
    tmp_path = tmp_path_factory.mktemp("gc-dist")
    return _populate(tmp_path / "root", tmp_path)


@pytest.mark.parametrize("delete_untagged", [False, True])
def test_dry_run_names_the_blobs_distribution_names(
    populated: Populated, tmp_path: Path, delete_untagged: bool
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(populated.root, copy)
    flags = ["--dry-run", *(["--delete-untagged"] if delete_untagged else [])]
    output = _distribution_gc(copy, tmp_path, *flags)
    theirs = set(BLOB_LINE.findall(output))
    their_manifests = set(MANIFEST_LINE.findall(output))

    report = collect_garbage(copy, dry_run=True, delete_untagged=delete_untagged, grace_period=0)

    assert theirs, "the scenario must leave garbage for both collectors"
    assert set(report.eligible_blobs) == theirs
    ours_manifests = {r.digest for r in report.removals if r.kind == "manifest"}
    assert ours_manifests == their_manifests
    assert bool(their_manifests) == delete_untagged
    assert report.problems == []
    assert report.bytes_freed == 0
    # Every removal carries its size, and the blob total is the sum of the data files.
    sizes = {d: (copy / _blob_rel(d)).stat().st_size for d in theirs}
    assert report.blob_bytes == sum(sizes.values())


def _blob_rel(digest: str) -> Path:
    hex_part = digest.split(":", 1)[1]
    return Path("docker/registry/v2/blobs/sha256") / hex_part[:2] / hex_part / "data"


@pytest.mark.parametrize("delete_untagged", [False, True])
def test_real_run_keeps_every_tagged_image_and_frees_what_it_reports(
    populated: Populated, tmp_path: Path, delete_untagged: bool
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(populated.root, copy)
    before = _file_bytes(copy)

    report = collect_garbage(
        copy, delete_untagged=delete_untagged, remove_empty_repos=True, grace_period=0
    )

    assert report.problems == []
    assert all(r.removed for r in report.removals)
    assert report.bytes_freed > 0
    assert before - _file_bytes(copy) == report.bytes_freed
    for digest in report.eligible_blobs:
        assert not (copy / _blob_rel(digest)).exists()
    # Distribution left the emptied repository behind; regtui removed it (with the flag).
    repos = copy / "docker/registry/v2/repositories"
    assert not (repos / "scratch" / "gone").exists()
    # No dangling layer links remain: every _layers link names a blob that exists.
    for link in repos.rglob("_layers/sha256/*/link"):
        assert (copy / _blob_rel(link.read_text().strip())).exists(), link

    # Tag history names no manifest that is gone (Distribution keeps such entries).
    entries = list(repos.rglob("_manifests/tags/*/index/sha256/*/link"))
    assert entries
    for link in entries:
        assert (copy / _blob_rel(link.read_text().strip())).exists(), link
    if delete_untagged:  # the moved tag's old manifest went, with its tag history entry
        assert len(list(repos.glob("tools/_manifests/tags/stable/index/sha256/*"))) == 1
    assert len(list(repos.glob("moved/_manifests/tags/t/index/sha256/*"))) == 1

    # A second run finds nothing more to do.
    again = collect_garbage(copy, delete_untagged=delete_untagged, grace_period=0)
    assert again.removals == []

    # Distribution serves every tagged image, byte for byte, from what regtui left.
    with distribution_registry(copy) as dist, httpx.Client(base_url=dist.url, timeout=30) as c:
        for (repo, tag), image in populated.tagged.items():
            response = c.get(f"/v2/{repo}/manifests/{tag}", headers={"Accept": ACCEPT})
            assert response.status_code == 200, (repo, tag, response.text)
            if repo != "ext/skopeo":  # skopeo may re-serialize the manifest it copies
                assert response.content == image.manifest.data
            for blob in image.blobs():
                got = c.get(f"/v2/{repo}/blobs/{blob.digest}")
                assert got.status_code == 200, (repo, blob.digest)
                assert got.content == blob.data
        catalog = c.get("/v2/_catalog").json()["repositories"]
        assert "scratch/gone" not in catalog

    # And Distribution's own collector agrees nothing is left to collect.
    output = _distribution_gc(copy, tmp_path, "--dry-run")
    assert BLOB_LINE.findall(output) == []
