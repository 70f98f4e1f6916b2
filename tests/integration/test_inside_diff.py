"""``regtui diff`` and the merged filesystem on real images pushed to the bundled registry."""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.images import Blob, make_artifact, make_image, make_index, push_image
from tests.helpers.inside_images import (
    APP,
    BASE,
    EXPECTED_FILES,
    EXPECTED_V2_EFFICIENCY,
    EXPECTED_V2_TOP,
    EXPECTED_V2_WASTED,
    UPDATE,
    T,
    log_after,
    tar_of,
    v1,
    v2,
)
from tests.helpers.servers import RunningRegistry, bundled_registry
from tui.cli import main
from tui.client import RegistryClient
from tui.data.inside import ImageSource, LoadProgress, diff_images, read_layers, resolve_image
from tui.imagegen import OCI_LAYER_TAR
from tui.logic.fmt import human_size
from tui.logic.fsmerge import Change, merge_layers

REPO = "inside/app"
SIDE_KEYS = {
    "reference",
    "digest",
    "index_digest",
    "platform",
    "image_bytes",
    "uncompressed_bytes",
    "layer_count",
}
FILE_KEYS = {
    "path",
    "change",
    "type",
    "fields",
    "size_before_bytes",
    "size_after_bytes",
    "size_change_bytes",
    "mode_before",
    "mode_after",
    "owner_before",
    "owner_after",
    "link_before",
    "link_after",
}


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    root = tmp_path_factory.mktemp("inside") / "registry"
    with bundled_registry(root) as running:
        push_image(running.url, REPO, "1", v1())
        push_image(running.url, REPO, "2", v2())
        index = make_index([v2("amd64"), v2("arm64")])
        push_image(running.url, "inside/multi", "2", index)
        push_image(running.url, REPO, "sig", make_artifact(v1()))
        yield running


def run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *argv: str
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    monkeypatch.setenv("DOCKER_CONFIG", "/nonexistent-regtui-test")
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_diff_json_is_exact(
    pushed: RunningRegistry, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run(
        capsys, monkeypatch, "diff", f"{pushed.host}/{REPO}:1", ":2", "--insecure", "--json"
    )
    assert code == 0, err
    data = json.loads(out)
    assert set(data) == {
        "before",
        "after",
        "size_change_bytes",
        "config",
        "layers",
        "files",
        "files_summary",
    }
    one, two = v1(), v2()
    assert set(data["before"]) == SIDE_KEYS == set(data["after"])
    assert data["before"]["digest"] == one.digest and data["after"]["digest"] == two.digest
    assert data["before"]["platform"] == {"os": "linux", "architecture": "amd64", "variant": None}
    sizes = [img.config.size + sum(layer.size for layer in img.layers) for img in (one, two)]
    assert [data["before"]["image_bytes"], data["after"]["image_bytes"]] == sizes
    assert data["size_change_bytes"] == sizes[1] - sizes[0]
    assert data["before"]["uncompressed_bytes"] > sum(t.size for t in BASE + APP)
    assert data["config"] == [
        {"field": "cmd", "key": None, "before": '["/bin/sh"]', "after": '["/app/run"]'},
        {"field": "user", "key": None, "before": None, "after": "1000:1000"},
        {"field": "env", "key": "BAR", "before": None, "after": "x"},
        {"field": "env", "key": "FOO", "before": "1", "after": "2"},
        {"field": "labels", "key": "version", "before": "1", "after": "2"},
        {"field": "exposed_ports", "key": "8080/tcp", "before": None, "after": "exposed"},
    ]
    layers = data["layers"]
    assert set(layers) == {"shared", "only_before", "only_after", "shared_bytes"}
    assert [item["digest"] for item in layers["shared"]] == [one.layers[0].digest]
    assert [item["digest"] for item in layers["only_before"]] == [one.layers[1].digest]
    assert [item["digest"] for item in layers["only_after"]] == [two.layers[1].digest]
    assert layers["shared"][0] == {
        "digest": one.layers[0].digest,
        "media_type": one.layers[0].media_type,
        "size": one.layers[0].size,
    }
    assert all(set(item) == FILE_KEYS for item in data["files"])
    found = [(f["path"], f["change"], f["fields"], f["size_change_bytes"]) for f in data["files"]]
    assert found == EXPECTED_FILES
    by_path = {f["path"]: f for f in data["files"]}
    assert by_path["app/config.json"]["owner_before"] == "0:0"
    assert by_path["app/config.json"]["owner_after"] == "1000:1000"
    assert (by_path["usr/bin/tool"]["mode_before"], by_path["usr/bin/tool"]["mode_after"]) == (
        "0755",
        "0700",
    )
    assert by_path["usr/lib/libc.so.6"]["link_after"] == "libc-2.so"
    assert by_path["app/data.bin"]["size_after_bytes"] is None
    assert data["files_summary"] == {
        "added": 3,
        "removed": 4,
        "modified": 4,
        "size_change_bytes": sum(change for *_, change in EXPECTED_FILES),
    }


def test_diff_human_output(
    pushed: RunningRegistry, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run(capsys, monkeypatch, "diff", f"{pushed.host}/{REPO}:1", ":2", "--insecure")
    assert code == 0, err
    lines = out.splitlines()
    assert "  ~ env FOO: 1 -> 2" in lines
    assert "  + user: 1000:1000" in lines
    shared = human_size(v1().layers[0].size)
    assert f"Layers: 1 shared ({shared}), 1 only in REF1, 1 only in REF2" in lines
    assert f"  + {v2().layers[1].digest}  " in out
    assert "Files: 3 added, 4 removed, 4 modified (-6.8 KiB)" in lines
    assert "  D app/data.bin  -3.9 KiB" in lines
    assert "  M etc/passwd  +20 B  (size, content)" in lines
    assert "  A opt/  ±0 B" in lines


def test_diff_without_files_reads_no_layer(
    pushed: RunningRegistry, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = len(pushed.log())
    code, out, err = run(
        capsys,
        monkeypatch,
        "diff",
        f"{pushed.host}/{REPO}:1",
        f"{pushed.host}/{REPO}:2",
        "--insecure",
        "--json",
        "--no-files",
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["files"] is None and data["files_summary"] is None
    assert data["before"]["uncompressed_bytes"] is None
    layer_digests = {layer.digest for img in (v1(), v2()) for layer in img.layers}
    last_request = f"GET /v2/{REPO}/blobs/{v2().config.digest}"
    log = log_after(pushed, before, last_request)
    assert last_request in log  # the log does show blob reads
    assert not any(f"GET /v2/{REPO}/blobs/{digest}" in log for digest in layer_digests)


def test_diff_of_indexes_picks_a_platform(
    pushed: RunningRegistry, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = f"{pushed.host}/inside/multi:2"
    code, out, err = run(
        capsys, monkeypatch, "diff", ref, ref, "--insecure", "--json", "--platform", "linux/arm64"
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["after"]["platform"] == {"os": "linux", "architecture": "arm64", "variant": None}
    assert data["after"]["index_digest"] is not None
    assert data["files"] == [] and data["config"] == []
    # linux/amd64 is the default; a platform the index lacks is a usage error naming the choices
    code, out, err = run(capsys, monkeypatch, "diff", ref, f"{pushed.host}/{REPO}:2", "--insecure")
    assert code == 0, err
    assert "Config: identical" in out and "Files: 0 added, 0 removed, 0 modified" in out
    code, out, err = run(
        capsys, monkeypatch, "diff", ref, ref, "--insecure", "--platform", "windows/amd64"
    )
    assert code == 2 and out == ""
    assert err.strip() == (
        "regtui: error: no platform 'windows/amd64' in this index: pick one with --platform "
        "(linux/amd64, linux/arm64)"
    )


def test_diff_errors_are_one_line(
    pushed: RunningRegistry, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run(capsys, monkeypatch, "diff", f"{pushed.host}/{REPO}:1", ":nope")
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1
    assert "nope" in err and "Traceback" not in err
    code, out, err = run(capsys, monkeypatch, "diff", f"{pushed.host}/{REPO}:1", ":sig")
    assert code == 1 and "is an artifact" in err and len(err.strip().splitlines()) == 1
    code, out, err = run(capsys, monkeypatch, "diff", "not a ref", ":1")
    assert code == 2 and err.startswith("regtui: error: ")


async def test_merged_filesystem_of_the_top_layer(pushed: RunningRegistry) -> None:
    async with RegistryClient(pushed.host, insecure=True) as client:
        image = await resolve_image(ImageSource(client, REPO, "2", f"{REPO}:2"))
        layers = [changes for changes, _ in await read_layers(image)]
    view = merge_layers(layers)
    marks = {key.path: str(view.change_of(key)) for key in set(view.nodes) | set(view.removed)}
    changed = {path: mark for path, mark in marks.items() if mark != "unchanged"}
    assert changed == {p: m for p, m in EXPECTED_V2_TOP.items() if m != "unchanged"}
    assert marks["etc"] == "unchanged" and marks["var/cache"] == "unchanged"
    assert view.wasted_bytes == EXPECTED_V2_WASTED
    assert view.efficiency == pytest.approx(EXPECTED_V2_EFFICIENCY)
    nodes = {key.path: node for key, node in view.nodes.items()}
    config = nodes["app/config.json"].entry
    assert (config.uid, config.gid, config.mode, config.size) == (1000, 1000, 0o644, 40)
    hard = nodes["usr/lib/libc.hard"].entry
    assert (str(hard.type), hard.link_target) == ("hardlink", "usr/lib/libc.so")
    bottom = merge_layers(layers, upto=0)
    assert {str(bottom.change_of(p)) for p in bottom.nodes} == {str(Change.ADDED)}
    assert bottom.wasted_bytes == 0 and bottom.efficiency == 1.0


def test_diff_on_distribution(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.helpers.servers import distribution_registry

    with distribution_registry(tmp_path / "dist") as dist:
        push_image(dist.url, REPO, "1", v1())
        push_image(dist.url, REPO, "2", v2())
        code, out, err = run(
            capsys, monkeypatch, "diff", f"{dist.host}/{REPO}:1", ":2", "--insecure", "--json"
        )
    assert code == 0, err
    files = json.loads(out)["files"]
    assert [(f["path"], f["change"], f["fields"], f["size_change_bytes"]) for f in files] == (
        EXPECTED_FILES
    )


async def test_a_diff_stops_when_its_task_is_cancelled(pushed: RunningRegistry) -> None:
    """Cancelled after the first chunk of a 6 MiB layer: no more chunks are read."""
    big = make_image([Blob(tar_of([T("blob", size=0)]), OCI_LAYER_TAR), _noise_layer()])
    push_image(pushed.url, "inside/big", "1", big)
    seen: list[int] = []
    async with RegistryClient(pushed.host, insecure=True) as client:
        source = ImageSource(client, "inside/big", "1", "inside/big:1")
        task: asyncio.Task[object] | None = None

        def progress(p: LoadProgress) -> None:
            seen.append(p.bytes_read)
            if p.bytes_read and task is not None:
                task.cancel()

        task = asyncio.create_task(diff_images(source, source, on_progress=progress))
        with pytest.raises(asyncio.CancelledError):
            await task
    read = [n for n in seen if n]
    assert len(read) == 1 and read[0] < 6 * 1024 * 1024


def _noise_layer() -> Blob:
    """An incompressible 6 MiB file: many chunks on the wire."""
    import random

    noise = random.Random(14).randbytes(6 * 1024 * 1024)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("noise")
        info.size = len(noise)
        tar.addfile(info, io.BytesIO(noise))
    return Blob(buffer.getvalue(), OCI_LAYER_TAR)


def test_layers_per_platform_with_sizes_and_sharing(
    pushed: RunningRegistry, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    amd, arm = v1(), v2("arm64")
    push_image(pushed.url, "inside/mixed", "1", make_index([amd, arm]))
    ref = f"{pushed.host}/inside/mixed:1"
    code, out, err = run(
        capsys, monkeypatch, "layers", ref, "--insecure", "--json", "--uncompressed"
    )
    assert code == 0, err
    data = json.loads(out)
    assert set(data) == {
        "reference",
        "digest",
        "platforms",
        "layers",
        "compressed_bytes_total",
        "stored_bytes",
        "shared_bytes",
    }
    base, app, update = amd.layers[0], amd.layers[1], arm.layers[1]
    tars = {
        base.digest: len(tar_of(BASE)),
        app.digest: len(tar_of(APP)),
        update.digest: len(tar_of(UPDATE)),
    }
    assert data["platforms"] == [
        {
            "platform": {"os": "linux", "architecture": "amd64", "variant": None},
            "digest": amd.digest,
            "layer_count": 2,
            "compressed_bytes": amd.config.size + base.size + app.size,
            "uncompressed_bytes": tars[base.digest] + tars[app.digest],
            "shared_layer_bytes": base.size,
            "own_layer_bytes": app.size,
        },
        {
            "platform": {"os": "linux", "architecture": "arm64", "variant": None},
            "digest": arm.digest,
            "layer_count": 2,
            "compressed_bytes": arm.config.size + base.size + update.size,
            "uncompressed_bytes": tars[base.digest] + tars[update.digest],
            "shared_layer_bytes": base.size,
            "own_layer_bytes": update.size,
        },
    ]
    assert [(item["digest"], len(item["platforms"])) for item in data["layers"]] == [
        (base.digest, 2),
        (app.digest, 1),
        (update.digest, 1),
    ]
    assert all(item["uncompressed_bytes"] == tars[item["digest"]] for item in data["layers"])
    assert all(
        set(item) == {"digest", "media_type", "size", "uncompressed_bytes", "platforms"}
        for item in data["layers"]
    )
    assert data["shared_bytes"] == base.size
    assert data["stored_bytes"] == data["compressed_bytes_total"] - base.size
    # without --uncompressed no layer is read, and the human table says the same
    code, out, err = run(capsys, monkeypatch, "layers", ref, "--insecure")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[2].split() == [
        "PLATFORM",
        "DIGEST",
        "LAYERS",
        "COMPRESSED",
        "UNCOMPRESSED",
        "SHARED",
        "LAYERS",
    ]
    assert lines[3].split()[:3] == ["linux/amd64", amd.digest[7:19], "2"]
    assert lines[3].split()[-3:] == ["-", *human_size(base.size).split()]
