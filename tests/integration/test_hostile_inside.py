"""Hostile images in ``regtui diff`` and the merged filesystem (issue 19, item 6).

Real tar layers pushed to the bundled registry: a path of 50,000 ``d/`` components (the merge
must stay linear in the entries: it once kept every ancestor as a full path, 4.8 GB), a manifest
listing one layer 10,000 times (each distinct layer must be fetched once: it was fetched 10,000
times), and names with ``..``, absolute names and repeated slashes (shown where a container
runtime puts them).
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.helpers.inside_images import APP, BASE, RUNTIME_V1, T, image_of, layer_and_tar, log_after
from tests.helpers.servers import RunningRegistry, bundled_registry
from tui.cli import main
from tui.client import RegistryClient
from tui.data.inside import ImageSource, read_layers, resolve_image
from tui.imagegen import Image, push_image

REPO = "hostile/app"
DEPTH = 50_000
REPEATS = 10_000
PEAK_BOUND_MIB = 1024
"""Peak memory of the child that reads, stacks and diffs the deep image (its own, VmHWM:
``tests/helpers/memory.py``). Before: 4.8 GB (the quadratic merge; it meets the child's 2 GiB
cap). Linear: 71 MB; the bound tells linear from quadratic with room to spare."""
ROOT = Path(__file__).resolve().parents[2]

EVIL = [
    T("usr/bin/../../etc/cron.d/evil", size=5),
    T("../../../outside", size=3),
    T("/abs//file/", size=2),
    T("./etc/./hosts", size=4),
    T("usr/lib/hard", "hardlink", link="/usr/bin/../../etc/cron.d/evil"),
]


def _base() -> Image:
    return image_of([layer_and_tar(BASE)], RUNTIME_V1)


def _repeated() -> Image:
    """BASE once, then APP 10,000 times (one blob, 10,000 descriptors)."""
    app = layer_and_tar(APP)
    return image_of([layer_and_tar(BASE)] + [app] * REPEATS, RUNTIME_V1)


def _push(registry: RunningRegistry, tag: str, image: Image) -> None:
    distinct = tuple({blob.digest: blob for blob in image.layers}.values())
    push_image(registry.url, REPO, tag, replace(image, layers=distinct))  # each blob once


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    root = tmp_path_factory.mktemp("hostile") / "registry"
    with bundled_registry(root) as running:
        _push(running, "base", _base())
        _push(
            running,
            "deep",
            image_of([layer_and_tar(BASE), layer_and_tar([T("d/" * DEPTH + "f", size=1)])], {}),
        )
        _push(running, "repeated", _repeated())
        _push(running, "evil", image_of([layer_and_tar(BASE), layer_and_tar(EVIL)], RUNTIME_V1))
        yield running


def run_cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *argv: str
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    monkeypatch.setenv("DOCKER_CONFIG", "/nonexistent-regtui-test")
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _layer_gets(log: str, digests: set[str]) -> Counter[str]:
    found = re.findall(rf"GET /v2/{REPO}/blobs/(sha256:[0-9a-f]{{64}})", log)
    return Counter(digest for digest in found if digest in digests)


def test_a_path_of_50000_components_is_stacked_in_bounded_memory(pushed: RunningRegistry) -> None:
    # In a child process: its peak memory is its own. The address space is capped at 2 GiB so
    # that the quadratic merge (4.8 GB for this image) fails fast instead of taking the machine.
    result = subprocess.run(
        [sys.executable, "-m", "tests.helpers.merge_probe", pushed.host, REPO, "base", "deep", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    # The deep image: BASE's 14 paths plus d, d/d, ... (50,000 directories) and the file.
    assert report["nodes"] == len(BASE) + DEPTH + 1 == report["rows"]
    assert report["filtered"] == 1  # "D/F" (any case) is only in the file's path
    assert report["files"] == DEPTH + 1  # the diff from BASE: every new directory, the file
    assert report["last_path_length"] == 2 * DEPTH + 1  # the file, last in tree order
    assert report["peak_mib"] < PEAK_BOUND_MIB, report


def test_a_layer_listed_10000_times_is_fetched_once_by_diff(
    pushed: RunningRegistry, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repeated = _repeated()
    distinct = {blob.digest for blob in repeated.layers}
    assert len(repeated.layers) == REPEATS + 1 and len(distinct) == 2
    start = len(pushed.log())
    code, out, err = run_cli(
        capsys,
        monkeypatch,
        "diff",
        f"{pushed.host}/{REPO}:base",
        ":repeated",
        "--insecure",
        "--json",
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["after"]["layer_count"] == REPEATS + 1
    # APP stacked 10,000 times is APP once: its three paths are what the diff adds.
    assert [(f["path"], f["change"]) for f in data["files"]] == [
        ("app", "added"),
        ("app/config.json", "added"),
        ("app/data.bin", "added"),
    ]
    last = f"GET /v2/{REPO}/blobs/{repeated.layers[-1].digest}"
    log = log_after(pushed, start, last)
    assert _layer_gets(log, distinct) == {digest: 1 for digest in distinct}


async def test_a_layer_listed_10000_times_is_fetched_once_by_the_merged_view(
    pushed: RunningRegistry,
) -> None:
    repeated = _repeated()
    distinct = {blob.digest for blob in repeated.layers}
    start = len(pushed.log())
    async with RegistryClient(pushed.host, insecure=True) as client:
        image = await resolve_image(ImageSource(client, REPO, "repeated", "repeated"))
        read = await read_layers(image)
    assert len(read) == REPEATS + 1
    assert len({id(changes) for changes, _ in read}) == 2  # one object per distinct layer
    log = log_after(pushed, start, f"GET /v2/{REPO}/blobs/{repeated.layers[-1].digest}")
    assert _layer_gets(log, distinct) == {digest: 1 for digest in distinct}


def test_diff_shows_dotdot_names_where_a_runtime_puts_them(
    pushed: RunningRegistry, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run_cli(
        capsys, monkeypatch, "diff", f"{pushed.host}/{REPO}:base", ":evil", "--insecure", "--json"
    )
    assert code == 0, err
    files = {f["path"]: f for f in json.loads(out)["files"]}
    assert set(files) == {
        "abs",
        "abs/file",
        "etc/cron.d",
        "etc/cron.d/evil",
        "etc/hosts",
        "outside",
        "usr/lib/hard",
    }
    assert files["usr/lib/hard"]["link_after"] == "etc/cron.d/evil"
    assert not any(".." in path.split("/") for path in files)
