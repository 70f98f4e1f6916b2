"""``notifications`` as Distribution reads it: every endpoint key honoured, zero values
replaced by Distribution's defaults (timeout 1 s, threshold 10, backoff 1 s), both ignore lists
joined. (Before, any endpoint that was not disabled refused the start.)"""

from __future__ import annotations

from embedded_registry.config import NotificationEndpoint, load_config


def test_every_endpoint_key_is_read() -> None:
    config = load_config(
        data={
            "notifications": {
                "events": {"includereferences": True},
                "endpoints": [
                    {
                        "name": "audit",
                        "url": "https://hooks.example/registry",
                        "headers": {"Authorization": ["Bearer t"], "X-Two": ["a", "b"]},
                        "timeout": "500ms",
                        "threshold": 5,
                        "backoff": "2s",
                        "ignoredmediatypes": ["application/octet-stream"],
                        "ignore": {
                            "mediatypes": ["application/vnd.oci.image.index.v1+json"],
                            "actions": ["pull"],
                        },
                    },
                    {"name": "off", "url": "http://127.0.0.1:1/", "disabled": True},
                    {"name": "defaults", "url": "http://127.0.0.1:2/hook"},
                ],
            }
        },
        env={},
    )
    audit, off, defaults = config.notifications.endpoints
    assert audit == NotificationEndpoint(
        name="audit",
        url="https://hooks.example/registry",
        headers=(("Authorization", "Bearer t"), ("X-Two", "a"), ("X-Two", "b")),
        timeout=0.5,
        threshold=5,
        backoff=2.0,
        ignored_media_types=frozenset(
            {"application/octet-stream", "application/vnd.oci.image.index.v1+json"}
        ),
        ignored_actions=frozenset({"pull"}),
    )
    assert off.disabled and config.notifications.active == (audit, defaults)
    assert (defaults.timeout, defaults.threshold, defaults.backoff) == (1.0, 10, 1.0)
    assert config.notifications.include_references is True
    assert config.warnings == []
