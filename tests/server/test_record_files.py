"""Record files (storage/driver/records.py): durable records without a file per write.

Real files in a temporary directory. Appends that wait while a sync runs share the next one
(group commit), never return before a sync that began after their own write, and every
acknowledged record reads back; a torn record is skipped and the ones after it are found.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from embedded_registry.storage.driver.records import DONE, WAITING, RecordFile, encode, parse


def test_appends_waiting_while_a_sync_runs_share_the_next_one(tmp_path: Path) -> None:
    log = RecordFile.create(str(tmp_path / "a.log"), 1 << 16)
    try:
        bodies = [encode(n, f'{{"events":[{{"n":{n}}}]}}'.encode()) for n in range(4)]
        offsets = [sum(len(b) for b in bodies[:n]) for n in range(4)]
        returned: list[int] = []

        def append(n: int) -> None:
            log.append(offsets[n], bodies[n])
            returned.append(n)

        # A sync in flight: the four appends write, then wait for the sync lock.
        with log._sync_lock:
            threads = [threading.Thread(target=append, args=(n,)) for n in range(4)]
            for thread in threads:
                thread.start()
            deadline = time.monotonic() + 10
            while log._written < 4 and time.monotonic() < deadline:
                time.sleep(0.001)
            assert log._written == 4 and returned == []  # written, none acknowledged yet
        for thread in threads:
            thread.join(10)
        assert sorted(returned) == [0, 1, 2, 3]
        assert log.syncs == 1 and log.synced == 4  # one fdatasync made all four durable
        reread = RecordFile.open(log.path)
        try:
            assert [(r.written_ns, r.state) for r in reread.read()] == [
                (n, WAITING) for n in range(4)
            ]
        finally:
            reread.close()
    finally:
        log.close()


def test_a_file_is_made_whole_marked_in_place_and_locked_by_its_maker(tmp_path: Path) -> None:
    path = tmp_path / "b.log"
    log = RecordFile.create(str(path), 1 << 16)
    try:
        assert path.stat().st_size == 1 << 16 and os.listdir(tmp_path) == ["b.log"]
        first, second = encode(1, b'{"events":[]}'), encode(2, b'{"events":[{}]}')
        log.append(0, first)
        log.append(len(first), second)
        log.mark([0], DONE)
        assert [(r.offset, r.state) for r in log.read()] == [(0, DONE), (len(first), WAITING)]
        other = RecordFile.open(str(path))
        try:
            assert not other.owner_gone()  # its maker holds it
            log.close()
            assert other.owner_gone()  # the maker ended: taken over
        finally:
            other.close()
    finally:
        log.close()


def test_a_torn_record_is_skipped_and_the_next_one_found() -> None:
    records = [encode(n, b'{"events":[{"id":"%d"}]}' % n) for n in range(3)]
    torn = bytearray(records[1])
    torn[len(torn) // 2] ^= 0x01
    data = records[0] + bytes(torn[: len(torn) - 3]) + bytes(7) + records[2] + bytes(100)
    found = parse(data)
    assert [r.written_ns for r in found] == [0, 2]
    assert found[1].offset == len(records[0]) + len(torn) - 3 + 7
