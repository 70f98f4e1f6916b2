"""Two bundled registries on one bucket: scheduled retention runs on one at a time (the
retention lease), both log to the storage, pull times merge across them."""

from __future__ import annotations

import itertools
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.s3 import SeaweedS3, bundled_on_s3, registry_config
from tests.helpers.servers import RunningRegistry
from tui.imagegen import make_image, push_image

pytestmark = pytest.mark.slow

RETENTION = "/v2/_regtui/ext/retention"
ACCEPT = {"Accept": "application/vnd.oci.image.manifest.v1+json"}


def _config(s3_engine: SeaweedS3, bucket: str, retention: dict[str, Any]) -> dict[str, Any]:
    config = registry_config(
        s3_engine.s3_config(bucket),
        redirect={"disable": True},
        maintenance={"gc": {"graceperiod": "1s"}, "uploadpurging": {"enabled": False}},
    )
    config["regtui"] = {"retention": retention}
    return config


def _runs(registry: RunningRegistry) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{registry.url}{RETENTION}?n=200", headers=registry.admin_headers(), timeout=30
    )
    assert response.status_code == 200, response.text
    return list(response.json()["runs"])


def _moment(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def test_two_replicas_run_retention_one_at_a_time(
    s3_engine: SeaweedS3, bucket: str, tmp_path: Path
) -> None:
    """Both replicas tick every 2 s; a run that deletes holds the retention lease through its
    GC (whose commit window alone is 10 s on shared storage): the other replica's ticks then
    log ``skipped``, and the runs that ran never overlap."""
    retention = {"rules": {"delete_older_than": "2s", "by": "pushed"}, "interval": "2s"}
    config = _config(s3_engine, bucket, retention)
    images = [make_image([{f"old/{i}": str(i).encode() * 2000}]) for i in range(3)]
    plain = {key: value for key, value in config.items() if key != "regtui"}
    with bundled_on_s3(tmp_path, plain, name="pusher") as pusher:
        for i, image in enumerate(images):
            push_image(pusher.url, "shared", f"v{i}", image)
    with (
        bundled_on_s3(tmp_path, config, name="one") as one,
        bundled_on_s3(tmp_path, config, name="two") as two,
    ):
        deadline = time.monotonic() + 90
        runs: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            runs = _runs(two)  # every replica's records, from the bucket
            went = [a for r in runs for a in r.get("applied", []) if a["action"] == "delete"]
            if len(went) >= len(images) and any("skipped" in r for r in runs):
                break
            time.sleep(1.0)
        assert _runs(one) == runs or len(_runs(one)) >= len(runs)  # one log for both
        replicas = {r["replica"] for r in runs}
        assert len(replicas) == 2, replicas  # both ticked
        ran = sorted((r for r in runs if "skipped" not in r), key=lambda r: r["lease_taken"])
        skipped = [r for r in runs if "skipped" in r]
        assert skipped and all("another replica" in r["skipped"] for r in skipped)
        assert not [r for r in ran if r.get("error")], ran
        for earlier, later in itertools.pairwise(ran):
            assert _moment(earlier["lease_released"]) <= _moment(later["lease_taken"])
        # Each skip happened while a run of the other replica held the lease.
        for skip in skipped:
            moment = _moment(skip["started"])
            assert any(
                _moment(r["lease_taken"]) - 1.0 <= moment <= _moment(r["lease_released"]) + 1.0
                and r["replica"] != skip["replica"]
                for r in ran
            ), skip
        deleted = [
            a
            for r in ran
            for a in r.get("applied", [])
            if a["action"] == "delete" and not a["error"]
        ]
        assert sorted(a["tags"][0] for a in deleted) == ["v0", "v1", "v2"]  # once each
        for i in range(3):
            gone = httpx.head(f"{one.url}/v2/shared/manifests/v{i}", headers=ACCEPT)
            assert gone.status_code == 404


def test_pull_times_of_two_replicas_merge_in_the_bucket(
    s3_engine: SeaweedS3, bucket: str, tmp_path: Path
) -> None:
    """Each replica flushes its own pulls; the document keeps the later time of each digest,
    whatever the order of the flushes, and both replicas read the same times."""
    config = registry_config(s3_engine.s3_config(bucket), redirect={"disable": True})
    a, b = make_image([{"a": b"a" * 100}]), make_image([{"b": b"b" * 100}])
    with (
        bundled_on_s3(tmp_path, config, name="one") as one,
        bundled_on_s3(tmp_path, config, name="two") as two,
    ):
        push_image(one.url, "shared", "a", a)
        push_image(one.url, "shared", "b", b)
        assert httpx.get(f"{one.url}/v2/shared/manifests/a", headers=ACCEPT).status_code == 200
        time.sleep(1.1)
        assert httpx.get(f"{two.url}/v2/shared/manifests/b", headers=ACCEPT).status_code == 200
        assert httpx.get(f"{two.url}/v2/shared/manifests/a", headers=ACCEPT).status_code == 200
        # Neither has written yet (the flush interval is 10 s): each knows its own pulls only.
        mine = {
            t["tag"]: t["pulled"]
            for t in httpx.get(f"{one.url}/v2/shared/_regtui/tags").json()["tags"]
        }
        assert mine["b"] is None and mine["a"] is not None
    # Both stopped (each flushed at shutdown, in turn): a new replica reads the merge.
    with bundled_on_s3(tmp_path, config, name="three") as three:
        merged = {
            t["tag"]: t["pulled"]
            for t in httpx.get(f"{three.url}/v2/shared/_regtui/tags").json()["tags"]
        }
    assert merged["b"] is not None
    assert merged["a"] is not None and _moment(merged["a"]) > _moment(mine["a"])  # two's, later
