"""``regtui find`` on the bundled registry and Debian's docker-registry, hits checked exactly."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest

from tests.helpers.images import make_image, make_index, push_image
from tests.helpers.inside_images import log_after, v1, v2
from tests.helpers.servers import RunningRegistry
from tui.cli import main
from tui.client import RegistryClient
from tui.data.search import SearchProgress, search_registry
from tui.logic.find import TagPattern

HIT_KEYS = {"kind", "repository", "tag", "digest", "platform"}
AMD64 = {"os": "linux", "architecture": "amd64", "variant": None}
ARM64 = {"os": "linux", "architecture": "arm64", "variant": None}


def fill(running: RunningRegistry) -> RunningRegistry:
    push_image(running.url, "inside/app", "1", v1())
    push_image(running.url, "inside/app", "2", v2())
    push_image(running.url, "inside/app", "latest", v2())
    push_image(running.url, "other/app", "2.0", v2())
    push_image(running.url, "other/app", "2.1", v1())
    push_image(running.url, "inside/multi", "2", make_index([v2("amd64"), v2("arm64")]))
    push_image(running.url, "unrelated/x", "1.0", make_image([{"f": b"unrelated"}]))
    return running


@pytest.fixture(params=["registry", "distribution"])
def filled(request: pytest.FixtureRequest) -> Iterator[RunningRegistry]:
    yield fill(request.getfixturevalue(request.param))


def find(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *argv: str
) -> tuple[int, list[dict[str, object]], str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    monkeypatch.setenv("DOCKER_CONFIG", "/nonexistent-regtui-test")
    code = main(["find", *argv, "--insecure", "--json-lines"])
    out, err = capsys.readouterr()
    hits = [json.loads(line) for line in out.splitlines()]
    assert all(set(hit) == HIT_KEYS for hit in hits)
    return code, hits, err


def keyed(hits: list[dict[str, object]]) -> set[tuple[object, ...]]:
    return {
        (h["kind"], h["repository"], h["tag"], h["digest"], json.dumps(h["platform"])) for h in hits
    }


def test_tags_by_glob_and_regex(
    filled: RunningRegistry, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, hits, err = find(capsys, monkeypatch, filled.host, "--tag", "2*")
    assert code == 0, err
    assert {(h["repository"], h["tag"]) for h in hits} == {
        ("inside/app", "2"),
        ("other/app", "2.0"),
        ("other/app", "2.1"),
        ("inside/multi", "2"),
    }
    assert len(hits) == 4 and all(h["kind"] == "tag" and h["digest"] is None for h in hits)
    code, hits, err = find(capsys, monkeypatch, filled.host, "--tag", r"\d+", "--regex")
    assert code == 0, err
    assert {(h["repository"], h["tag"]) for h in hits} == {
        ("inside/app", "1"),
        ("inside/app", "2"),
        ("inside/multi", "2"),
    }


def test_which_tags_point_at_a_manifest(
    filled: RunningRegistry, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    image = v2()
    code, hits, err = find(capsys, monkeypatch, filled.host, "--digest", image.digest)
    assert code == 0, err
    assert keyed(hits) == {
        ("tag", "inside/app", "2", image.digest, "null"),
        ("tag", "inside/app", "latest", image.digest, "null"),
        ("tag", "other/app", "2.0", image.digest, "null"),
        ("index_child", "inside/multi", "2", image.digest, json.dumps(AMD64)),
    }
    assert len(hits) == 4


def test_which_images_use_a_layer_or_a_config(
    filled: RunningRegistry, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    base = v1().layers[0].digest
    one, two, arm = v1().digest, v2().digest, v2("arm64").digest
    code, hits, err = find(capsys, monkeypatch, filled.host, "--digest", base)
    assert code == 0, err
    assert keyed(hits) == {
        ("layer", "inside/app", "1", one, "null"),
        ("layer", "inside/app", "2", two, "null"),
        ("layer", "inside/app", "latest", two, "null"),
        ("layer", "other/app", "2.0", two, "null"),
        ("layer", "other/app", "2.1", one, "null"),
        ("layer", "inside/multi", "2", two, json.dumps(AMD64)),
        ("layer", "inside/multi", "2", arm, json.dumps(ARM64)),
    }
    config = v2("arm64").config.digest
    code, hits, err = find(capsys, monkeypatch, filled.host, "--digest", config)
    assert keyed(hits) == {("config", "inside/multi", "2", arm, json.dumps(ARM64))}
    # a pattern narrows a digest search to the tags it matches
    code, hits, err = find(capsys, monkeypatch, filled.host, "--digest", base, "--tag", "late*")
    assert keyed(hits) == {("layer", "inside/app", "latest", two, "null")}


def test_a_digest_search_reads_only_repositories_that_hold_it(
    registry: RunningRegistry, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    filled = fill(registry)  # the bundled registry logs every request
    pushed = "PUT /v2/unrelated/x/manifests/1.0"  # the last request of the fill
    before = len(log_after(filled, 0, pushed))
    code, hits, err = find(capsys, monkeypatch, filled.host, "--digest", v2().config.digest)
    assert code == 0 and len(hits) == 4, err
    # Access lines land just after their response: wait for the ones that must come, and a
    # moment for the one that must not.
    for line in ("HEAD /v2/unrelated/x/blobs/", "GET /v2/inside/multi/manifests/sha256:"):
        assert line in log_after(filled, before, line)
    log = log_after(filled, before, "GET /v2/unrelated/x/manifests/1.0", seconds=1.0)
    assert "GET /v2/inside/app/manifests/" in log
    assert "/v2/unrelated/x/manifests/1.0" not in log
    assert "/v2/unrelated/x/tags/list" not in log


def test_usage_errors_are_one_line(
    filled: RunningRegistry, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for argv, message in [
        ((), "say what to find"),
        (("--tag", "(", "--regex"), "regular expression '(' is refused"),
        (("--digest", "abc"), "not a digest"),
    ]:
        code, hits, err = find(capsys, monkeypatch, filled.host, *argv)
        assert (code, hits) == (2, []), err
        assert err.startswith("regtui: error: ") and message in err
        assert len(err.strip().splitlines()) == 1


async def test_hits_arrive_before_the_search_ends(filled: RunningRegistry) -> None:
    """Progressive: the first hit is handed over while repositories remain to be scanned."""
    seen: list[SearchProgress] = []
    async with RegistryClient(filled.host, insecure=True) as client:
        search = search_registry(
            client,
            pattern=TagPattern("*"),
            digest=v1().layers[0].digest,
            parallel_repos=1,
            on_progress=lambda p: seen.append(SearchProgress(**vars(p))),
        )
        first = await anext(search)
        assert first.kind == "layer"
        done_at_first = len([p for p in seen if p.repositories_done])
        rest = [hit async for hit in search]
    assert len(rest) == 6
    assert done_at_first < 4  # one worker, four repositories: not all scanned yet
    assert seen[-1].repositories_done == 4 and seen[-1].catalog_complete


def test_progress_line_on_a_terminal_only(registry: RunningRegistry) -> None:
    """stderr a terminal: a progress line and a count; stdout stays one hit per line."""
    import os
    import pty
    import subprocess
    import sys

    fill(registry)
    command = [sys.executable, "-m", "tui", "find", registry.host, "--insecure", "--tag", "2*"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REGTUI_", "REGISTRY_"))}
    main_fd, child_fd = pty.openpty()
    try:
        done = subprocess.run(
            command, stdout=subprocess.PIPE, stderr=child_fd, timeout=120, env=env, check=False
        )
        os.close(child_fd)
        chunks = []
        while True:
            try:
                data = os.read(main_fd, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(main_fd)
    err = b"".join(chunks).decode()
    assert done.returncode == 0, err
    assert sorted(done.stdout.decode().splitlines()) == [
        "inside/app:2",
        "inside/multi:2",
        "other/app:2.0",
        "other/app:2.1",
    ]
    assert "repositories " in err and "4 found." in err
    piped = subprocess.run(command, capture_output=True, timeout=120, env=env, check=False)
    assert piped.returncode == 0 and piped.stderr == b""


def test_json_is_one_document(
    filled: RunningRegistry, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", "/nonexistent-regtui-test")
    digest = v2("arm64").config.digest
    code = main(["find", filled.host, "--insecure", "--json", "--digest", digest])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out) == {
        "registry": filled.host,
        "query": {"tag": None, "regex": False, "digest": digest},
        "hits": [
            {
                "kind": "config",
                "repository": "inside/multi",
                "tag": "2",
                "digest": v2("arm64").digest,
                "platform": ARM64,
            }
        ],
    }
    code = main(["find", filled.host, "--json", "--json-lines", "--tag", "x"])
    out, err = capsys.readouterr()
    assert code == 2 and "not both" in err
