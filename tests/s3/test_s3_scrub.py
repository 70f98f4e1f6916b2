"""``regtui scrub`` on S3 (SeaweedFS): through the server (``scrub HOST``, its s3 driver) and
offline (``scrub --config FILE`` with ``storage.s3``), objects damaged with a plain S3 client."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.s3 import SeaweedS3, bundled_on_s3, registry_config
from tests.helpers.servers import server_env
from tests.s3.test_s3_registry import bucket_keys
from tui.imagegen import make_image, push_image

pytestmark = pytest.mark.timeout(180)

V2 = "registry/docker/registry/v2"


def _put(engine: SeaweedS3, bucket: str, key: str, data: bytes) -> None:
    from aiobotocore.session import get_session

    async def put() -> None:
        async with get_session().create_client("s3", **engine.boto_kwargs()) as client:
            await client.put_object(Bucket=bucket, Key=key, Body=data)

    asyncio.run(put())


def _regtui(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=server_env(env),
        check=False,
    )


def test_scrub_on_s3_through_the_server_and_offline(
    s3_engine: SeaweedS3, bucket: str, tmp_path: Path
) -> None:
    image = make_image([{"a": os.urandom(20_000)}])
    other = make_image([{"b": os.urandom(5_000)}])
    layer = image.layers[0].digest
    ghost = "sha256:" + "0" * 64
    config = registry_config(s3_engine.s3_config(bucket), redirect={"disable": True})
    with bundled_on_s3(tmp_path, config) as registry:
        push_image(registry.url, "app", "v1", image)
        push_image(registry.url, "app", "v2", other)
        blob_key = f"{V2}/blobs/sha256/{layer[7:9]}/{layer[7:]}/data"
        _put(s3_engine, bucket, blob_key, image.layers[0].data[:-10])  # truncated
        _put(
            s3_engine,
            bucket,
            f"{V2}/repositories/app/_layers/sha256/{'0' * 64}/link",
            ghost.encode(),
        )

        served = _regtui(
            "scrub", registry.url, "--json", env={"REGTUI_ADMIN_DIR": str(registry.admin_dir)}
        )
        assert served.returncode == 1, served.stderr
        doc = json.loads(served.stdout)
        kinds = {p["kind"]: p for p in doc["problems"]}
        assert set(kinds) == {"blob-corrupt", "link-dangling"}
        assert kinds["blob-corrupt"]["images"] == ["app:v1"]
        assert kinds["blob-corrupt"]["message"].startswith("truncated:")
        assert doc["blobs"] == 6 and doc["repositories"] == 1

    config_file = tmp_path / "regtui-config.yml"  # the file the server read
    offline = _regtui("scrub", "--config", str(config_file), "--json", "--repair", "--restart")
    assert offline.returncode == 1, offline.stderr
    doc = json.loads(offline.stdout)
    repaired = {p["kind"]: p["repaired"] for p in doc["problems"]}
    assert repaired["link-dangling"] == "link removed"
    assert repaired["blob-corrupt"].startswith("quarantined to /regtui/scrub/quarantine/")
    keys = bucket_keys(s3_engine, bucket)
    assert blob_key not in keys  # reads as absent: the next push stores it again
    assert any(k.startswith(f"registry/regtui/scrub/quarantine/sha256/{layer[7:]}/") for k in keys)
    assert not any("0" * 64 in k for k in keys)

    with bundled_on_s3(tmp_path, config) as registry:
        push_image(registry.url, "app", "v1", image)
    again = _regtui("scrub", "--config", str(config_file))
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.startswith("scrub: clean: 6 blobs")
