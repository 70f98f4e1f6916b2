"""Re-export of the image builders for tests (they live in ``tui.imagegen`` for the demo too)."""

from tui.imagegen import (
    Blob,
    Image,
    Index,
    make_artifact,
    make_image,
    make_index,
    make_layer,
    push_image,
    write_oci_layout,
)

__all__ = [
    "Blob",
    "Image",
    "Index",
    "make_artifact",
    "make_image",
    "make_index",
    "make_layer",
    "push_image",
    "write_oci_layout",
]
