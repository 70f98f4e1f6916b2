"""A garbage collection paused past its lease removes nothing (two replicas on SeaweedFS).

``regtui gc --config`` stops itself (SIGSTOP, ``REGTUI_PAUSE_AT=gc-sweep``) between its mark
and its sweep, with a lease of a few seconds (``REGTUI_GC_LEASE_TTL``). While it is stopped the
lease runs out, and a client pushes the image GC was about to sweep again through the other
replica: its blobs are still there, so the client skips their upload (HEAD 200) and the manifest
PUT is acknowledged. Resumed with SIGCONT, the GC must see that it no longer holds the lease,
say so, and remove nothing: the re-pushed image pulls back whole.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.helpers.pause import LEASE_TTL_ENV, start_paused_gc
from tests.helpers.s3 import SeaweedS3, bundled_on_s3, registry_config
from tests.s3.test_s3_registry import bucket_keys
from tui.imagegen import Image, make_image, push_image

pytestmark = pytest.mark.slow

LEASE_SECONDS = 6.0


def assert_pulls(client: httpx.Client, repo: str, tag: str, image: Image) -> None:
    got = client.get(f"/v2/{repo}/manifests/{tag}", headers={"Accept": image.manifest.media_type})
    assert got.status_code == 200, got.text
    assert got.content == image.manifest.data
    for blob in image.blobs():
        pulled = client.get(f"/v2/{repo}/blobs/{blob.digest}")
        assert pulled.status_code == 200, (blob.digest, pulled.text)
        assert pulled.content == blob.data


def test_a_gc_paused_past_its_lease_sweeps_no_acknowledged_image(
    s3_engine: SeaweedS3, bucket: str, tmp_path: Path
) -> None:
    s3 = s3_engine.s3_config(bucket)
    config = registry_config(s3, redirect={"disable": True})
    config_path = tmp_path / "gc-config.yml"
    config_path.write_text(yaml.safe_dump(config))
    image = make_image([{"etc/app": os.urandom(20_000)}, {"bin/app": b"pushed twice\n"}])
    with (
        bundled_on_s3(tmp_path, config, name="one") as one,
        bundled_on_s3(tmp_path, config, name="two") as two,
        httpx.Client(base_url=one.url, timeout=60) as first,
        httpx.Client(base_url=two.url, timeout=60) as second,
    ):
        push_image(first, "app", "v1", image)
        # S3 times are whole seconds: the delete comes in a later second than the push, so
        # the image's blobs are older than the repository's last commit (GC frees them).
        time.sleep(1.1)
        assert first.delete(f"/v2/app/manifests/{image.digest}").status_code == 202

        gc, lines = start_paused_gc(
            ["--config", str(config_path), "--force", "--grace-period", "0"],
            "gc-sweep",
            {LEASE_TTL_ENV: str(LEASE_SECONDS)},
        )
        try:
            assert "removal(s) planned" in lines[-1], lines
            keys_paused = _data_keys(s3_engine, bucket)
            # The lease runs out while the GC is stopped; a replica then commits again.
            time.sleep(LEASE_SECONDS + 1.0)
            push_image(second, "app", "v1", image)
            assert_pulls(second, "app", "v1", image)
        finally:
            gc.send_signal(signal.SIGCONT)
        out, err = gc.communicate(timeout=120)
        report = "".join(lines) + err
        assert_pulls(first, "app", "v1", image)
        assert_pulls(second, "app", "v1", image)
        assert gc.returncode != 0, out + report
        # Said once, in one line, before anything was removed.
        assert "regtui: error: lost the GC lease before the sweep: " in report, report
        assert "nothing was removed" in report, report
        # Nothing the paused GC had planned went: every key it saw is still there.
        assert keys_paused <= _data_keys(s3_engine, bucket)


def _data_keys(s3_engine: SeaweedS3, bucket: str) -> set[str]:
    """The keys of the registry's data (the lease object aside)."""
    return {k for k in bucket_keys(s3_engine, bucket) if "/docker/registry/v2/" in k}
