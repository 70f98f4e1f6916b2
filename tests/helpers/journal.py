"""The notification journal as a test reads it on disk, independently of the registry's code.

Two kinds of files under ``<root>/regtui/notifications/<endpoint>/``: segment objects
(``*.json``: ``{"events": [...]}``, one a request) and logs of records (``*.log``, one a
process and endpoint), each record ``magic | state | written ns | length | crc32 | body`` with
the body a segment object's JSON; state ``W`` waits, ``D`` is delivered.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JOURNAL = Path("regtui") / "notifications"
MAGIC = b"\xffRN1"
HEADER = struct.Struct("<4scQII")


@dataclass(frozen=True)
class Record:
    path: Path
    offset: int
    state: bytes
    written_ns: int
    events: list[dict[str, Any]]


def records(path: Path) -> list[Record]:
    """The valid records of the log ``path`` (a torn one is skipped)."""
    data = path.read_bytes()
    found = []
    position = data.find(MAGIC)
    while 0 <= position <= len(data) - HEADER.size:
        _, state, written, length, crc = HEADER.unpack_from(data, position)
        body = data[position + HEADER.size : position + HEADER.size + length]
        signed = struct.pack("<QI", written, length) + body
        if len(body) == length and zlib.crc32(signed) == crc:
            found.append(Record(path, position, state, written, json.loads(body)["events"]))
            position = data.find(MAGIC, position + HEADER.size + length)
        else:
            position = data.find(MAGIC, position + 1)
    return found


def journal_files(root: Path) -> list[Path]:
    """The segment objects and logs of the journal under the storage ``root``."""
    top = root / JOURNAL
    return sorted([*top.rglob("*.json"), *top.rglob("*.log")])


def waiting_events(root: Path) -> list[dict[str, Any]]:
    """The events waiting in the journal on disk (objects, then the logs' waiting records)."""
    top = root / JOURNAL
    found: list[dict[str, Any]] = []
    for path in sorted(top.rglob("*.json")):
        found += json.loads(path.read_bytes())["events"]
    for path in sorted(top.rglob("*.log")):
        for record in records(path):
            if record.state == b"W":
                found += record.events
    return found


def encode_record(written_ns: int, events: list[dict[str, Any]], state: bytes = b"W") -> bytes:
    """A record as the registry writes it (for a test that leaves one as a crash would)."""
    body = json.dumps({"events": events}).encode()
    crc = zlib.crc32(struct.pack("<QI", written_ns, len(body)) + body)
    return HEADER.pack(MAGIC, state, written_ns, len(body), crc) + body
