"""The notification journal lives in the bucket: events a replica acknowledged and could not
deliver (sink down, then kill -9) are delivered by the next process on the same bucket."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.s3 import SeaweedS3, bundled_on_s3, registry_config
from tests.helpers.servers import free_port
from tests.helpers.sink import webhook_sink
from tui.imagegen import make_image, push_image

pytestmark = pytest.mark.slow


def test_journal_in_the_bucket_survives_a_kill_9(
    s3_engine: SeaweedS3, bucket: str, tmp_path: Path
) -> None:
    port = free_port()  # the sink is down at first
    config: dict[str, Any] = registry_config(
        s3_engine.s3_config(bucket), redirect={"disable": True}
    )
    config["notifications"] = {
        "endpoints": [{"name": "ci", "url": f"http://127.0.0.1:{port}/hook", "backoff": "100ms"}]
    }
    image = make_image([{"s3/file": b"kept in the bucket\n"}])
    with bundled_on_s3(tmp_path, config, name="first") as first:
        digest = push_image(first.url, "bucket/app", "v1", image)
        os.kill(first.process.pid, signal.SIGKILL)
        first.process.wait(timeout=10)
    # Nothing of the first process is left but the bucket (another working directory).
    with webhook_sink(port) as sink, bundled_on_s3(tmp_path / "second", config, name="second"):
        events = sink.wait_for(
            "/hook", lambda got: any(e["target"].get("digest") == digest for e in got)
        )
    pushed = [e for e in events if e["action"] == "push"]
    assert {e["target"]["digest"] for e in pushed} >= {blob.digest for blob in image.blobs()}
    assert [e for e in pushed if e["target"].get("tag") == "v1"]


def test_a_replica_sends_what_a_dead_replica_left_in_the_bucket(
    s3_engine: SeaweedS3, bucket: str, tmp_path: Path
) -> None:
    port = free_port()
    config: dict[str, Any] = registry_config(
        s3_engine.s3_config(bucket), redirect={"disable": True}
    )
    config["notifications"] = {
        "endpoints": [{"name": "ci", "url": f"http://127.0.0.1:{port}/hook", "backoff": "100ms"}]
    }
    takeover = {"REGTUI_NOTIFY_TAKEOVER_AGE": "2"}
    image = make_image([{"replica/file": b"left behind\n"}])
    with bundled_on_s3(tmp_path, config, name="survivor", env=takeover):
        with bundled_on_s3(tmp_path, config, name="doomed", env=takeover) as doomed:
            digest = push_image(doomed.url, "replica/app", "v1", image)
            os.kill(doomed.process.pid, signal.SIGKILL)
            doomed.process.wait(timeout=10)
        # The survivor started before the push: it takes the dead one's events over once
        # they are older than the takeover age.
        with webhook_sink(port) as sink:
            events = sink.wait_for(
                "/hook",
                lambda got: any(e["target"].get("digest") == digest for e in got),
                timeout=30,
            )
    assert {e["target"]["digest"] for e in events if e["action"] == "push"} >= {
        blob.digest for blob in image.blobs()
    }
