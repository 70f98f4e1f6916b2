"""The bundled registry's webhooks send what Debian's docker-registry (Distribution 2.8.2) sends.

Both registries get the same ``notifications`` section, pointing at one real sink (two paths),
and the same traffic from skopeo: a push, a copy to a second repository (cross-repository
mounts), a pull, then a DELETE of the manifest by digest. The events must match: the same
actions, targets, request methods and user agents, the same key sets at every level, and the
same envelope (media type, Go's three-space indentation); ids, timestamps, addresses, hosts
and instance ids differ by nature and are compared by shape only.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from tests.helpers.images import make_image, write_oci_layout
from tests.helpers.servers import (
    RunningRegistry,
    bundled_registry,
    distribution_registry,
    require_tool,
)
from tests.helpers.sink import Sink, webhook_sink

EVENTS_MEDIA_TYPE = "application/vnd.docker.distribution.events.v1+json"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z")


def skopeo(*args: str) -> None:
    binary = require_tool("skopeo")
    result = subprocess.run(
        [binary, *args], capture_output=True, text=True, timeout=180, check=False
    )
    assert result.returncode == 0, result.stderr


def _traffic(registry: RunningRegistry, layout: Path, out: Path) -> None:
    host = registry.host
    skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:v1", f"docker://{host}/lib/app:v1")
    skopeo(
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        f"docker://{host}/lib/app:v1",
        f"docker://{host}/lib/other:v2",
    )
    skopeo("copy", "--src-tls-verify=false", f"docker://{host}/lib/app:v1", f"dir:{out}")
    digest = httpx.head(
        f"{registry.url}/v2/lib/other/manifests/v2",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    ).headers["Docker-Content-Digest"]
    deleted = httpx.delete(f"{registry.url}/v2/lib/other/manifests/{digest}")
    assert deleted.status_code == 202


def _shape(value: Any) -> Any:
    """The keys at every level, values replaced by their type."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    return type(value).__name__


def _comparable(event: dict[str, Any], registry: RunningRegistry) -> str:
    """An event without what differs by nature between two servers, as sortable text."""
    assert UUID.fullmatch(event["id"]), event["id"]
    assert TIMESTAMP.fullmatch(event["timestamp"]), event["timestamp"]
    assert UUID.fullmatch(event["request"]["id"])
    assert UUID.fullmatch(event["source"]["instanceID"])
    assert event["source"]["addr"].endswith(f":{registry.port}")
    assert event["request"]["host"] == registry.host
    assert event["request"]["addr"].startswith("127.0.0.1:")
    target = dict(event["target"])
    if "url" in target:
        assert target["url"].startswith(registry.url + "/v2/")
        target["url"] = target["url"].removeprefix(registry.url)
    request = {k: v for k, v in event["request"].items() if k not in ("id", "addr", "host")}
    kept = {"action": event["action"], "target": target, "request": request}
    return json.dumps({**kept, "actor": event["actor"]}, sort_keys=True)


def _go_indented(body: bytes) -> bool:
    """Whether ``body`` is laid out as Go's ``json.MarshalIndent(v, "", "   ")`` lays it out."""
    text = json.dumps(json.loads(body), indent=3, ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escaped)
    return text.encode() == body


def _endpoint(sink: Sink, path: str) -> dict[str, Any]:
    return {
        "name": "audit",
        "url": sink.url(path),
        "headers": {"Authorization": ["Bearer sink-token"], "X-Audit": ["a", "b"]},
        "timeout": "2s",
        "threshold": 3,
        "backoff": "1s",
    }


def _events_of(
    start: Any, root: Path, sink: Sink, path: str, layout: Path
) -> tuple[list[dict[str, Any]], RunningRegistry]:
    """Run a registry with an endpoint on ``path`` of ``sink``, send it the traffic; the
    events it sent once the two deletes came in (and a second for stragglers)."""
    config = {
        "notifications": {
            "events": {"includereferences": True},  # a manifest's config and layers too
            "endpoints": [_endpoint(sink, path)],
        }
    }
    with start(root, config=config) as registry:
        _traffic(registry, layout, root.parent / f"{root.name}-pulled")
        events = sink.wait_for(path, lambda got: sum(e["action"] == "delete" for e in got) >= 2)
        time.sleep(1.0)
        assert len(sink.events(path)) == len(events)
    return events, registry


def test_events_match_docker_registry_for_the_same_skopeo_traffic(tmp_path: Path) -> None:
    require_tool("docker-registry")
    image = make_image([{"etc/motd": b"hello <events> & co\n"}, {"bin/app": b"\x7fELF" * 500}])
    layout = write_oci_layout(tmp_path / "layout", image, tag="v1")
    with webhook_sink() as sink:
        theirs, distribution = _events_of(
            distribution_registry, tmp_path / "distribution", sink, "/distribution", layout
        )
        ours, bundled = _events_of(bundled_registry, tmp_path / "bundled", sink, "/bundled", layout)
    actions = Counter(event["action"] for event in theirs)
    referenced = [e for e in theirs if e["target"].get("references")]
    assert referenced and all(len(e["target"]["references"]) == 3 for e in referenced)
    assert actions["push"] >= 4 and actions["pull"] >= 4 and actions["mount"] >= 1, actions
    assert Counter(_comparable(e, bundled) for e in ours) == Counter(
        _comparable(e, distribution) for e in theirs
    )
    assert {json.dumps(_shape(e), sort_keys=True) for e in ours} == {
        json.dumps(_shape(e), sort_keys=True) for e in theirs
    }
    for got in sink.received:
        assert got.headers["Content-Type"] == EVENTS_MEDIA_TYPE
        assert got.headers.getall("Authorization") == ["Bearer sink-token"]
        assert got.headers.getall("X-Audit") == ["a", "b"]
        assert _go_indented(got.body), got.body[:200]
        for event in got.events:  # field order, as Distribution writes each event
            assert list(event) == [
                "id",
                "timestamp",
                "action",
                "target",
                "request",
                "actor",
                "source",
            ]
