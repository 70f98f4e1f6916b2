"""Metrics of a registry on S3 (SeaweedFS): the s3 driver's operations are counted under its
own name, and the bytes per repository are what ``regtui du --config`` says of the bucket."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from tests.helpers.s3 import SeaweedS3, bundled_on_s3, registry_config
from tests.helpers.servers import free_port, server_env
from tests.server.test_health import wait_for
from tests.server.test_metrics import moved, push_image, scrape
from tests.server.test_metrics_storage import ACTIONS, SECONDS, actions, noise, repository_bytes


def test_s3_driver_operations_and_repository_bytes(
    s3_engine: SeaweedS3, bucket: str, tmp_path: Path
) -> None:
    port = free_port()
    config = registry_config(s3_engine.s3_config(bucket))
    config["http"] = {"debug": {"addr": f"127.0.0.1:{port}", "prometheus": {"enabled": True}}}
    metrics = f"http://127.0.0.1:{port}/metrics"
    with bundled_on_s3(tmp_path, config) as registry:
        before = scrape(metrics)
        with httpx.Client(base_url=registry.url, timeout=60) as client:
            push_image(client, "team/app", noise(200_000, "s3 app"), "v1")
        after = scrape(metrics)
        assert moved(before, after, ACTIONS, driver="s3", action="put_content", outcome="ok") > 0
        counted = actions(after, ACTIONS, driver="s3") - actions(before, ACTIONS, driver="s3")
        timed = actions(after, SECONDS, driver="s3") - actions(before, SECONDS, driver="s3")
        assert counted == timed > 0
        assert actions(after, ACTIONS, driver="filesystem") == 0

        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "tui",
                "du",
                "--config",
                str(tmp_path / "regtui-config.yml"),
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env=server_env(),
            check=False,
        )
        assert result.returncode == 0, result.stderr
        expected = {
            r["name"]: r["referenced_bytes"] for r in json.loads(result.stdout)["repositories"]
        }
        assert expected["team/app"] >= 200_000
        wait_for(lambda: repository_bytes(scrape(metrics)) == expected, timeout=60)
