"""``regtui sync FILE`` between real registries: Debian's docker-registry (Distribution 2.8) as
the source, the bundled registry as the target; incremental by digest, ``--check`` and
``--dry-run``, a whole registry under a prefix, a source that fails beside one that works, and a
sync killed half-way that leaves no tag on an incomplete image and finishes on the next run.

Every command runs as a real ``regtui`` process.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
import yaml

from tests.helpers.images import make_image, make_index, push_image
from tests.helpers.servers import RunningRegistry, bundled_registry, distribution_registry

pytestmark = [pytest.mark.interop, pytest.mark.timeout(240)]

WORKTREE = Path(__file__).resolve().parents[2]
ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


def regtui(*args: str, timeout: float = 200) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui", *args],
        cwd=WORKTREE,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def sync_json(spec_file: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    done = regtui("sync", str(spec_file), "--json", *extra)
    assert done.returncode in (0, 1, 3), done.stderr
    return done.returncode, json.loads(done.stdout)


def digest_of(url: str, repo: str, ref: str) -> str | None:
    response = httpx.head(f"{url}/v2/{repo}/manifests/{ref}", headers={"Accept": ACCEPT})
    return response.headers["Docker-Content-Digest"] if response.status_code == 200 else None


def tags_of(url: str, repo: str) -> list[str]:
    response = httpx.get(f"{url}/v2/{repo}/tags/list")
    if response.status_code == 404:
        return []
    return sorted(response.json().get("tags") or [])


def whole(url: str, repo: str, ref: str) -> bool:
    """Every blob of the manifest ``ref`` names (and of an index's children) is there."""
    response = httpx.get(f"{url}/v2/{repo}/manifests/{ref}", headers={"Accept": ACCEPT})
    if response.status_code != 200:
        return False
    document = response.json()
    if "manifests" in document:
        return all(whole(url, repo, child["digest"]) for child in document["manifests"])
    blobs = [document["config"], *document["layers"]]
    return all(
        httpx.head(f"{url}/v2/{repo}/blobs/{blob['digest']}").status_code == 200 for blob in blobs
    )


@pytest.fixture
def source(tmp_path: Path) -> Iterator[RunningRegistry]:
    with distribution_registry(tmp_path / "source") as running:
        yield running


@pytest.fixture
def target(tmp_path: Path) -> Iterator[RunningRegistry]:
    with bundled_registry(tmp_path / "target") as running:
        yield running


def write_spec(path: Path, entries: list[dict[str, Any]], **defaults: Any) -> Path:
    path.write_text(yaml.safe_dump({"version": 1, "defaults": defaults, "sync": entries}))
    return path


def test_a_second_sync_moves_nothing_and_check_sees_a_new_tag(
    source: RunningRegistry, target: RunningRegistry, tmp_path: Path
) -> None:
    amd = make_image([{"app": os.urandom(50_000)}], architecture="amd64")
    arm = make_image([{"app": os.urandom(40_000)}], architecture="arm64")
    index = make_index([amd, arm])
    for tag in ("v1.0.0", "v1.1.0", "v1.2.0-rc.1", "v2.0.0", "latest"):
        push_image(source.url, "team/app", tag, index if tag == "v2.0.0" else amd)
    spec = write_spec(
        tmp_path / "sync.yml",
        [
            {
                "source": f"{source.host}/team/app",
                "target": f"{target.host}/mirror/app",
                "tags": {"semver": ">=1.0", "exclude": ["*-rc*"], "newest": 2},
            }
        ],
    )
    code, first = sync_json(spec)
    assert code == 0 and first["counts"] == {
        "copied": 2,
        "unchanged": 0,
        "planned": 0,
        "failed": 0,
    }
    assert tags_of(target.url, "mirror/app") == ["v1.1.0", "v2.0.0"]
    for tag in ("v1.1.0", "v2.0.0"):  # the whole index, children and blobs, by the same digest
        assert digest_of(target.url, "mirror/app", tag) == digest_of(source.url, "team/app", tag)
        assert whole(target.url, "mirror/app", tag)

    code, second = sync_json(spec)
    assert code == 0 and second["counts"]["unchanged"] == 2 and second["counts"]["copied"] == 0
    assert regtui("sync", str(spec), "--check").returncode == 0

    push_image(source.url, "team/app", "v1.1.0", arm)  # a tag moved upstream
    code, checked = sync_json(spec, "--check")
    assert code == 3
    planned = [i for i in checked["images"] if i["status"] == "planned"]
    assert [i["target"] for i in planned] == [f"{target.host}/mirror/app:v1.1.0"]
    assert digest_of(target.url, "mirror/app", "v1.1.0") == amd.digest  # a check moves nothing
    code, third = sync_json(spec)
    assert code == 0 and third["counts"]["copied"] == 1
    assert digest_of(target.url, "mirror/app", "v1.1.0") == arm.digest


def test_a_second_sync_of_unchanged_images_loads_no_copy_engine_nor_aiohttp(
    source: RunningRegistry, target: RunningRegistry, tmp_path: Path
) -> None:
    """Nothing to move: the plan's requests are pipelined on kept-alive connections by the
    quick check (:mod:`tui.data.sync_check`), and neither the event loop, httpx, aiohttp
    (~100 ms to import) nor the copy engine (the layout and archive formats) is loaded; a run
    that copies loads them."""
    from tests.helpers.modules import modules_of

    for n in range(3):
        push_image(source.url, f"team/app{n}", "v1", make_image([{"f": os.urandom(1000)}]))
    spec = write_spec(
        tmp_path / "sync.yml",
        [{"source": source.host, "target": f"{target.host}/mirror", "repositories": ["team/*"]}],
    )
    heavy = {"aiohttp", "tui.client._aiohttp", "tui.data.copy", "tui.data.docker_archive"}
    first = modules_of(tmp_path, "sync", str(spec))
    assert "tui.data.copy" in first  # it copied
    again = modules_of(tmp_path, "sync", str(spec))
    assert "tui.client.pipeline" in again  # it did run, on the quick check's pipelines
    assert (heavy | {"asyncio", "httpx", "tui.client._h11", "tui.data.sync"}) & again == set()
    assert all(whole(target.url, f"mirror/team/app{n}", "v1") for n in range(3))


def test_one_platform_a_whole_registry_and_a_failing_source(
    source: RunningRegistry, target: RunningRegistry, tmp_path: Path
) -> None:
    amd = make_image([{"app": os.urandom(30_000)}], architecture="amd64")
    arm = make_image([{"app": os.urandom(30_000)}], architecture="arm64")
    push_image(source.url, "team/multi", "1.0", make_index([amd, arm]))
    push_image(source.url, "team/tool", "1.0", amd)
    push_image(source.url, "other/thing", "1.0", arm)
    spec = write_spec(
        tmp_path / "sync.yml",
        [
            {
                "source": source.host,
                "target": f"{target.host}/backup",
                "repositories": ["team/*"],
                "platform": "linux/arm64",
            },
            {"source": f"{source.host}/team/gone", "target": f"{target.host}/gone"},
        ],
    )
    code, report = sync_json(spec)
    assert code == 1  # the missing repository failed; the other entry still went
    failed = [i for i in report["images"] if i["status"] == "failed"]
    assert len(failed) == 1 and "sync[1]" in failed[0]["where"]
    assert tags_of(target.url, "backup/team/multi") == ["1.0"]
    assert tags_of(target.url, "backup/other/thing") == []  # not among team/*
    # One platform: the arm64 image by itself, as the tag's target.
    assert digest_of(target.url, "backup/team/multi", "1.0") == arm.digest
    assert whole(target.url, "backup/team/multi", "1.0")
    code, again = sync_json(spec)
    assert code == 1 and again["counts"]["copied"] == 0 and again["counts"]["unchanged"] == 2

    plain = regtui("sync", str(spec))
    assert plain.returncode == 1
    assert "2 unchanged" in plain.stdout
    assert plain.stderr.startswith("regtui: warning: sync[1]")
    assert "Traceback" not in plain.stderr


def test_a_mistake_in_the_file_is_one_line_and_moves_nothing(
    source: RunningRegistry, target: RunningRegistry, tmp_path: Path
) -> None:
    push_image(source.url, "team/app", "1.0", make_image([{"a": b"a"}]))
    spec = tmp_path / "sync.yml"
    spec.write_text(
        yaml.safe_dump(
            {
                "sync": [
                    {"source": f"{source.host}/team/app", "target": f"{target.host}/x"},
                    {"source": f"{source.host}/team/app", "target": f"{target.host}/y", "tag": 1},
                ]
            }
        )
    )
    done = regtui("sync", str(spec))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "sync[1]: unknown key 'tag'" in done.stderr
    assert tags_of(target.url, "x") == []
    spec.write_text("sync: [\n")
    done = regtui("sync", str(spec))
    assert done.returncode == 2 and "line" in done.stderr and done.stderr.count("\n") == 1


def test_a_sync_killed_half_way_leaves_no_tag_on_an_incomplete_image(
    source: RunningRegistry, target: RunningRegistry, tmp_path: Path
) -> None:
    """Spaced requests (``--rate-limit``) make the run slow enough to kill in the middle: every
    tag the target has then points at a whole image, and the next run finishes."""
    for n in range(6):
        image = make_image([{"big": os.urandom(300_000)}, {"small": os.urandom(1000)}])
        push_image(source.url, "team/app", f"1.{n}.0", image)
    spec = write_spec(
        tmp_path / "sync.yml",
        [{"source": f"{source.host}/team/app", "target": f"{target.host}/app"}],
        parallel=2,
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "tui", "sync", str(spec), "--rate-limit", "15"],
        cwd=WORKTREE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not tags_of(target.url, "app"):
        time.sleep(0.05)  # kill it as soon as the first image landed, the others on their way
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    landed = tags_of(target.url, "app")
    assert 0 < len(landed) < 6, landed
    for tag in landed:
        assert whole(target.url, "app", tag), tag
    code, report = sync_json(spec)
    assert code == 0 and report["counts"]["copied"] == 6 - len(landed)
    assert tags_of(target.url, "app") == [f"1.{n}.0" for n in range(6)]
    for n in range(6):
        assert whole(target.url, "app", f"1.{n}.0")


def test_tags_of_one_image_copied_at_once_upload_each_blob_once(
    source: RunningRegistry, tmp_path: Path
) -> None:
    """Nine tags of one manifest, copied in parallel to Distribution 2.8: each blob is uploaded
    once, the other copies wait for that upload. (Each upload rewrites the blob's link in the
    repository, truncated then written, and a manifest PUT checking the blob meanwhile failed:
    400 'provided digest did not match uploaded content'.) Distribution's access log counts
    the uploads."""
    image = make_image([{"a": os.urandom(3000)}, {"b": os.urandom(200_000)}])
    tags = [f"v{n}" for n in range(9)]
    push_image(source.url, "team/many", tags[0], image)
    for tag in tags[1:]:  # the other tags on the same manifest, without pushing again
        put = httpx.put(
            f"{source.url}/v2/team/many/manifests/{tag}",
            content=image.manifest.data,
            headers={"Content-Type": image.manifest.media_type},
        )
        assert put.status_code == 201, put.text
    logged = {"log": {"level": "warn", "accesslog": {"disabled": False}}}
    with distribution_registry(tmp_path / "target", config=logged) as target:
        spec = write_spec(
            tmp_path / "sync.yml", [{"source": source.host, "target": f"{target.host}/mirror"}]
        )
        done = regtui("sync", str(spec), "--parallel", str(len(tags)))
        assert done.returncode == 0, done.stdout + done.stderr
        for tag in tags:
            assert whole(target.url, "mirror/team/many", tag)
        log = target.log_path.read_text(errors="replace")
    uploads = re.findall(r'"PUT /v2/mirror/team/many/blobs/uploads/[^" ]*[?&]digest=([^&" ]+)', log)
    digests = [unquote(d) for d in uploads]
    blobs = [blob.digest for blob in image.blobs()]
    assert sorted(digests) == sorted(blobs)  # each once
