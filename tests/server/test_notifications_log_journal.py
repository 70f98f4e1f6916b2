"""The filesystem journal's logs (notifications/recordlog.py), in one process on real files.

Small logs so that a few requests fill them: a full log is replaced by the next one (made in
advance), every record stays pending in order until delivered, a sealed log's events are read
back from its file, and a log is removed once everything in it is done; another process's log
is left alone while its maker lives and taken over, then removed, once it is gone.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from embedded_registry.notifications.journal import endpoint_dir
from embedded_registry.notifications.recordlog import LogJournal
from embedded_registry.storage.driver.filesystem import FilesystemDriver
from embedded_registry.storage.driver.records import record_files

SMALL = 2048


def _journal(root: Path, instance: str) -> LogJournal:
    driver = FilesystemDriver(root)
    files = record_files(driver)
    assert files is not None
    journal = LogJournal(driver, instance, files)
    journal.log_bytes = SMALL
    return journal


def _logs(root: Path) -> list[Path]:
    return sorted((root / endpoint_dir("ci").lstrip("/")).glob("*.log"))


async def _settle(journal: LogJournal) -> None:
    """Let the background work (the next log, removals) end."""
    for _ in range(1000):
        await asyncio.sleep(0.01)
        if not journal._making and not journal._removing:
            return


async def test_full_logs_roll_over_and_go_once_delivered(tmp_path: Path) -> None:
    journal = _journal(tmp_path, "a" * 32)
    await journal.start(["ci"])
    pad = "x" * 120  # ~190 bytes a record: a 2 KiB log takes ten
    for number in range(30):
        await journal.append("ci", [{"id": f"event-{number}", "action": "push", "pad": pad}])
        await _settle(journal)
    assert len(_logs(tmp_path)) >= 3
    pending = await journal.pending("ci")
    assert [s.key.endswith(".json") for s in pending].count(True) == 0  # all records
    read = [await journal.read(segment) for segment in pending]
    assert [events[0]["id"] for events in read if events] == [f"event-{n}" for n in range(30)]
    await journal.remove_all(pending)
    await _settle(journal)
    assert await journal.pending("ci") == []
    # The full logs went; the current one (and a spare) stay for the next requests.
    assert len(_logs(tmp_path)) <= 2


async def test_another_process_s_log_is_taken_over_once_its_maker_is_gone(
    tmp_path: Path,
) -> None:
    maker = _journal(tmp_path, "b" * 32)
    await maker.start(["ci"])
    await maker.append("ci", [{"id": "left-behind", "action": "delete"}])
    [log] = _logs(tmp_path)
    other = _journal(tmp_path, "c" * 32)
    found = await other.pending("ci")
    assert [await other.read(segment) for segment in found] == [
        [{"id": "left-behind", "action": "delete"}]
    ]
    await other.remove_all(found)
    assert await other.pending("ci") == [] and log.exists()  # its maker lives: left alone
    await maker.close()  # the maker ends (its lock goes with it)
    assert await other.pending("ci") == []
    assert not log.exists()
