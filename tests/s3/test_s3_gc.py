"""Garbage collection and usage on S3, through the extension endpoint of a replica: the blobs it
names are the ones Distribution's ``garbage-collect --dry-run`` names on the same bucket, a real
run removes exactly them from the bucket, and what is still tagged pulls back unchanged."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.helpers.s3 import SeaweedS3, bundled_on_s3, registry_config
from tests.helpers.servers import require_tool, server_env
from tests.s3.test_s3_registry import bucket_keys
from tui.imagegen import make_image, push_image

pytestmark = [pytest.mark.slow, pytest.mark.interop]


def distribution_gc_dry_run(tmp_path: Path, s3: dict) -> set[str]:
    """The blobs ``docker-registry garbage-collect --dry-run`` finds eligible on ``s3``."""
    binary = require_tool("docker-registry")
    config = tmp_path / "gc-distribution.yml"
    config.write_text(yaml.safe_dump({"version": 0.1, "storage": {"s3": s3}}))
    env = {k: v for k, v in server_env().items() if not k.startswith("AWS_")}
    result = subprocess.run(
        [binary, "garbage-collect", "--dry-run", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return set(re.findall(r"blob eligible for deletion: (sha256:[0-9a-f]{64})", result.stdout))


def test_gc_on_s3_names_what_distribution_names_and_removes_it(
    s3_engine: SeaweedS3, bucket: str, tmp_path: Path
) -> None:
    s3 = s3_engine.s3_config(bucket)
    kept = make_image([{"kept": b"still tagged\n"}, {"shared": b"shared layer\n"}])
    dropped = make_image([{"dropped": os.urandom(50_000)}, {"shared": b"shared layer\n"}])
    config = registry_config(s3, redirect={"disable": True})
    with (
        bundled_on_s3(tmp_path, config) as registry,
        httpx.Client(base_url=registry.url, timeout=60) as client,
    ):
        push_image(client, "app", "kept", kept)
        push_image(client, "app", "dropped", dropped)
        # S3 times are whole seconds, and GC keeps a blob written in the same second as its
        # repository's last commit (it may belong to a push in flight): the delete comes later.
        time.sleep(1.1)
        assert client.delete(f"/v2/app/manifests/{dropped.digest}").status_code == 202
        only_dropped = {b.digest for b in dropped.blobs()} - {b.digest for b in kept.blobs()}
        only_dropped.add(dropped.digest)

        admin = registry.admin_headers()
        usage = client.get("/v2/_regtui/ext/storage", headers=admin)
        assert usage.status_code == 200, usage.text
        report = usage.json()
        assert (
            report["blob_count"] == len({b.digest for b in [*kept.blobs(), *dropped.blobs()]}) + 2
        )
        assert report["reclaimable_blobs"] == len(only_dropped)

        dry = client.post(
            "/v2/_regtui/ext/gc", json={"dry_run": True, "grace_period": 0}, headers=admin
        )
        assert dry.status_code == 200, dry.text
        named = {r["digest"] for r in dry.json()["removals"] if r["kind"] == "blob"}
        assert named == only_dropped
        assert distribution_gc_dry_run(tmp_path, s3) == only_dropped
        for removal in dry.json()["removals"]:
            assert removal["path"].startswith("docker/registry/v2/"), removal

        run = client.post(
            "/v2/_regtui/ext/gc", json={"dry_run": False, "grace_period": 0}, headers=admin
        )
        assert run.status_code == 200, run.text
        assert run.json()["bytes_freed"] >= sum(
            len(b.data) for b in dropped.blobs() if b.digest in only_dropped
        )
        keys = bucket_keys(s3_engine, bucket)
        for digest in only_dropped:
            hex_part = digest.split(":", 1)[1]
            assert not [k for k in keys if f"/blobs/sha256/{hex_part[:2]}/{hex_part}/" in k]
        got = client.get("/v2/app/manifests/kept", headers={"Accept": kept.manifest.media_type})
        assert got.content == kept.manifest.data
        for blob in kept.blobs():
            assert client.get(f"/v2/app/blobs/{blob.digest}").content == blob.data
        assert distribution_gc_dry_run(tmp_path, s3) == set()


def _regtui(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=server_env(),
        check=False,
    )


def test_gc_and_du_read_the_servers_config_file(
    s3_engine: SeaweedS3, bucket: str, tmp_path: Path
) -> None:
    s3 = s3_engine.s3_config(bucket)
    image = make_image([{"a": os.urandom(30_000)}])
    config = registry_config(s3, redirect={"disable": True})
    with (
        bundled_on_s3(tmp_path, config) as registry,
        httpx.Client(base_url=registry.url, timeout=60) as client,
    ):
        push_image(client, "offline", "v1", image)
        time.sleep(1.1)  # whole-second S3 times: the delete comes after the push's second
        assert client.delete(f"/v2/offline/manifests/{image.digest}").status_code == 202
    config_file = tmp_path / "regtui-config.yml"  # the file the server read
    assert config_file.is_file()

    du = _regtui("du", "--config", str(config_file), "--json")
    assert du.returncode == 0, du.stderr
    usage = json.loads(du.stdout)
    assert usage["blob_count"] == 3 and usage["total_bytes"] > 30_000

    dry = _regtui("gc", "--config", str(config_file), "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    planned = json.loads(dry.stdout)
    names = {b.digest for b in image.blobs()} | {image.digest}
    assert planned["eligible_blobs"] == 3
    assert distribution_gc_dry_run(tmp_path, s3) == names

    run = _regtui("gc", "--config", str(config_file), "--grace-period", "0")
    assert run.returncode == 0, run.stderr
    assert "regtui: " in run.stderr  # progress lines on stderr
    assert not [k for k in bucket_keys(s3_engine, bucket) if "/blobs/" in k]

    broken = tmp_path / "broken.yml"
    broken.write_text(yaml.safe_dump(registry_config(s3_engine.s3_config("missing-bucket"))))
    refused = _regtui("gc", "--config", str(broken), "--dry-run")
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        f"regtui: error: S3 bucket 'missing-bucket' does not exist at {s3_engine.endpoint}"
    ]


def test_gc_and_du_config_on_the_filesystem_driver(tmp_path: Path) -> None:
    """``--config`` names the filesystem root just as well (as ``registry garbage-collect``)."""
    from embedded_registry.storage.paths import Layout

    root = tmp_path / "root"
    layout = Layout(root)
    layout.repositories_dir.mkdir(parents=True)
    data = os.urandom(5000)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    layout.blob_data(digest).parent.mkdir(parents=True)
    layout.blob_data(digest).write_bytes(data)  # a blob nothing references
    config_file = tmp_path / "config.yml"
    config_file.write_text(
        yaml.safe_dump({"storage": {"filesystem": {"rootdirectory": str(root)}}})
    )

    du = _regtui("du", "--config", str(config_file), "--json")
    assert du.returncode == 0, du.stderr
    assert json.loads(du.stdout)["total_bytes"] == 5000
    gc = _regtui("gc", "--config", str(config_file), "--grace-period", "0", "--json")
    assert gc.returncode == 0, gc.stderr
    assert json.loads(gc.stdout)["eligible_blobs"] == 1
    assert not layout.blob_data(digest).exists()

    both = tmp_path / "both.yml"
    both.write_text(
        yaml.safe_dump(
            {"storage": {"filesystem": {"rootdirectory": str(root)}, "s3": {"bucket": "b"}}}
        )
    )
    refused = _regtui("gc", "--config", str(both), "--dry-run")
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        f"regtui: error: {both}: storage: configure exactly one storage driver, not "
        "filesystem and s3"
    ]
    # A file without storage is refused, never read as the default root.
    none = tmp_path / "none.yml"
    none.write_text(yaml.safe_dump({"version": 0.1, "http": {"addr": "127.0.0.1:5000"}}))
    for command in ("gc", "du"):
        result = _regtui(command, "--config", str(none))
        assert result.returncode != 0
        assert result.stderr.strip().splitlines() == [
            f"regtui: error: {none}: storage: no storage driver configured "
            "(storage.filesystem.rootdirectory or storage.s3)"
        ]
