"""The quick check of ``regtui sync`` (:mod:`tui.data.sync_check`) between real registries:
Debian's docker-registry (Distribution 2.8) as the source, the bundled registry or another
Distribution as the target. Every request it makes is recorded (the real requests, on real
sockets, through :class:`tui.client.pipeline.Pipelines`), so the tests see which it asked: one
``_regtui/tags`` report per many-tag repository on the bundled registry, ``HEAD`` requests on
Distribution, and a tag moved upstream seen all the same.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

import tui.data.sync_check as sync_check
from tests.helpers.images import Image, make_image, push_image
from tests.helpers.servers import RunningRegistry, bundled_registry, distribution_registry
from tui.client.pipeline import Answer, Origin, Pipelines, Request
from tui.data.sync_jobs import ImageJob
from tui.logic.sync_spec import parse_spec

pytestmark = [pytest.mark.interop, pytest.mark.timeout(240)]

WORKTREE = Path(__file__).resolve().parents[2]
MANY = [f"v{n}" for n in range(sync_check.EXT_TAGS_FROM + 1)]
"""Enough tags in one repository for the target's report to be asked."""


def regtui(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui", *args],
        cwd=WORKTREE,
        capture_output=True,
        text=True,
        timeout=200,
        check=False,
    )


@pytest.fixture
def source(tmp_path: Path) -> Iterator[RunningRegistry]:
    with distribution_registry(tmp_path / "source") as running:
        yield running


@pytest.fixture
def bundled(tmp_path: Path) -> Iterator[RunningRegistry]:
    with bundled_registry(tmp_path / "target") as running:
        yield running


@pytest.fixture
def distribution_target(tmp_path: Path) -> Iterator[RunningRegistry]:
    with distribution_registry(tmp_path / "target") as running:
        yield running


class Recorder:
    """The real :class:`Pipelines`, each request and its answer's status kept, by host."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.seen: list[tuple[str, str, str, int]] = []
        seen = self.seen

        class Recording(Pipelines):
            def ask_all(
                self,
                origin: Origin,
                requests: Sequence[Request],
                on_answers: Sequence[Callable[[Answer], None]],
                *,
                spread: bool = False,
            ) -> None:
                def recording(request: Request, on_answer: Callable[[Answer], None]) -> Any:
                    def record(answer: Answer) -> None:
                        seen.append((origin[1], request[0], request[1], answer.status))
                        on_answer(answer)

                    return record

                wrapped = [recording(r, o) for r, o in zip(requests, on_answers, strict=True)]
                super().ask_all(origin, requests, wrapped, spread=spread)

        monkeypatch.setattr(sync_check, "Pipelines", Recording)

    def on(self, registry: RunningRegistry) -> list[tuple[str, str, int]]:
        return [(m, t, s) for host, m, t, s in self.seen if host == registry.host]


def push_tags(registry: RunningRegistry, repo: str, image: Image, tags: list[str]) -> None:
    push_image(registry.url, repo, tags[0], image)
    for tag in tags[1:]:  # the other tags on the same manifest, without pushing again
        done = httpx.put(
            f"{registry.url}/v2/{repo}/manifests/{tag}",
            content=image.manifest.data,
            headers={"Content-Type": image.manifest.media_type},
        )
        assert done.status_code == 201, done.text


def spec_of(source: RunningRegistry, target: RunningRegistry, path: Path) -> Path:
    document = {
        "sync": [
            {"source": source.host, "target": f"{target.host}/mirror", "repositories": ["team/*"]}
        ]
    }
    path.write_text(yaml.safe_dump(document))
    return path


def check(path: Path) -> list[ImageJob]:
    jobs = sync_check.quick_plan(parse_spec(yaml.safe_load(path.read_text())), timeout=30)
    assert jobs is not None, "the plain case was not checked quickly"
    return jobs


def test_a_bundled_target_answers_a_repositorys_tags_in_one_report(
    source: RunningRegistry,
    bundled: RunningRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old, new = make_image([{"a": os.urandom(3000)}]), make_image([{"b": os.urandom(3000)}])
    push_tags(source, "team/many", old, MANY)
    push_image(source.url, "team/few", "1.0", old)
    spec = spec_of(source, bundled, tmp_path / "sync.yml")
    assert regtui("sync", str(spec)).returncode == 0  # the first run copies

    recorder = Recorder(monkeypatch)
    jobs = check(spec)
    assert len(jobs) == len(MANY) + 1 and all(job.unchanged for job in jobs)
    asked = recorder.on(bundled)
    assert ("GET", "/v2/mirror/team/many/_regtui/tags", 200) in asked
    assert [a for a in asked if "team/many" in a[1] and a[0] == "HEAD"] == []  # none per tag
    assert ("HEAD", "/v2/mirror/team/few/manifests/1.0", 200) in asked  # one tag: a HEAD

    # Upstream a tag moves and a repository of many tags appears: both are seen.
    push_image(source.url, "team/many", MANY[3], new)
    push_tags(source, "team/more", old, MANY)
    recorder.seen.clear()
    jobs = check(spec)
    changed = [job for job in jobs if not job.unchanged]
    moved = [job for job in changed if job.source_repository == "team/many"]
    assert [(j.reference, j.target_digest, j.source_digest) for j in moved] == [
        (MANY[3], old.digest, new.digest)
    ]
    absent = [job for job in changed if job.source_repository == "team/more"]
    assert len(absent) == len(MANY) and all(j.target_digest is None for j in absent)
    asked = recorder.on(bundled)
    # NAME_UNKNOWN from a registry that served another report: absent, no HEAD asked.
    assert ("GET", "/v2/mirror/team/more/_regtui/tags", 404) in asked
    assert [a for a in asked if a[0] == "HEAD" and "team/more" in a[1]] == []

    checked = regtui("sync", str(spec), "--check")
    assert (
        checked.returncode == 3
        and f"would copy {source.host}/team/many:{MANY[3]}" in checked.stdout
    )
    assert regtui("sync", str(spec)).returncode == 0  # the engine copies what changed
    assert all(job.unchanged for job in check(spec))


def test_a_target_without_the_report_is_asked_tag_by_tag(
    source: RunningRegistry,
    distribution_target: RunningRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    image = make_image([{"a": os.urandom(3000)}])
    push_tags(source, "team/many", image, MANY)
    spec = spec_of(source, distribution_target, tmp_path / "sync.yml")
    first = regtui("sync", str(spec))
    assert first.returncode == 0, first.stderr

    push_tags(source, "team/more", image, MANY)  # not on the target yet
    recorder = Recorder(monkeypatch)
    jobs = check(spec)
    by_repo = {
        repo: [j for j in jobs if j.source_repository == repo]
        for repo in ("team/many", "team/more")
    }
    assert len(by_repo["team/many"]) == len(MANY) and all(j.unchanged for j in by_repo["team/many"])
    assert all(j.target_digest is None and not j.unchanged for j in by_repo["team/more"])
    asked = recorder.on(distribution_target)
    reports = [a for a in asked if a[1].endswith("/_regtui/tags")]
    assert len(reports) == 2 and all(status == 404 for _, _, status in reports)
    heads = [a for a in asked if a[0] == "HEAD"]
    assert sorted(heads) == sorted(
        [("HEAD", f"/v2/mirror/team/many/manifests/{tag}", 200) for tag in MANY]
        + [("HEAD", f"/v2/mirror/team/more/manifests/{tag}", 404) for tag in MANY]
    )


def test_a_repository_unknown_to_a_registry_that_served_no_report_is_asked_by_head(
    source: RunningRegistry,
    bundled: RunningRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A NAME_UNKNOWN alone does not prove the registry serves the report: HEADs decide."""
    push_tags(source, "team/many", make_image([{"a": os.urandom(3000)}]), MANY)
    spec = spec_of(source, bundled, tmp_path / "sync.yml")
    recorder = Recorder(monkeypatch)
    jobs = check(spec)
    assert len(jobs) == len(MANY) and all(j.target_digest is None for j in jobs)
    heads = [a for a in recorder.on(bundled) if a[0] == "HEAD"]
    assert len(heads) == len(MANY) and all(status == 404 for _, _, status in heads)


def test_a_tag_whose_manifest_the_bundled_target_lost_is_not_unchanged(
    source: RunningRegistry,
    bundled: RunningRegistry,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The report still names the tag but leaves out the manifest it cannot read, whose HEAD
    answers 404: the check reads it as a HEAD would (absent: to copy again)."""
    image = make_image([{"lost": os.urandom(3000)}])
    push_tags(source, "team/many", image, MANY)
    spec = spec_of(source, bundled, tmp_path / "sync.yml")
    assert regtui("sync", str(spec)).returncode == 0
    assert all(job.unchanged for job in check(spec))
    hexdigest = image.digest.removeprefix("sha256:")
    data = bundled.root / "docker/registry/v2/blobs/sha256" / hexdigest[:2] / hexdigest / "data"
    data.unlink()
    head = httpx.head(
        f"{bundled.url}/v2/mirror/team/many/manifests/{MANY[0]}",
        headers={"Accept": image.manifest.media_type},
    )
    assert head.status_code == 404
    recorder = Recorder(monkeypatch)
    jobs = check(spec)
    assert ("GET", "/v2/mirror/team/many/_regtui/tags", 200) in recorder.on(bundled)
    assert len(jobs) == len(MANY)
    assert all(not job.unchanged and job.target_digest is None for job in jobs)
