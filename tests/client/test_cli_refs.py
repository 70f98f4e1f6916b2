"""``regtui refs HOST``: every HOST/REPO:TAG of a registry, one line each, over more pages of
catalog and tags than one, against the bundled registry and Debian's docker-registry."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import httpx
import pytest

from tests.helpers.images import make_image, push_image
from tests.helpers.servers import RunningRegistry, bundled_registry, distribution_registry
from tui.cli import main
from tui.imagegen import push_manifest

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]
PAGE = 2
TAG_COUNTS = {"alpha": 5, "beta/one": 1, "beta/two": 3, "gamma": 0, "delta": 2, "team/x": 4}
"""Six repositories (three pages of two) with up to five tags (three pages); ``gamma`` has a
manifest but no tag left."""


def pushed(url: str) -> set[str]:
    """Push the repositories of ``TAG_COUNTS``; return every ``REPO:TAG`` that exists."""
    refs = set()
    image = make_image([{"f": b"refs"}])
    with httpx.Client(base_url=url, timeout=60.0) as client:
        for repo, count in TAG_COUNTS.items():
            push_image(client, repo, None, image)
            for n in range(count):
                push_manifest(client, repo, f"v{n}", image.manifest)
                refs.add(f"{repo}:v{n}")
    return refs


@pytest.fixture(params=["bundled", "distribution"], scope="module")
def populated(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningRegistry, set[str]]]:
    start = bundled_registry if request.param == "bundled" else distribution_registry
    with start(tmp_path_factory.mktemp("refs") / request.param) as running:
        yield running, pushed(running.url)


def refs(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *argv: str) -> str:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code = main(["refs", *argv])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    return out


def test_the_registry_paginates_at_this_page_size(
    populated: tuple[RunningRegistry, set[str]],
) -> None:
    """Without this, the test below would not prove that refs follows pages."""
    registry, _ = populated
    catalog = httpx.get(f"{registry.url}/v2/_catalog?n={PAGE}")
    assert len(catalog.json()["repositories"]) == PAGE and "next" in catalog.headers["Link"]
    tags = httpx.get(f"{registry.url}/v2/alpha/tags/list?n={PAGE}")
    if registry.root.name == "distribution":  # 2.8 ignores n for tags (3.0 pages them)
        assert len(tags.json()["tags"]) == TAG_COUNTS["alpha"]
    else:
        assert len(tags.json()["tags"]) == PAGE and "next" in tags.headers["Link"]


@pytest.mark.parametrize("concurrency", ["1", "3"])
def test_every_ref_once_in_catalog_order(
    populated: tuple[RunningRegistry, set[str]],
    concurrency: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry, expected = populated
    args = ("--page-size", str(PAGE), "--concurrency", concurrency)
    lines = refs(capsys, monkeypatch, registry.host, *args).splitlines()
    assert len(lines) == len(set(lines)) == len(expected) == 15
    assert set(lines) == {f"{registry.host}/{ref}" for ref in expected}
    repos = [line.removeprefix(f"{registry.host}/").split(":")[0] for line in lines]
    assert repos == sorted(repos)  # the catalog's (lexical) order, each repository together


def test_filter_and_json(
    populated: tuple[RunningRegistry, set[str]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry, expected = populated
    args = ("--page-size", str(PAGE), "--repo-filter", "beta/*", "--repo-filter", "alpha")
    out = refs(capsys, monkeypatch, registry.host, *args, "--json")
    doc = json.loads(out)
    assert doc["registry"] == registry.host
    got = {(r["repository"], r["tag"]) for r in doc["refs"]}
    wanted = {tuple(ref.split(":")) for ref in expected if ref.startswith(("beta/", "alpha:"))}
    assert got == wanted and len(doc["refs"]) == 9
    assert all(r["ref"] == f"{registry.host}/{r['repository']}:{r['tag']}" for r in doc["refs"])


def test_unreachable_registry_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["refs", "127.0.0.1:9", "--timeout", "2"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("regtui: error: ") and err.count("\n") == 1
    with pytest.raises(SystemExit) as exited:
        main(["refs", "127.0.0.1:9", "--concurrency", "0"])
    assert exited.value.code == 2 and "not a positive whole number" in capsys.readouterr().err
