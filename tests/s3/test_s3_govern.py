"""Quotas and immutable tags on S3 (SeaweedFS) with two replicas on one bucket: pushes racing
the last bytes of a quota through both replicas never go over it (the usage is read from the
bucket and the reservations are conditional writes, not one process's counter), and the usage
is what ``regtui du --config`` counts."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from tests.helpers.s3 import SeaweedS3, bundled_on_s3, registry_config
from tests.helpers.servers import server_env
from tests.helpers.spec import assert_oci_error, start_upload, with_query
from tests.s3.test_s3_registry import bucket_keys, pending_multipart_uploads
from tui.imagegen import Image, PushError, make_image, push_image

pytestmark = pytest.mark.slow


def _bytes(image: Image) -> int:
    return len(image.manifest.data) + sum(b.size for b in image.blobs())


def test_two_replicas_racing_a_quota_never_overshoot(
    s3_engine: SeaweedS3, bucket: str, tmp_path: Path
) -> None:
    images = [make_image([{"d": os.urandom(20_000)}]) for _ in range(10)]
    sizes = [_bytes(i) for i in images]
    limit = 3 * max(sizes) + max(sizes) // 2  # room for any three, never four
    assert 4 * min(sizes) > limit
    config = registry_config(s3_engine.s3_config(bucket), redirect={"disable": True})
    config["regtui"] = {
        "quota": [{"repository": "race/app", "limit": limit}],
        "immutable": [{"repository": "race/*", "tags": ["v*"]}],
    }
    accepted: list[int] = []
    refused: list[str] = []
    with (
        bundled_on_s3(tmp_path, config, name="one") as one,
        bundled_on_s3(tmp_path, config, name="two") as two,
    ):
        start = threading.Barrier(len(images))

        def push(index: int) -> None:
            replica = (one, two)[index % 2]
            start.wait()
            try:
                push_image(replica.url, "race/app", f"t{index}", images[index])
            except PushError as exc:
                refused.append(str(exc))
            else:
                accepted.append(index)

        threads = [threading.Thread(target=push, args=(i,)) for i in range(len(images))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(accepted) == 3, (accepted, refused)
        assert all("DENIED" in r and "regtui.quota[0]" in r for r in refused), refused

        # An immutable tag set through one replica cannot be moved through the other (a tag
        # outside the rule's repositories moves freely).
        push_image(one.url, "free/app", "v1", images[accepted[0]])
        push_image(two.url, "free/app", "v1", images[accepted[1]])
        push_image(one.url, "race/app", "v1", images[accepted[0]])
        with pytest.raises(PushError, match=r"immutable"):
            push_image(two.url, "race/app", "v1", images[accepted[1]])

        # A monolithic blob upload over the quota is refused and leaves nothing in the bucket.
        data = os.urandom(limit)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        with httpx.Client(base_url=two.url, timeout=60) as client:
            location = start_upload(client, "race/app")
            response = client.put(with_query(location, digest=digest), content=data)
            assert_oci_error(response, 403, "DENIED")
        keys = bucket_keys(s3_engine, bucket)
        assert not [k for k in keys if digest.split(":")[1] in k]
        assert not [k for k in keys if "/_uploads/" in k]
        assert not [k for k in pending_multipart_uploads(s3_engine, bucket) if "race" in k]

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
    assert usage["race/app"] == sum(sizes[i] for i in accepted) <= limit


def test_two_replicas_racing_to_set_a_new_immutable_tag_one_wins(
    s3_engine: SeaweedS3, bucket: str, tmp_path: Path
) -> None:
    images = [make_image([{"d": os.urandom(2_000)}]) for _ in range(8)]
    config = registry_config(s3_engine.s3_config(bucket), redirect={"disable": True})
    config["regtui"] = {"immutable": [{"repository": "race/*", "tags": ["v*"]}]}
    won: list[int] = []
    refused: list[str] = []
    with (
        bundled_on_s3(tmp_path, config, name="one") as one,
        bundled_on_s3(tmp_path, config, name="two") as two,
    ):
        for index, image in enumerate(images):  # the blobs first: the manifests then race
            push_image((one, two)[index % 2].url, "race/app", None, image)
        start = threading.Barrier(len(images))

        def push(index: int) -> None:
            replica = (one, two)[index % 2]
            with httpx.Client(base_url=replica.url, timeout=60) as client:
                start.wait()
                response = client.put(
                    "/v2/race/app/manifests/v1",
                    content=images[index].manifest.data,
                    headers={"Content-Type": images[index].manifest.media_type},
                )
            if response.status_code == 201:
                won.append(index)
            else:
                refused.append(response.text)

        threads = [threading.Thread(target=push, args=(i,)) for i in range(len(images))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(won) == 1, (won, refused)
        assert all("immutable" in r for r in refused), refused
        head = httpx.head(
            f"{one.url}/v2/race/app/manifests/v1",
            headers={"Accept": images[0].manifest.media_type},
        )
        assert head.headers["Docker-Content-Digest"] == images[won[0]].digest
