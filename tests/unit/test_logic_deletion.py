"""The delete dialog's words: every tag, the indexes a platform manifest breaks, the subject."""

from __future__ import annotations

from tui.client import DeletePlan, Descriptor, Platform
from tui.client.models import OCI_INDEX, OCI_MANIFEST
from tui.logic.deletion import (
    GC_NOTE,
    DeleteContext,
    ParentIndex,
    SubjectRef,
    describe_delete,
    tags_phrase,
)

A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64
C = "sha256:" + "c" * 64


def plan(
    digest: str = A,
    media_type: str = OCI_MANIFEST,
    *,
    tags: tuple[str, ...] = (),
    children: tuple[Descriptor, ...] = (),
    referrers: tuple[Descriptor, ...] = (),
) -> DeletePlan:
    return DeletePlan("lib/app", digest, media_type, 500, tags, children, referrers)


def test_every_tag_is_listed_with_the_right_number() -> None:
    title, body = describe_delete(DeleteContext(plan(tags=("1.0", "latest"))))
    assert title == "Delete manifest aaaaaaaaaaaa?"
    assert "These 2 tags point at it and will ALL disappear:" in body
    assert "  • 1.0\n  • latest" in body
    assert body.endswith(GC_NOTE)
    _, one = describe_delete(DeleteContext(plan(tags=("latest",))))
    assert "This tag points at it and will disappear:" in one
    _, none = describe_delete(DeleteContext(plan()))
    assert "No tag points at it." in none


def test_a_platform_manifest_names_the_index_it_breaks() -> None:
    context = DeleteContext(
        plan(),
        parents=(ParentIndex(B, ("3.12", "latest"), Platform("linux", "amd64")),),
        indexes_checked=True,
    )
    title, body = describe_delete(context)
    assert title == "Delete the linux/amd64 manifest aaaaaaaaaaaa?"
    assert "BREAKS that index" in body
    assert f"  • index {B}\n    Tagged 3.12 and latest; lists it as linux/amd64." in body


def test_a_lone_image_says_no_index_lists_it_but_an_index_does_not() -> None:
    _, body = describe_delete(DeleteContext(plan(), indexes_checked=True))
    assert "No index of this repository lists it" in body
    children = (Descriptor(OCI_MANIFEST, C, 10, Platform("linux", "arm64")),)
    _, index_body = describe_delete(
        DeleteContext(plan(media_type=OCI_INDEX, children=children), indexes_checked=True)
    )
    assert "No index" not in index_body
    assert f"Its 1 platform manifest stays, untagged:\n  • linux/arm64\n    {C}" in index_body


def test_a_referrer_names_its_subject_and_the_subjects_tags() -> None:
    context = DeleteContext(
        plan(),
        subject=SubjectRef(B, OCI_MANIFEST, ("latest",)),
        artifact_type="application/spdx+json",
        indexes_checked=True,
    )
    title, body = describe_delete(context)
    assert title == "Delete referrer aaaaaaaaaaaa?"
    assert "Type:       application/spdx+json" in body
    assert f"It refers to this manifest, which stays:\n  • {B}\n    Tagged latest." in body


def test_dangling_referrers_are_counted_in_words() -> None:
    referrers = (Descriptor(OCI_MANIFEST, C, 10, artifact_type="application/spdx+json"),)
    _, body = describe_delete(DeleteContext(plan(referrers=referrers)))
    assert f"1 referrer will point at nothing:\n  • application/spdx+json\n    {C}" in body


def test_tags_phrase() -> None:
    assert tags_phrase(()) == "untagged"
    assert tags_phrase(("a",)) == "tag a"
    assert tags_phrase(("a", "b")) == "tags a, b"
