"""A multi-platform image, platform by platform: sizes, and the layers platforms share (pure).

Compressed sizes come from the manifests (config plus layers: what a pull of that platform
downloads); uncompressed sizes, when known, are the layers' tar sizes (read by streaming them).
A layer shared by several platforms is stored once: ``stored_bytes`` counts every distinct blob
once, ``compressed_bytes_total`` counts every platform's pull.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tui.client.models import Descriptor, Platform
from tui.logic.imagediff import platform_json

__all__ = ["PlatformImage", "platform_report"]


@dataclass(frozen=True)
class PlatformImage:
    platform: Platform | None
    digest: str
    config: Descriptor
    layers: tuple[Descriptor, ...]

    @property
    def compressed_bytes(self) -> int:
        return self.config.size + sum(layer.size for layer in self.layers)


def platform_report(
    reference: str,
    digest: str,
    images: Sequence[PlatformImage],
    uncompressed: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """The JSON document of ``regtui layers`` (``uncompressed``: layer digest -> tar bytes)."""
    users: dict[str, list[int]] = {}
    sizes: dict[str, int] = {}
    media_types: dict[str, str] = {}
    for number, image in enumerate(images):
        for layer in image.layers:
            numbers = users.setdefault(layer.digest, [])
            if number not in numbers:
                numbers.append(number)
            sizes[layer.digest] = layer.size
            media_types[layer.digest] = layer.media_type
    platforms = []
    for image in images:
        distinct = {layer.digest: layer.size for layer in image.layers}
        shared = sum(size for d, size in distinct.items() if len(users[d]) > 1)
        raw = None
        if uncompressed is not None and all(layer.digest in uncompressed for layer in image.layers):
            raw = sum(uncompressed[layer.digest] for layer in image.layers)
        platforms.append(
            {
                "platform": platform_json(image.platform),
                "digest": image.digest,
                "layer_count": len(image.layers),
                "compressed_bytes": image.compressed_bytes,
                "uncompressed_bytes": raw,
                "shared_layer_bytes": shared,
                "own_layer_bytes": sum(distinct.values()) - shared,
            }
        )
    layers = [
        {
            "digest": layer_digest,
            "media_type": media_types[layer_digest],
            "size": sizes[layer_digest],
            "uncompressed_bytes": (uncompressed or {}).get(layer_digest),
            "platforms": [platform_json(images[n].platform) for n in numbers],
        }
        for layer_digest, numbers in users.items()
    ]
    configs = {image.config.digest: image.config.size for image in images}
    total = sum(image.compressed_bytes for image in images)
    stored = sum(configs.values()) + sum(sizes.values())
    return {
        "reference": reference,
        "digest": digest,
        "platforms": platforms,
        "layers": layers,
        "compressed_bytes_total": total,
        "stored_bytes": stored,
        "shared_bytes": total - stored,
    }
