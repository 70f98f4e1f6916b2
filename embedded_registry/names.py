"""The OCI Distribution Spec's grammar for repository names, tags and digests.

Every request is checked here before a storage path is built from what it names: a name that
passes ``is_valid_name`` cannot contain ``..``, a leading ``/``, upper case or a component that
starts with ``_`` (the layout's own ``_layers``, ``_manifests`` and ``_uploads``).
"""

from __future__ import annotations

import re

from embedded_registry import errors

# A path component: lower-case alphanumerics, separated by one period, one or two underscores,
# or any number of dashes (the spec's and Distribution's reference grammar).
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
# Distribution's reference.NameTotalLengthMax.
NAME_MAX_LENGTH = 255

TAG_RE = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")

DIGEST_HEX_LENGTHS = {"sha256": 64, "sha512": 128}
DIGEST_RE = re.compile(r"(sha256):([a-f0-9]{64})|(sha512):([a-f0-9]{128})")

UPLOAD_ID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def is_valid_name(name: str) -> bool:
    """Whether ``name`` is a repository name of the spec, within Distribution's length limit."""
    return len(name) <= NAME_MAX_LENGTH and NAME_RE.fullmatch(name) is not None


def is_valid_tag(tag: str) -> bool:
    return TAG_RE.fullmatch(tag) is not None


def is_valid_digest(digest: str) -> bool:
    """Whether ``digest`` is ``sha256:<64 hex>`` or ``sha512:<128 hex>`` (lower-case hex)."""
    return DIGEST_RE.fullmatch(digest) is not None


def looks_like_digest(reference: str) -> bool:
    """Whether a manifest reference is meant as a digest (it has an algorithm prefix)."""
    return ":" in reference


def is_valid_upload_id(upload_id: str) -> bool:
    return UPLOAD_ID_RE.fullmatch(upload_id) is not None


def check_name(name: str) -> str:
    """Return ``name`` or raise NAME_INVALID."""
    if not is_valid_name(name):
        raise errors.name_invalid(name)
    return name


def check_digest(digest: str) -> str:
    """Return ``digest`` or raise DIGEST_INVALID."""
    if not is_valid_digest(digest):
        # Distribution answers with DIGEST_INVALID's own message, "provided digest did not
        # match uploaded content", which misleads when nothing was uploaded: same code and
        # status, a message that says what is wrong.
        raise errors.digest_invalid({"digest": digest}, message="invalid digest")
    return digest


def check_tag(tag: str) -> str:
    """Return ``tag`` or raise TAG_INVALID."""
    if not is_valid_tag(tag):
        raise errors.tag_invalid(tag)
    return tag


def check_reference(reference: str) -> str:
    """A manifest reference: a valid digest or a valid tag."""
    if looks_like_digest(reference):
        return check_digest(reference)
    return check_tag(reference)
