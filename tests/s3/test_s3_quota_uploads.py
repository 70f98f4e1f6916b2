"""Quotas against blob uploads racing through two replicas on one SeaweedFS bucket: each upload
reserves its bytes in the bucket (a conditional write to the quota's record) before they are
stored, so the uploads of both replicas together never store more than the limit; skopeo pushes
racing through both are counted by ``regtui du --config`` exactly as accepted."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.images import skopeo_copy_at_once
from tests.helpers.s3 import SeaweedS3, bundled_on_s3, registry_config
from tests.helpers.servers import require_tool, server_env
from tests.integration.test_quota_uploads import digest_of, monolithic, race, streamed
from tests.s3.test_s3_registry import pending_multipart_uploads
from tui.imagegen import Image, make_image, make_layer, write_oci_layout

pytestmark = pytest.mark.slow


def bucket_blobs(engine: SeaweedS3, bucket: str) -> tuple[dict[str, int], list[str]]:
    """``{digest: size}`` of the blobs stored in the bucket, and the keys under ``_uploads``."""
    from aiobotocore.session import get_session

    async def listing() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        async with get_session().create_client("s3", **engine.boto_kwargs()) as client:
            paginator = client.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=bucket):
                found += page.get("Contents", [])
        return found

    objects = asyncio.run(listing())
    blobs = {
        "sha256:" + item["Key"].split("/")[-2]: int(item["Size"])
        for item in objects
        if "/blobs/sha256/" in item["Key"] and item["Key"].endswith("/data")
    }
    uploads = [item["Key"] for item in objects if "/_uploads/" in item["Key"]]
    return blobs, uploads


def test_uploads_racing_through_two_replicas_store_exactly_what_fits(
    s3_engine: SeaweedS3, bucket: str, tmp_path: Path
) -> None:
    size = 40_000
    limit = 3 * size + size // 2
    config = registry_config(s3_engine.s3_config(bucket), redirect={"disable": True})
    config["regtui"] = {
        "quota": [
            {"repository": "q/race", "limit": limit},
            {"repository": "q/stream", "limit": limit},
        ]
    }
    with (
        bundled_on_s3(tmp_path, config, name="one") as one,
        bundled_on_s3(tmp_path, config, name="two") as two,
    ):
        replicas = [one.url, two.url]
        declared = [os.urandom(size) for _ in range(10)]
        statuses = race(replicas, "q/race", declared, monolithic)
        accepted = {digest_of(b) for b, s in zip(declared, statuses, strict=True) if s == 201}
        assert len(accepted) == 3, statuses
        stored, uploads = bucket_blobs(s3_engine, bucket)
        assert stored == dict.fromkeys(accepted, size)
        assert uploads == []
        assert not [k for k in pending_multipart_uploads(s3_engine, bucket) if "q/race" in k]

        streams = [os.urandom(size) for _ in range(8)]
        statuses = race(replicas, "q/stream", streams, streamed, "regtui.quota[1]")
        assert 403 in statuses, statuses
        accepted_streams = {
            digest_of(b) for b, s in zip(streams, statuses, strict=True) if s == 201
        }
        stored, uploads = bucket_blobs(s3_engine, bucket)
        streamed_stored = {d: n for d, n in stored.items() if d not in accepted}
        assert streamed_stored == dict.fromkeys(accepted_streams, size)
        assert sum(streamed_stored.values()) <= limit
        assert uploads == []


def _image(size: int) -> Image:
    return make_image([make_layer({"data": os.urandom(size)})])


def _image_bytes(image: Image) -> int:
    return len(image.manifest.data) + sum(b.size for b in image.blobs())


def test_skopeo_pushes_racing_through_two_replicas_exact_against_du(
    s3_engine: SeaweedS3, bucket: str, tmp_path: Path
) -> None:
    skopeo = require_tool("skopeo")
    images = [_image(30_000) for _ in range(6)]
    sizes = [_image_bytes(i) for i in images]
    limit = 2 * max(sizes) + max(sizes) // 2
    assert 3 * min(sizes) > limit
    config = registry_config(s3_engine.s3_config(bucket), redirect={"disable": True})
    config["regtui"] = {"quota": [{"repository": "q/app", "limit": limit}]}
    layouts = [
        write_oci_layout(tmp_path / f"layout{i}", im, tag="t") for i, im in enumerate(images)
    ]
    with (
        bundled_on_s3(tmp_path, config, name="one") as one,
        bundled_on_s3(tmp_path, config, name="two") as two,
    ):
        copies = [
            (f"oci:{layout}:t", f"docker://{(one, two)[i % 2].host}/q/app:t{i}")
            for i, layout in enumerate(layouts)
        ]
        results = skopeo_copy_at_once(skopeo, copies, timeout=300)
        accepted = [i for i, (code, _) in enumerate(results) if code == 0]
        refused = [err for code, err in results if code != 0]
        assert len(accepted) == 2, results
        assert all("quota exceeded" in e and "regtui.quota[0]" in e for e in refused), refused
        stored, uploads = bucket_blobs(s3_engine, bucket)
        assert sum(stored.values()) <= limit, (stored, limit)
        assert uploads == []
    du = subprocess.run(
        [sys.executable, "-m", "tui", "du", "--config", str(tmp_path / "one-config.yml"), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=server_env(),
        check=False,
    )
    assert du.returncode == 0, du.stderr
    usage = {r["name"]: r["referenced_bytes"] for r in json.loads(du.stdout)["repositories"]}
    assert usage["q/app"] == sum(sizes[i] for i in accepted) <= limit
