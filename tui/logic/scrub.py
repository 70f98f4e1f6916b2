"""The scrub's results as the app shows them: progress in words, broken images by repository.

Pure: the Scrub screen and the catalog's marks read these from the report's plain values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from tui.logic.fmt import count_of, human_size


def _number(progress: Mapping[str, object], key: str) -> int:
    value = progress.get(key, 0)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def progress_fraction(progress: Mapping[str, object]) -> float:
    """How far a scrub is, 0 to 1: the blobs are nine tenths of the work, the repositories
    (counted without a total) the last tenth."""
    if progress.get("phase") == "done":
        return 1.0
    if progress.get("phase") == "blobs":
        value = progress.get("fraction", 0.0)
        share = float(value) if isinstance(value, int | float) else 0.0
        return max(0.0, min(1.0, share)) * 0.9
    return 0.9


def progress_text(progress: Mapping[str, object]) -> str:
    """``Blobs: 1,204 read (3.1 GiB) · 0 problems`` and the like."""
    problems = count_of(_number(progress, "problems"), "problem")
    if progress.get("phase") == "blobs":
        return (
            f"Blobs: {_number(progress, 'blobs'):,} read "
            f"({human_size(_number(progress, 'bytes'))}) · {problems}"
        )
    return (
        f"Repositories: {_number(progress, 'repositories'):,} checked, "
        f"{count_of(_number(progress, 'manifests'), 'manifest')} · {problems}"
    )


def image_repository(image: str) -> str:
    """``app:v1`` or ``app@sha256:…`` -> ``app`` (a registry port never appears here)."""
    name = image.split("@", 1)[0]
    return name.rsplit(":", 1)[0] if ":" in name else name


def broken_by_repository(images: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """The broken images grouped by repository, each group sorted."""
    found: dict[str, set[str]] = {}
    for image in images:
        found.setdefault(image_repository(image), set()).add(image)
    return {repo: tuple(sorted(group)) for repo, group in sorted(found.items())}
