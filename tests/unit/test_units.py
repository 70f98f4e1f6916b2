"""One unit system for the app and the CLI: binary units as ``du -h`` writes them, bytes as B."""

from __future__ import annotations

import re
from pathlib import Path

import tui
from tui.commands._common import REPO_USAGE_HEADER
from tui.commands._common import size as cli_size
from tui.logic.fmt import human_size, signed_size
from tui.widgets.usage_panel import usage_table


def test_sizes_are_binary_with_bytes_as_b() -> None:
    assert human_size(0) == "0 B"
    assert human_size(1023) == "1023 B"
    assert human_size(1024) == "1.0 KiB"
    assert human_size(1536) == "1.5 KiB"
    assert human_size(1_048_575) == "1.0 MiB"  # not "1024.0 KiB"
    assert human_size(1_992_294) == "1.9 MiB"
    assert human_size(5_000_000) == "4.8 MiB"  # what `du -h` says of 5,000,000 bytes
    assert human_size(3 * 1024**3) == "3.0 GiB"
    assert signed_size(-1500) == "-1.5 KiB"
    assert signed_size(20) == "+20 B"


def test_the_cli_writes_sizes_as_the_app_does() -> None:
    for n in (0, 20, 999, 1024, 1_992_294, 5_000_000, 7 * 1024**4):
        assert cli_size(n) == human_size(n)
    assert cli_size(None) == "-"


def test_no_other_size_formatter_in_the_package() -> None:
    """Every size on screen and in the CLI goes through tui.logic.fmt.human_size."""
    root = Path(tui.__file__).parent
    offenders = [
        f"{path.relative_to(root)}:{n}"
        for path in root.rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"naturalsize|\bkB\b|\"MB\"|\bBytes\"", line)
    ]
    assert offenders == []


def test_du_and_the_app_name_the_same_figures_alike() -> None:
    from tui.data.storage import UsageView

    view = UsageView(
        source="test",
        estimate=False,
        repos=(),
        total_bytes=0,
        blob_count=0,
        reclaimable_bytes=0,
        reclaimable_blobs=0,
        upload_count=0,
        upload_bytes=0,
    )
    columns = [str(column.header) for column in usage_table(view, "Usage").columns]
    assert columns[1:3] == ["Total", "Exclusive"]
    assert [name.capitalize() for name in REPO_USAGE_HEADER[3:]] == columns[1:3]
