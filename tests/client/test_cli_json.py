"""Every ``--json`` output holds the convention of docs/json.md: exact key sets, snake_case,
integer bytes, RFC 3339 UTC times, platforms as objects. Checked on the bundled registry and on
Debian's docker-registry, plain Python (no schema library)."""

from __future__ import annotations

import io
import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.client.test_client_registries import populate
from tests.helpers.images import make_artifact, make_image, push_image
from tests.helpers.servers import RunningRegistry, bundled_registry, distribution_registry
from tui.cli import main

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]

SNAKE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Nullable:
    schema: Any


@dataclass(frozen=True)
class ListOf:
    schema: Any


@dataclass(frozen=True)
class MapOf:
    """A map of the registry's or the user's names (labels, annotations): keys not checked."""

    schema: Any


class Time:
    """An RFC 3339 UTC time string."""


class Digest:
    """``sha256:`` and 64 hex digits."""


def check(value: Any, schema: Any, where: str = "$") -> None:
    """Assert that ``value`` has exactly the shape ``schema`` describes."""
    if isinstance(schema, Nullable):
        if value is not None:
            check(value, schema.schema, where)
    elif isinstance(schema, dict):
        assert isinstance(value, dict), f"{where}: {value!r} is not an object"
        assert set(value) == set(schema), f"{where}: keys {sorted(value)} != {sorted(schema)}"
        for key, sub in schema.items():
            assert SNAKE.match(key), f"{where}.{key} is not snake_case"
            check(value[key], sub, f"{where}.{key}")
    elif isinstance(schema, ListOf):
        assert isinstance(value, list), f"{where}: {value!r} is not a list"
        for n, item in enumerate(value):
            check(item, schema.schema, f"{where}[{n}]")
    elif isinstance(schema, MapOf):
        assert isinstance(value, dict), f"{where}: {value!r} is not an object"
        for key, item in value.items():
            check(item, schema.schema, f"{where}[{key!r}]")
    elif schema is Time:
        assert isinstance(value, str) and RFC3339_UTC.match(value), f"{where}: {value!r}"
    elif schema is Digest:
        assert isinstance(value, str) and DIGEST.match(value), f"{where}: {value!r}"
    elif schema is int:  # bytes and counts: integers, never floats nor booleans
        assert type(value) is int, f"{where}: {value!r} is not an integer"
    elif schema is float:  # durations in seconds
        assert type(value) in (int, float), f"{where}: {value!r} is not a number"
    else:
        assert type(value) is schema, f"{where}: {value!r} is not {schema.__name__}"


PLATFORM = {"os": str, "architecture": str, "variant": Nullable(str)}
DESCRIPTOR = {"digest": Digest, "media_type": str, "size": int}
LS = {"registry": str, "repositories": ListOf(str)}
TAGS = {"registry": str, "repository": str, "tags": ListOf(str), "immutable": ListOf(str)}
TAGS_LONG = {
    **TAGS,
    # pushed, pulled: the bundled registry's times, null where a registry does not say
    "manifests": ListOf(
        {
            "tag": str,
            **DESCRIPTOR,
            "pushed": Nullable(Time),
            "pulled": Nullable(Time),
            "immutable": bool,
        }
    ),
}
REFS = {
    "registry": str,
    "refs": ListOf({"repository": str, "tag": str, "ref": str}),
    "skipped": ListOf(str),
}
INSPECT_COMMON = {
    "registry": str,
    "repository": str,
    "reference": str,
    "digest": Digest,
    "media_type": str,
    "kind": str,
    "manifest_bytes": int,
    "from_index": Nullable({"digest": Digest, "media_type": str}),
    "annotations": MapOf(str),
    "referrers": ListOf({**DESCRIPTOR, "artifact_type": Nullable(str)}),
}
INSPECT_INDEX = {
    **INSPECT_COMMON,
    "platforms": ListOf(
        {"platform": Nullable(PLATFORM), **DESCRIPTOR, "artifact_type": Nullable(str)}
    ),
}
CONFIG = {
    "digest": Digest,
    "created": Nullable(Time),
    "platform": Nullable(PLATFORM),
    "entrypoint": Nullable(ListOf(str)),
    "cmd": Nullable(ListOf(str)),
    "env": ListOf(str),
    "labels": MapOf(str),
    "working_dir": Nullable(str),
    "user": Nullable(str),
    "exposed_ports": ListOf(str),
}
HISTORY = {
    "created": Nullable(Time),
    "created_by": Nullable(str),
    "comment": Nullable(str),
    "empty_layer": bool,
    "layer_digest": Nullable(Digest),
    "layer_bytes": Nullable(int),
}
INSPECT_IMAGE = {
    **INSPECT_COMMON,
    "artifact_type": Nullable(str),
    "subject": Nullable(Digest),
    "image_bytes": int,
    "layers": ListOf(DESCRIPTOR),
    "config": Nullable(CONFIG),
    "history": ListOf(HISTORY),
}
PLAN = {
    "dry_run": bool,
    "deleted": bool,
    "registry": str,
    "repository": str,
    **DESCRIPTOR,
    "tags": ListOf(str),
    "children": ListOf({"digest": Digest, "platform": Nullable(PLATFORM)}),
    "referrers": ListOf({"digest": Digest, "media_type": str, "artifact_type": Nullable(str)}),
    "indexes": ListOf({"digest": Digest, "tags": ListOf(str), "platform": Nullable(PLATFORM)}),
    "indexes_truncated": bool,
    "subject": Nullable({"digest": Digest, "media_type": str, "tags": ListOf(str)}),
    "artifact_type": Nullable(str),
}
UNTAG = {
    "dry_run": bool,
    "registry": str,
    "repository": str,
    "tag": str,
    "digest": Digest,
    "method": str,
    "sibling_tags": ListOf(str),
    "placeholder_digest": Nullable(Digest),
}
REPO_USAGE = {
    "name": str,
    "manifests": int,
    "tags": int,
    "blobs": int,
    "referenced_bytes": int,
    "exclusive_bytes": int,
    "unknown_sizes": int,
}
QUOTA = {"rule": str, "scope": str, "name": str, "limit_bytes": int, "used_bytes": int}
DU_COMMON = {
    "quotas": ListOf(QUOTA),
    "is_estimate": bool,
    "total_bytes": int,
    "blob_count": int,
    "sum_of_repositories_bytes": int,
    "unknown_sizes": int,
    "reclaimable_bytes": Nullable(int),
    "repositories": ListOf(REPO_USAGE),
}
DU_HOST = {**DU_COMMON, "referenced_bytes": int, "registry": str, "note": str}
PROBLEM = {"repository": str, "digest": Nullable(Digest), "message": str}
DU_ROOT = {
    **DU_COMMON,
    "root": str,
    "reclaimable_blobs": int,
    "reclaimable_bytes_untagged": int,
    "reclaimable_blobs_untagged": int,
    "protected_young_bytes": int,
    "protected_young_blobs": int,
    "grace_period_seconds": float,
    "bytes_by_kind": MapOf(int),
    "blobs_by_kind": MapOf(int),
    "upload_bytes": int,
    "stale_upload_bytes": int,
    "uploads": ListOf(
        {
            "repository": str,
            "upload_id": str,
            "bytes": int,
            "idle_seconds": float,
            "stale": bool,
        }
    ),
    "problems": ListOf(PROBLEM),
    "elapsed_seconds": float,
}
GC = {
    "root": str,
    "dry_run": bool,
    "delete_untagged": bool,
    "remove_empty_repos": bool,
    "grace_period_seconds": float,
    "marked_blobs": int,
    "blobs_total": int,
    "eligible_blobs": int,
    "kept_young_blobs": int,
    "refreshed_blobs": ListOf(Digest),
    "blob_bytes": int,
    "bytes_planned": int,
    "bytes_freed": int,
    "elapsed_seconds": float,
    "removals": ListOf(
        {
            "kind": str,
            "path": str,
            "size": int,
            "digest": Nullable(Digest),
            "repository": Nullable(str),
            "tag": Nullable(str),
            "removed": bool,
            "skipped": Nullable(str),
        }
    ),
    "problems": ListOf(PROBLEM),
}


def test_the_checker_can_fail() -> None:
    """The checker itself: each kind of deviation is caught."""
    for value, schema in [
        ({"a": 1, "b": 2}, {"a": int}),  # an extra key
        ({"a": 1}, {"a": int, "b": int}),  # a missing key
        ({"Size": 1}, {"Size": int}),  # not snake_case
        ({"size": 1.0}, {"size": int}),  # bytes as a float
        ({"size": True}, {"size": int}),  # bytes as a boolean
        ({"created": "2024-01-01T00:00:00+02:00"}, {"created": Time}),  # not UTC
        ({"platform": "linux/amd64"}, {"platform": PLATFORM}),  # a platform as a string
    ]:
        with pytest.raises(AssertionError):
            check(value, schema)


def cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *argv: str
) -> dict[str, Any]:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code = main([*argv, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    document = json.loads(out)
    assert isinstance(document, dict)
    return document


@pytest.fixture(params=["bundled", "distribution"])
def any_registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningRegistry]:
    start = bundled_registry if request.param == "bundled" else distribution_registry
    with start(tmp_path / request.param) as running:
        populate(running.url)
        yield running


def test_every_registry_command(
    any_registry: RunningRegistry,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = any_registry.host
    doc = cli(capsys, monkeypatch, "ls", host)
    check(doc, LS)
    assert doc["repositories"] == ["team/app", "tools"]
    check(cli(capsys, monkeypatch, "tags", f"{host}/team/app"), TAGS)
    check(cli(capsys, monkeypatch, "tags", "-l", f"{host}/team/app"), TAGS_LONG)
    doc = cli(capsys, monkeypatch, "refs", host)
    check(doc, REFS)
    assert len(doc["refs"]) == 10

    image = cli(capsys, monkeypatch, "inspect", f"{host}/team/app:v2")
    check(image, INSPECT_IMAGE)
    assert image["kind"] == "image" and image["config"] is not None
    assert image["config"]["platform"] == {"os": "linux", "architecture": "amd64", "variant": None}
    index = cli(capsys, monkeypatch, "inspect", f"{host}/team/app:multi")
    check(index, INSPECT_INDEX)
    assert index["kind"] == "index" and len(index["platforms"]) == 2
    child = cli(
        capsys, monkeypatch, "inspect", f"{host}/team/app:multi", "--platform", "linux/arm64"
    )
    check(child, INSPECT_IMAGE)
    assert child["from_index"]["digest"] == index["digest"]

    plan = cli(capsys, monkeypatch, "rm", f"{host}/team/app:multi", "--dry-run")
    check(plan, PLAN)
    assert plan["dry_run"] is True and plan["deleted"] is False and len(plan["children"]) == 2
    untag = cli(capsys, monkeypatch, "untag", f"{host}/team/app:v1", "--dry-run")
    check(untag, UNTAG)
    done = cli(capsys, monkeypatch, "rm", f"{host}/tools:t0", "--yes")
    check(done, PLAN)
    assert done["deleted"] is True and done["tags"] == ["t0"]

    du = cli(capsys, monkeypatch, "du", host)
    check(du, DU_HOST)
    estimate = cli(capsys, monkeypatch, "du", host, "--estimate")
    check(estimate, DU_HOST)
    assert estimate["is_estimate"] is True and estimate["reclaimable_bytes"] is None
    assert du["is_estimate"] is (any_registry.root.name == "distribution")


def test_inspect_of_an_artifact_and_its_subject(
    registry: RunningRegistry, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    image = make_image([{"f": b"x"}])
    push_image(registry.url, "app", "v1", image)
    signature = make_artifact(image)
    push_image(registry.url, "app", None, signature)
    doc = cli(capsys, monkeypatch, "inspect", f"{registry.host}/app:v1")
    check(doc, INSPECT_IMAGE)
    assert [r["digest"] for r in doc["referrers"]] == [signature.digest]
    assert doc["config"]["created"] is None or RFC3339_UTC.match(doc["config"]["created"])
    artifact = cli(capsys, monkeypatch, "inspect", f"{registry.host}/app@{signature.digest}")
    check(artifact, INSPECT_IMAGE)
    assert artifact["kind"] == "artifact" and artifact["subject"] == image.digest


def test_offline_commands(
    registry: RunningRegistry,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    populate(registry.url)
    root = tmp_path / "copy"
    shutil.copytree(registry.root, root)
    online = cli(capsys, monkeypatch, "du", registry.host)
    offline = cli(capsys, monkeypatch, "du", "--root", str(root))
    check(offline, DU_ROOT)
    # One shape for the repositories, online and offline, and the same numbers.
    assert offline["repositories"] == online["repositories"]
    assert {k: offline[k] for k in DU_COMMON} == {k: online[k] for k in DU_COMMON}
    gc = cli(capsys, monkeypatch, "gc", "--root", str(root), "--dry-run", "--grace-period", "0")
    check(gc, GC)
    assert gc["dry_run"] is True


def test_times_are_rfc3339_utc() -> None:
    from tui.commands._common import rfc3339

    assert rfc3339("2024-05-01T12:00:00.123456789+02:00") == "2024-05-01T10:00:00.123456Z"
    assert rfc3339("2024-05-01T12:00:00Z") == "2024-05-01T12:00:00Z"
    assert rfc3339("yesterday") is None and rfc3339(None) is None
