"""Immutable tags and quotas (``regtui.immutable``, ``regtui.quota``) against real pushes: skopeo
and plain HTTP into the bundled registry on a disk, refused with DENIED and nothing stored, and
quota usage exactly what ``regtui du --root`` counts."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.helpers.servers import ADMIN_DIR_ENV, RunningRegistry, bundled_registry, require_tool
from tests.helpers.spec import (
    assert_oci_error,
    blob_on_disk,
    start_upload,
    upload_files,
    with_query,
)
from tui.cli import main
from tui.imagegen import Image, PushError, make_image, make_layer, push_image, write_oci_layout

pytestmark = pytest.mark.interop

IMMUTABLE = [
    {"repository": "team/*", "tags": ["v*"]},
    {"repository": "prod/app", "regex": r"release-\d+"},
]


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    binary = require_tool("skopeo")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=180, check=False)


def copy_in(tmp_path: Path, registry: RunningRegistry, image: Image, target: str) -> str:
    """skopeo copy of ``image`` to ``target`` (repo:tag); its stderr ('' on success)."""
    layout = write_oci_layout(tmp_path / f"layout-{image.digest[7:19]}", image, tag="t")
    host = registry.url.removeprefix("http://")
    result = skopeo(
        "copy", "--dest-tls-verify=false", f"oci:{layout}:t", f"docker://{host}/{target}"
    )
    return "" if result.returncode == 0 else result.stderr


def random_image(size: int, *, seed: bytes | None = None) -> Image:
    """An image whose one layer holds ``size`` random bytes (gzipped: skopeo keeps the
    compression of a gzipped layer, so the blobs it pushes are these)."""
    layer = make_layer({"data": seed or os.urandom(size)})
    return make_image([layer])


def image_bytes(image: Image, *, without: set[str] | None = None) -> int:
    """What the image adds to a repository, as ``du`` counts it: manifest, config, layers (the
    blobs in ``without``, already there, excepted)."""
    skip = without or set()
    return len(image.manifest.data) + sum(b.size for b in image.blobs() if b.digest not in skip)


def du_root(root: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, int]:
    """``regtui du --root`` per repository: referenced bytes."""
    capsys.readouterr()
    assert main(["du", "--root", str(root), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    return {r["name"]: r["referenced_bytes"] for r in document["repositories"]}


@pytest.fixture
def immutable(tmp_path: Path) -> Iterator[RunningRegistry]:
    require_tool("skopeo")
    config = {"version": "0.1", "regtui": {"immutable": IMMUTABLE}}
    with bundled_registry(tmp_path / "root", config=config) as running:
        yield running


def _digest(registry: RunningRegistry, repo: str, reference: str) -> str | None:
    response = httpx.head(
        f"{registry.url}/v2/{repo}/manifests/{reference}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    return response.headers["Docker-Content-Digest"] if response.status_code == 200 else None


def test_skopeo_cannot_move_an_immutable_tag(immutable: RunningRegistry, tmp_path: Path) -> None:
    first, second = random_image(3000), random_image(3000)
    assert copy_in(tmp_path, immutable, first, "team/app:v1.0.0") == ""
    assert copy_in(tmp_path, immutable, first, "team/app:v1.0.0") == ""  # idempotent re-push
    refused = copy_in(tmp_path, immutable, second, "team/app:v1.0.0")
    assert "immutable" in refused and "regtui.immutable[0]" in refused, refused
    assert _digest(immutable, "team/app", "v1.0.0") == first.digest
    # Nothing of the refused manifest is stored: no revision, no manifest blob.
    assert _digest(immutable, "team/app", second.digest) is None
    assert not blob_on_disk(immutable.root, second.digest).exists()
    # A tag no rule names moves freely; the regex rule holds the whole tag only.
    assert copy_in(tmp_path, immutable, first, "team/app:latest") == ""
    assert copy_in(tmp_path, immutable, second, "team/app:latest") == ""
    assert copy_in(tmp_path, immutable, first, "prod/app:release-7") == ""
    refused = copy_in(tmp_path, immutable, second, "prod/app:release-7")
    assert "regtui.immutable[1]" in refused, refused
    assert copy_in(tmp_path, immutable, first, "prod/app:release-7x") == ""
    assert copy_in(tmp_path, immutable, second, "prod/app:release-7x") == ""


def test_immutable_tag_cannot_be_deleted(immutable: RunningRegistry, tmp_path: Path) -> None:
    image = random_image(2000)
    push_image(immutable.url, "team/app", "v2", image)
    with httpx.Client(base_url=immutable.url) as client:
        body = assert_oci_error(client.delete("/v2/team/app/manifests/v2"), 403, "DENIED")
        assert "regtui.immutable[0]" in body["errors"][0]["message"]
        body = assert_oci_error(
            client.delete(f"/v2/team/app/manifests/{image.digest}"), 403, "DENIED"
        )
        assert "tag v2 of team/app is immutable" in body["errors"][0]["message"]
    host = immutable.url.removeprefix("http://")
    result = skopeo("delete", "--tls-verify=false", f"docker://{host}/team/app:v2")
    assert result.returncode != 0 and "immutable" in result.stderr, result.stderr
    assert _digest(immutable, "team/app", "v2") == image.digest
    # A digest no immutable tag names goes as before.
    other = random_image(2000)
    push_image(immutable.url, "team/app", "latest", other)
    assert httpx.delete(f"{immutable.url}/v2/team/app/manifests/{other.digest}").status_code == 202


def test_ext_tags_marks_immutable_tags(immutable: RunningRegistry) -> None:
    image = random_image(1000)
    push_image(immutable.url, "team/app", "v3", image)
    push_image(immutable.url, "team/app", "edge", image)
    document = httpx.get(f"{immutable.url}/v2/team/app/_regtui/tags").json()
    marks = {t["tag"]: t["immutable"] for t in document["tags"]}
    assert marks["edge"] is None
    assert marks["v3"] is not None and marks["v3"].startswith("regtui.immutable[0]")


# -- quotas -----------------------------------------------------------------------------------
def _quota_registry(tmp_path: Path, quota: list[dict[str, Any]]) -> Any:
    config = {"version": "0.1", "regtui": {"quota": quota}}
    return bundled_registry(tmp_path / "root", config=config)


def test_quota_exact_as_du_counts_shared_layers_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The limit is exactly what two images sharing a layer use, as du counts: both go in, and
    a third image with one byte more of anything is refused."""
    require_tool("skopeo")
    shared = make_layer({"shared": os.urandom(4000)})
    one = make_image([shared, make_layer({"a": os.urandom(3000)})])
    two = make_image([shared, make_layer({"b": os.urandom(2000)})])
    limit = image_bytes(one) + image_bytes(two, without={shared.digest})
    with _quota_registry(tmp_path, [{"repository": "q/app", "limit": limit}]) as registry:
        assert copy_in(tmp_path, registry, one, "q/app:one") == ""
        assert copy_in(tmp_path, registry, two, "q/app:two") == ""
        assert du_root(registry.root, capsys)["q/app"] == limit
        three = random_image(10)
        refused = copy_in(tmp_path, registry, three, "q/app:three")
        assert "quota exceeded" in refused and "regtui.quota[0]" in refused, refused
        assert _digest(registry, "q/app", "three") is None
        # Nothing of the refused push is stored: neither its blobs nor its manifest.
        for blob in (three.manifest, *three.blobs()):
            assert not blob_on_disk(registry.root, blob.digest).exists(), blob.digest
        assert du_root(registry.root, capsys)["q/app"] == limit
        # Re-pushing what is there costs nothing; a re-tag neither.
        assert copy_in(tmp_path, registry, one, "q/app:again") == ""
        # The storage panels show the use against the limit: du over the API and offline.
        monkeypatch.setenv(ADMIN_DIR_ENV, str(registry.admin_dir))
        capsys.readouterr()
        assert main(["du", registry.url.removeprefix("http://")]) == 0
        assert "quota repository q/app: " in capsys.readouterr().out
        config_file = tmp_path / "du-config.yml"
        config_file.write_text(
            yaml.safe_dump(
                {
                    "storage": {"filesystem": {"rootdirectory": str(registry.root)}},
                    "regtui": {"quota": [{"repository": "q/app", "limit": limit}]},
                }
            )
        )
        assert main(["du", "--config", str(config_file), "--json"]) == 0
        offline = json.loads(capsys.readouterr().out)["quotas"]
        assert [(q["name"], q["used_bytes"], q["limit_bytes"]) for q in offline] == [
            ("q/app", limit, limit)
        ]
        report = httpx.get(
            f"{registry.url}/v2/_regtui/ext/storage", headers=registry.admin_headers()
        ).json()
        assert report["quotas"] == [
            {
                "rule": "regtui.quota[0] (repository q/app)",
                "scope": "repository",
                "name": "q/app",
                "limit_bytes": limit,
                "used_bytes": limit,
            }
        ]


def test_blob_upload_over_quota_refused_as_bytes_arrive(tmp_path: Path) -> None:
    """A chunked upload (no length announced) is refused at the byte that goes over, and the
    upload is gone; a declared length over the limit is refused before any byte is read."""
    quota = [{"repository": "q/blob", "limit": "64KiB"}]
    with (
        _quota_registry(tmp_path, quota) as registry,
        httpx.Client(base_url=registry.url, timeout=30) as client,
    ):
        location = start_upload(client, "q/blob")

        def body() -> Iterator[bytes]:
            for _ in range(40):
                yield os.urandom(4096)

        response = client.patch(
            location, content=body(), headers={"Content-Type": "application/octet-stream"}
        )
        document = assert_oci_error(response, 403, "DENIED")
        error = document["errors"][0]
        assert "quota exceeded" in error["message"]
        assert error["detail"]["limit_bytes"] == 65536 and error["detail"]["used_bytes"] == 0
        assert upload_files(registry.root) == set()
        assert_oci_error(client.get(location), 404, "BLOB_UPLOAD_UNKNOWN")

        data = os.urandom(70000)
        location = start_upload(client, "q/blob")
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        response = client.put(with_query(location, digest=digest), content=data)
        assert_oci_error(response, 403, "DENIED")
        assert not blob_on_disk(registry.root, digest).exists()
        assert upload_files(registry.root) == set()
        # Within the limit: accepted.
        small = os.urandom(60000)
        location = start_upload(client, "q/blob")
        digest = "sha256:" + hashlib.sha256(small).hexdigest()
        assert client.put(with_query(location, digest=digest), content=small).status_code == 201


def test_manifest_over_quota_refused_when_each_blob_fits(tmp_path: Path) -> None:
    """Each layer fits alone, the image does not: the manifest PUT is refused, no tag."""
    layers = [make_layer({n: os.urandom(20000)}) for n in "ab"]
    image = make_image(layers)
    with _quota_registry(tmp_path, [{"repository": "q/img", "limit": 30000}]) as registry:
        with pytest.raises(PushError, match="403"):
            push_image(registry.url, "q/img", "v1", image)
        assert _digest(registry, "q/img", "v1") is None
        assert not blob_on_disk(registry.root, image.digest).exists()


def test_namespace_quota_sums_its_repositories(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require_tool("skopeo")
    a, b = random_image(5000), random_image(5000)
    limit = image_bytes(a) + image_bytes(b)
    with _quota_registry(tmp_path, [{"namespace": "ns", "limit": limit}]) as registry:
        push_image(registry.url, "ns/a", "v1", a)
        assert copy_in(tmp_path, registry, b, "ns/b:v1") == ""
        push_image(registry.url, "other/c", "v1", random_image(9000))  # not in the namespace
        with pytest.raises(PushError, match=r"regtui\.quota"):
            push_image(registry.url, "ns/c", "v1", random_image(100))
        # skopeo into a third repository of the namespace: refused by the namespace's rule,
        # and nothing of it stored.
        late = random_image(3000)
        refused = copy_in(tmp_path, registry, late, "ns/d:v1")
        assert "quota exceeded" in refused and "namespace ns" in refused, refused
        for blob in (late.manifest, *late.blobs()):
            assert not blob_on_disk(registry.root, blob.digest).exists(), blob.digest
        usage = du_root(registry.root, capsys)
        assert usage["ns/a"] + usage["ns/b"] == limit and usage.get("ns/c", 0) == 0
        assert usage.get("ns/d", 0) == 0


def test_concurrent_pushes_racing_the_limit_never_overshoot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = [random_image(6000) for _ in range(8)]
    sizes = [image_bytes(i) for i in images]
    # Gzip makes them differ by a few bytes: room for any three, never for four.
    limit = 3 * max(sizes) + max(sizes) // 2
    assert 4 * min(sizes) > limit
    accepted: list[int] = []
    refused: list[str] = []
    with _quota_registry(tmp_path, [{"repository": "race/app", "limit": limit}]) as registry:

        def push(index: int) -> None:
            try:
                push_image(registry.url, "race/app", f"t{index}", images[index])
            except PushError as exc:
                refused.append(str(exc))
            else:
                accepted.append(index)

        threads = [threading.Thread(target=push, args=(i,)) for i in range(len(images))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        used = du_root(registry.root, capsys)["race/app"]
    assert len(accepted) == 3, (accepted, refused)
    assert used == sum(sizes[i] for i in accepted) <= limit
    assert all("DENIED" in r for r in refused)


def test_cli_shows_immutable_tags_and_refusals_in_one_line(
    immutable: RunningRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    image = random_image(1500)
    push_image(immutable.url, "team/cli", "v9", image)
    push_image(immutable.url, "team/cli", "edge", image)
    host = immutable.url.removeprefix("http://")
    capsys.readouterr()
    assert main(["tags", f"{host}/team/cli", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["tags"] == ["edge", "v9"]
    assert listed["immutable"] == ["v9"]
    capsys.readouterr()
    assert main(["tags", f"{host}/team/cli", "--json", "--long"]) == 0
    long = json.loads(capsys.readouterr().out)
    assert {m["tag"]: m["immutable"] for m in long["manifests"]} == {"edge": False, "v9": True}
    for command in (
        ["untag", f"{host}/team/cli:v9"],
        ["rm", f"{host}/team/cli:v9", "--yes"],
    ):
        code = main(command)
        captured = capsys.readouterr()
        lines = [line for line in captured.err.splitlines() if line.strip()]
        assert code != 0, captured
        assert len(lines) == 1, lines
        assert "immutable" in lines[0] and "regtui.immutable[0]" in lines[0], lines
        assert "Traceback" not in captured.err
    assert _digest(immutable, "team/cli", "v9") == image.digest


def test_prune_keeps_immutable_tags_and_says_which_rule(
    immutable: RunningRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    """The plan keeps what the registry would refuse to delete, and says which rule: nothing
    is tried and refused."""
    for index, tag in enumerate(("v1", "old1")):
        push_image(immutable.url, "team/p", tag, random_image(500 + index))
    host = immutable.url.removeprefix("http://")
    capsys.readouterr()
    code = main(["prune", host, "--keep-newest", "0", "--repo", "team/p", "--yes", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    plan = json.loads(captured.out)["plan"]
    (repo,) = plan["repositories"]
    staying = {t["tag"]: t["reasons"] for t in repo["tags_staying"]}
    assert any("regtui.immutable[0]" in reason for reason in staying["v1"]), staying
    assert [t["tag"] for t in repo["tags_going"]] == ["old1"]
    applied = json.loads(captured.out)["applied"]
    assert [a for a in applied if a["error"]] == []
    assert _digest(immutable, "team/p", "v1") is not None
    assert _digest(immutable, "team/p", "old1") is None


def test_scheduled_retention_never_deletes_an_immutable_tag(tmp_path: Path) -> None:
    """regtui.retention runs in the server and deletes through the storage, not the routes:
    the immutable rule holds there too (the run records the refusal)."""
    config = {
        "version": "0.1",
        "storage": {"maintenance": {"uploadpurging": {"enabled": False}}},
        "regtui": {
            "immutable": IMMUTABLE,
            "retention": {
                "rules": {"delete_older_than": "1s", "by": "pushed"},
                "interval": "1s",
                "gc": False,
            },
        },
    }
    with bundled_registry(tmp_path / "root", config=config) as registry:
        held, other = random_image(800), random_image(900)
        push_image(registry.url, "team/ret", "v1", held)
        push_image(registry.url, "team/ret", "old", other)
        deadline = time.monotonic() + 60
        runs: list[dict[str, Any]] = []
        while time.monotonic() < deadline and _digest(registry, "team/ret", "old") is not None:
            time.sleep(0.5)
        response = httpx.get(
            f"{registry.url}/v2/_regtui/ext/retention",
            headers=registry.admin_headers(),
            timeout=30,
        )
        assert response.status_code == 200, response.text
        runs = response.json()["runs"]
        applied = [a for run in runs for a in run.get("applied", [])]
        assert [a for a in applied if a.get("error")] == []  # nothing tried and refused
        staying = [
            tag
            for run in runs
            for repo in run.get("plan", {}).get("repositories", [])
            for tag in repo.get("tags_staying", [])
            if tag["tag"] == "v1"
        ]
        assert staying and any("regtui.immutable[0]" in r for r in staying[0]["reasons"]), runs
        assert _digest(registry, "team/ret", "v1") == held.digest
        assert _digest(registry, "team/ret", "old") is None
