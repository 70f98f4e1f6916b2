"""``regtui cp`` to and from an OCI image layout and a ``docker save`` archive: skopeo reads
what cp writes (and cp what skopeo writes); archives made here the way Docker writes them
(legacy ``<id>/layer.tar`` with links for repeated layers, and Docker 25's ``blobs/sha256``)
are imported; hostile archives are refused in one line; a failed copy leaves no archive."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.hookproxy import hook_proxy
from tests.helpers.images import Image, make_image, make_index, push_image
from tests.helpers.servers import RunningRegistry, bundled_registry, require_tool
from tests.integration.test_copy import cp_json, manifest, regtui, tags_of

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]


def skopeo(*args: str) -> str:
    done = subprocess.run(
        [require_tool("skopeo"), *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def bundled(tmp_path: Path) -> Iterator[RunningRegistry]:
    with bundled_registry(tmp_path / "bundled") as running:
        yield running


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_skopeo_reads_the_oci_layout_cp_writes_and_cp_reads_skopeos(
    tmp_path: Path, bundled: RunningRegistry
) -> None:
    amd = make_image([{"a": os.urandom(100_000)}], architecture="amd64")
    arm = make_image([{"b": os.urandom(100_000)}], architecture="arm64")
    index = make_index([amd, arm])
    push_image(bundled.url, "src/app", "v1", index)
    layout = tmp_path / "layout"

    done = cp_json(f"{bundled.host}/src/app:v1", f"oci:{layout}:t1", "--all")
    assert done["digest"] == index.digest
    assert skopeo("inspect", "--raw", f"oci:{layout}:t1").encode() == index.manifest.data
    config = json.loads(skopeo("inspect", "--config", f"oci:{layout}:t1"))
    assert config["architecture"] == "amd64"
    skopeo("copy", "--all", "--dest-tls-verify=false", f"oci:{layout}:t1",
           f"docker://{bundled.host}/via-skopeo/app:1")  # fmt: skip
    copied = manifest(bundled.url, "via-skopeo/app", "1")
    assert copied.headers["Docker-Content-Digest"] == index.digest

    # a second image in the same layout: the first entry stays; a rerun skips every blob
    cp_json(f"{bundled.host}/src/app:v1", f"oci:{layout}:t2", "--platform", "linux/arm64")
    names = [
        m["annotations"]["org.opencontainers.image.ref.name"]
        for m in json.loads((layout / "index.json").read_text())["manifests"]
    ]
    assert sorted(names) == ["t1", "t2"]
    rerun = cp_json(f"{bundled.host}/src/app:v1", f"oci:{layout}:t1", "--all")
    assert rerun["blobs_copied"] == 0 and rerun["blobs_skipped"] == 4

    written = tmp_path / "skopeo-layout"
    skopeo("copy", "--all", "--src-tls-verify=false",
           f"docker://{bundled.host}/src/app:v1", f"oci:{written}:s")  # fmt: skip
    back = cp_json(f"oci:{written}:s", f"{bundled.host}/from-oci/app:1", "--all")
    assert back["digest"] == index.digest
    assert manifest(bundled.url, "from-oci/app", "1").content == index.manifest.data


def _layers_of_config(image: Image) -> list[str]:
    return list(json.loads(image.config.data)["rootfs"]["diff_ids"])


def test_skopeo_reads_the_docker_archive_cp_writes_and_cp_reads_skopeos(
    tmp_path: Path, bundled: RunningRegistry
) -> None:
    image = make_image([{"a": os.urandom(80_000)}, {"b": b"small"}])
    zstd = make_image([{"c": os.urandom(80_000)}], compression="zstd", architecture="arm64")
    push_image(bundled.url, "src/app", "v1", make_index([image, zstd]))
    archive = tmp_path / "app.tar"

    for platform, chosen in (("linux/amd64", image), ("linux/arm64", zstd)):
        cp_json(f"{bundled.host}/src/app:v1", f"docker-archive:{archive}:demo/app:v1",
                "--platform", platform)  # fmt: skip
        inspected = json.loads(skopeo("inspect", f"docker-archive:{archive}"))
        assert inspected["Layers"] == _layers_of_config(chosen)
        assert json.loads(skopeo("inspect", "--config", f"docker-archive:{archive}")) == (
            json.loads(chosen.config.data)
        )
        with tarfile.open(archive) as tar:
            entry = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        assert entry[0]["RepoTags"] == ["demo/app:v1"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []

    written = tmp_path / "skopeo.tar"
    skopeo("copy", "--src-tls-verify=false", f"docker://{bundled.host}/src/app:v1",
           f"docker-archive:{written}:from/skopeo:1")  # fmt: skip
    back = cp_json(f"docker-archive:{written}:from/skopeo:1", f"{bundled.host}/imported/app:1")
    got = json.loads(manifest(bundled.url, "imported/app", "1").content)
    assert got["config"]["digest"] == image.config.digest
    assert [layer["digest"] for layer in got["layers"]] == _layers_of_config(image)
    assert back["blobs_copied"] == 3


def _add(tar: tarfile.TarFile, name: str, data: bytes | None = None, link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.mtime = 1_700_000_000
    if link:
        info.type, info.linkname = tarfile.SYMTYPE, link
        tar.addfile(info)
    elif data is None:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
    else:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def docker_save(path: Path, style: str, *, layers_override: list[str] | None = None) -> dict:
    """An archive as ``docker save`` writes one: ``legacy`` (Docker before 25: ``<id>/layer.tar``,
    ``<id>/json``, ``<id>/VERSION``, a symbolic link for a repeated layer) or ``oci`` (Docker 25:
    ``blobs/sha256/<hex>`` beside ``manifest.json``, ``index.json`` and ``oci-layout``)."""
    from tui.imagegen import canonical_json, tar_bytes

    first = tar_bytes({"bin/hello": b"#!/bin/sh\necho hi\n", "etc/os-release": b"ID=demo\n"})
    second = tar_bytes({"etc/motd": b"welcome\n"})
    layers = [first, second, first]  # a layer repeated, as a history can have it
    diff_ids = [sha256(layer) for layer in layers]
    config = canonical_json({
        "architecture": "amd64", "os": "linux", "created": "2024-01-15T10:00:00Z",
        "config": {"Cmd": ["/bin/hello"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": f"step {n}"} for n in range(3)],
    })  # fmt: skip
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        if style == "legacy":
            ids = [hashlib.sha256(f"v1-{n}".encode()).hexdigest() for n in range(3)]
            paths = []
            for n, (v1, layer) in enumerate(zip(ids, layers, strict=True)):
                _add(tar, f"{v1}/")
                _add(tar, f"{v1}/VERSION", b"1.0")
                _add(tar, f"{v1}/json", json.dumps({"id": v1}).encode())
                if n == 2:
                    _add(tar, f"{v1}/layer.tar", link=f"../{ids[0]}/layer.tar")
                else:
                    _add(tar, f"{v1}/layer.tar", layer)
                paths.append(f"{v1}/layer.tar")
            config_path = f"{sha256(config)[7:]}.json"
            _add(tar, config_path, config)
        else:
            _add(tar, "blobs/")
            _add(tar, "blobs/sha256/")
            for layer in layers[:2]:
                _add(tar, f"blobs/sha256/{sha256(layer)[7:]}", layer)
            paths = [f"blobs/sha256/{sha256(layer)[7:]}" for layer in layers]
            config_path = f"blobs/sha256/{sha256(config)[7:]}"
            _add(tar, config_path, config)
            _add(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        entry = {"Config": config_path, "RepoTags": ["demo/hello:latest"],
                 "Layers": layers_override or paths}  # fmt: skip
        _add(tar, "manifest.json", json.dumps([entry]).encode())
        _add(tar, "repositories", json.dumps({"demo/hello": {"latest": "x"}}).encode())
    return {"config": config, "diff_ids": diff_ids, "layers": layers}


@pytest.mark.parametrize("style", ["legacy", "oci"])
def test_an_archive_docker_wrote_is_imported(
    tmp_path: Path, bundled: RunningRegistry, style: str
) -> None:
    archive = tmp_path / "saved.tar"
    made = docker_save(archive, style)
    done = cp_json(f"docker-archive:{archive}:demo/hello:latest", f"{bundled.host}/demo/hello:1")
    got = json.loads(manifest(bundled.url, "demo/hello", "1").content)
    assert got["config"]["digest"] == sha256(made["config"])
    assert [layer["digest"] for layer in got["layers"]] == made["diff_ids"]
    assert done["blobs_copied"] == 3  # config and two distinct layers
    # and out again: the layer tars come back byte for byte
    again = tmp_path / "again.tar"
    cp_json(f"{bundled.host}/demo/hello:1", f"docker-archive:{again}")
    with tarfile.open(again) as tar:
        entry = json.load(tar.extractfile("manifest.json"))[0]  # type: ignore[arg-type]
        for name, layer in zip(entry["Layers"], made["layers"], strict=True):
            assert tar.extractfile(name).read() == layer  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("override", "said"),
    [
        (["../../../etc/passwd"], "outside the archive"),
        (["/etc/passwd"], "not a path inside the archive"),
        (["missing/layer.tar"], "has no 'missing/layer.tar'"),
        (["escape/layer.tar"], "outside the archive"),
    ],
)
def test_a_hostile_archive_is_refused_in_one_line(
    tmp_path: Path, bundled: RunningRegistry, override: list[str], said: str
) -> None:
    archive = tmp_path / "bad.tar"
    docker_save(archive, "legacy", layers_override=override * 3)
    if override == ["escape/layer.tar"]:
        with tarfile.open(archive, "a") as tar:
            _add(tar, "escape/layer.tar", link="../../../../etc/passwd")
    done = regtui("cp", f"docker-archive:{archive}", f"{bundled.host}/bad/app:1")
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1 and said in done.stderr, done.stderr
    assert "CopyError" not in done.stderr  # the sentence, not the exception's name
    assert tags_of(bundled.url, "bad/app") == []


def test_a_place_that_cannot_be_written_is_one_line(
    tmp_path: Path, bundled: RunningRegistry
) -> None:
    push_image(bundled.url, "src/app", "v1", make_image([{"a": b"x"}]))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    done = regtui("cp", f"{bundled.host}/src/app:v1", f"oci:{blocker}/layout:v1")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "Not a directory" in done.stderr, done.stderr
    assert "Error)" not in done.stderr


def test_a_failed_copy_leaves_no_archive_and_no_layout_entry(
    tmp_path: Path, bundled: RunningRegistry
) -> None:
    image = make_image([{"a": os.urandom(100_000)}])
    push_image(bundled.url, "src/app", "v1", image)
    bad = image.layers[0].digest

    def rewrite(method: str, path: str, body: bytes) -> bytes:
        return body[::-1] if method == "GET" and path.endswith(bad) else body

    out = tmp_path / "out"
    out.mkdir()
    with hook_proxy(bundled.url, lambda m, p: None, rewrite) as liar:
        archive = regtui("cp", f"{liar}/src/app:v1", f"docker-archive:{out}/app.tar")
        layout = regtui("cp", f"{liar}/src/app:v1", f"oci:{out}/layout:v1")
    assert archive.returncode == 1 and bad in archive.stderr
    assert layout.returncode == 1 and bad in layout.stderr
    assert sorted(p.name for p in out.iterdir()) == ["layout"]  # no archive, no temporary file
    assert not (out / "layout" / "index.json").exists()
    assert not (out / "layout" / "blobs" / "sha256" / bad[7:]).exists()


def test_a_layer_that_expands_a_thousandfold_is_written_in_bounded_memory(
    tmp_path: Path, bundled: RunningRegistry
) -> None:
    """A 256 MiB layer of zeros gzips to a quarter MiB: unpacked into the archive piece by
    piece, never whole (the copying process's own peak, VmHWM, stays far below 256 MiB)."""
    import gzip

    from tests.helpers.images import Blob

    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as writer:
        info = tarfile.TarInfo("zeros")
        info.size = 256 * 1024 * 1024
        writer.addfile(info, io.BytesIO(bytes(info.size)))
    layer = Blob(
        gzip.compress(tar.getvalue(), 1, mtime=0), "application/vnd.oci.image.layer.v1.tar+gzip"
    )
    del tar
    image = make_image([layer])
    push_image(bundled.url, "src/zeros", "v1", image)
    probe = (
        "import sys\n"
        "from tui.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "print(open('/proc/self/status').read().split('VmHWM:')[1].split()[0], file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    archive = tmp_path / "zeros.tar"
    done = subprocess.run(
        [sys.executable, "-c", probe, "cp", f"{bundled.host}/src/zeros:v1",
         f"docker-archive:{archive}"],
        capture_output=True, text=True, timeout=170, check=False,
        cwd=Path(__file__).resolve().parents[2],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert int(done.stderr.split()[-1]) / 1024 < 100
    inspected = json.loads(skopeo("inspect", f"docker-archive:{archive}"))
    assert inspected["Layers"] == _layers_of_config(image)
