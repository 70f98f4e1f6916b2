"""The events' pure parts: Distribution's encoding (server) and the rows and filters (app, CLI)."""

from __future__ import annotations

import json

from embedded_registry.notifications.events import (
    envelope,
    references_of,
    target,
    timestamp,
    wanted,
)
from tui.client.ext import RegistryEvent
from tui.logic.events import EventFilter, clock, next_action, row, what


def test_timestamps_are_gos_rfc3339_nano() -> None:
    assert timestamp(1_765_096_453_467_781_436) == "2025-12-07T08:34:13.467781436Z"
    assert timestamp(1_765_096_453_120_000_000) == "2025-12-07T08:34:13.12Z"  # zeros trimmed
    assert timestamp(1_765_096_453_000_000_000) == "2025-12-07T08:34:13Z"


def test_targets_leave_empty_fields_out_in_distributions_order() -> None:
    assert list(target(digest="sha256:a", repository="r")) == ["digest", "repository"]
    blob = target(media_type="m", size=3, digest="d", repository="r", url="u", from_repository="f")
    assert list(blob) == ["mediaType", "size", "digest", "length", "repository",
                          "fromRepository", "url"]  # fmt: skip
    assert blob["length"] == blob["size"] == 3


def test_envelope_is_laid_out_and_escaped_as_go_writes_it() -> None:
    body = envelope([{"id": "x", "target": {"tag": "<a&b>"}}]).decode()
    assert body.startswith('{\n   "events": [\n      {\n         "id": "x",')
    assert "\\u003ca\\u0026b\\u003e" in body and "<" not in body
    assert json.loads(body)["events"][0]["target"]["tag"] == "<a&b>"


def test_references_are_an_images_config_and_layers_or_an_indexs_manifests() -> None:
    image = {"config": {"digest": "c"}, "layers": [{"digest": "l1"}, {"digest": "l2"}]}
    assert [r["digest"] for r in references_of(json.dumps(image).encode())] == ["c", "l1", "l2"]
    index = {"manifests": [{"digest": "m1", "platform": {"os": "linux"}}]}
    assert references_of(json.dumps(index).encode()) == index["manifests"]
    assert references_of(b"not json") == []


def test_an_endpoint_ignores_by_media_type_and_action() -> None:
    blob = {"action": "pull", "target": {"mediaType": "application/octet-stream"}}
    assert not wanted(blob, frozenset({"application/octet-stream"}), frozenset())
    assert not wanted(blob, frozenset(), frozenset({"pull"}))
    assert wanted(blob, frozenset({"application/json"}), frozenset({"push"}))
    deleted = {"action": "delete", "target": {"digest": "d"}}  # no media type: never ignored by it
    assert wanted(deleted, frozenset({"application/octet-stream"}), frozenset())


def _event(**target: object) -> RegistryEvent:
    return RegistryEvent.from_json(
        {
            "timestamp": "2026-12-07T08:34:13.4677Z",
            "action": target.pop("action", "push"),
            "target": {"repository": "team/web", **target},
            "request": {"addr": "10.0.0.7:4000"},
            "actor": {},
        }
    )


def test_rows_say_what_who_and_from_where() -> None:
    manifest = _event(tag="v1", digest="sha256:" + "ab" * 32, size=2048)
    assert row(manifest) == (
        "2026-12-07 08:34:13", "push", "team/web", "v1 @abababababab", "2.0 KiB", "anonymous",
        "10.0.0.7:4000",
    )  # fmt: skip
    mounted = _event(action="mount", digest="sha256:" + "cd" * 32, fromRepository="team/api")
    assert what(mounted) == "cdcdcdcdcdcd from team/api"
    assert clock("garbage") == "garbage"


def test_filters_and_the_action_cycle() -> None:
    events = [_event(), _event(action="pull"), _event(action="pull", repository="team/api")]
    assert len(EventFilter().apply(events)) == 3
    assert len(EventFilter(action="pull").apply(events)) == 2
    assert len(EventFilter(action="pull", repository="API").apply(events)) == 1
    cycle = [None]
    for _ in range(5):
        cycle.append(next_action(cycle[-1]))
    assert cycle == [None, "push", "pull", "mount", "delete", None]
