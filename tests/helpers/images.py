"""Re-export of the image builders for tests (they live in ``tui.imagegen`` for the demo too),
and skopeo copies run at once."""

import subprocess

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
    "skopeo_copy_at_once",
    "write_oci_layout",
]


def skopeo_copy_at_once(
    skopeo: str, copies: list[tuple[str, str]], timeout: float
) -> list[tuple[int, str]]:
    """Run ``skopeo copy SOURCE DESTINATION`` for every pair at the same time (no retries, TLS
    not verified on the destination): each one's exit code and stderr, in order."""
    processes = [
        subprocess.Popen(
            [skopeo, "copy", "--retry-times=0", "--dest-tls-verify=false", source, destination],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for source, destination in copies
    ]
    return [(p.wait(timeout=timeout), p.stderr.read() if p.stderr else "") for p in processes]
