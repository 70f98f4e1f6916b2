"""The packed digests of GC's scan (issue 22): found by their bytes, whatever the buffer holds
around them; anything that cannot be packed kept as a string beside them."""

from __future__ import annotations

import hashlib

from embedded_registry.gc.digests import DigestList, DigestMarks, PackedDigests, raw_sha256
from embedded_registry.gc.scan import BlobDirs

BASE = "/srv/docker/registry/v2/blobs"


def _digest(n: int) -> str:
    return "sha256:" + hashlib.sha256(str(n).encode()).hexdigest()


def _dirs(digests: list[str]) -> BlobDirs:
    dirs = BlobDirs(BASE)
    for digest in digests:
        dirs.add_in_place(digest)
    return dirs


def test_packed_digests_are_found_and_nothing_else_is() -> None:
    digests = sorted(_digest(n) for n in range(3000))
    packed = PackedDigests()
    for digest in digests:
        raw = raw_sha256(digest)
        assert raw is not None and packed.append(raw)
    assert len(packed) == 3000
    for index, digest in enumerate(digests):
        raw = raw_sha256(digest)
        assert raw is not None and packed.index(raw) == index
        assert packed.digest(index) == digest
    for n in range(3000, 3100):
        raw = raw_sha256(_digest(n))
        assert raw is not None and packed.index(raw) == -1


def test_a_match_across_two_packed_digests_is_no_match() -> None:
    """32 bytes that straddle two neighbours in the buffer are not a digest of it."""
    first = b"\x00\x01" + b"\x02" * 14 + b"\x00\x01" + b"\x05" * 14
    second = b"\x00\x01" + b"\x07" * 30
    packed = PackedDigests()
    assert packed.append(first) and packed.append(second)
    across = (first + second)[16:48]  # in the same bucket (00 01), found only misaligned
    assert across[:2] == b"\x00\x01" and (first + second).find(across) == 16
    assert packed.index(across) == -1 and packed.find("sha256:" + across.hex()) == -1
    assert packed.index(first) == 0 and packed.index(second) == 1
    assert packed.find("sha256:" + second.hex()) == 1


def test_only_ascending_digests_are_packed() -> None:
    packed = PackedDigests()
    high, low = b"\xff" * 32, b"\x01" * 32
    assert packed.append(high)
    assert not packed.append(low) and not packed.append(high)
    assert packed.index(low) == -1


def test_raw_sha256_takes_only_lower_case_sha256() -> None:
    digest = _digest(1)
    assert raw_sha256(digest) == bytes.fromhex(digest[7:])
    assert raw_sha256(digest.upper().replace("SHA256", "sha256")) is None
    assert raw_sha256("sha512:" + "ab" * 64) is None
    assert raw_sha256("sha256:" + "zz" * 32) is None
    assert raw_sha256("sha256:abc") is None


def test_blob_dirs_pack_in_place_blobs_and_keep_the_rest_as_strings() -> None:
    digests = sorted(_digest(n) for n in range(50))
    dirs = _dirs(digests[10:])
    dirs.add_in_place(digests[0])  # out of order: kept as a string
    sha512 = "sha512:" + "cd" * 64
    dirs.add_in_place(sha512)
    dirs[digests[1]] = "/elsewhere/blob"  # not where the layout puts it
    assert list(dirs.unpacked()) == [digests[0], sha512, digests[1]]
    assert len(dirs) == 43
    assert set(dirs) == {*digests[10:], digests[0], digests[1], sha512}
    hex_part = digests[20][7:]
    assert dirs[digests[20]] == f"{BASE}/sha256/{hex_part[:2]}/{hex_part}"
    assert dirs[digests[1]] == "/elsewhere/blob"
    assert digests[5] not in dirs and dirs.get(digests[5]) is None
    # A packed blob moved elsewhere, then one removed.
    dirs[digests[30]] = "/moved"
    assert dirs[digests[30]] == "/moved" and len(dirs) == 43
    del dirs[digests[31]]
    assert digests[31] not in dirs and len(dirs) == 42
    assert digests[31] not in set(dirs)


def test_marks_and_layer_lists_by_position() -> None:
    digests = sorted(_digest(n) for n in range(40))
    dirs = _dirs(digests[:30])
    del dirs[digests[3]]
    marks = DigestMarks(dirs)
    missing = digests[35]  # referenced, no blob
    marks.update([digests[1], digests[2], digests[2], missing])
    assert len(marks) == 3 and marks.packed_marked() == 2
    assert digests[1] in marks and missing in marks and digests[4] not in marks
    assert set(marks) == {digests[1], digests[2], missing}
    unmarked = list(marks.unmarked_packed())
    assert unmarked == [d for i, d in enumerate(digests[:30]) if i not in (1, 2, 3)]
    links = DigestList(dirs, [digests[7], missing, digests[5], digests[7]])
    assert list(links) == [digests[5], digests[7], missing] and len(links) == 3
    assert digests[7] in links and missing in links and digests[6] not in links


def test_unmarked_links_leave_out_marked_blobs_and_say_so() -> None:
    digests = sorted(_digest(n) for n in range(10))
    dirs = _dirs(digests)
    marks = DigestMarks(dirs)
    marks.add(digests[2])
    links = DigestList(dirs, [digests[2], digests[5], digests[1]])
    assert links.packed_only()
    assert links.unmarked(marks) == ([digests[1], digests[5]], True)
    assert DigestList(dirs, [digests[5]]).unmarked(marks) == ([digests[5]], False)
    assert not DigestList(dirs, [_digest(99)]).packed_only()
