"""Policy files: YAML read into a :class:`~regtui_retention.policy.Policy` (``regtui prune
--policy`` and the bundled registry's ``regtui.retention.policy``)."""

from __future__ import annotations

from pathlib import Path

import yaml

from regtui_retention.policy import Policy, PolicyError, policy_from_mapping

__all__ = ["MAX_POLICY_BYTES", "load_policy", "read_policy_file"]

MAX_POLICY_BYTES = 1 << 20


def read_policy_file(path: Path | str) -> tuple[str, Policy]:
    """The text of a YAML policy file and the policy it describes (PolicyError otherwise)."""
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_POLICY_BYTES + 1)
    except OSError as exc:
        raise PolicyError(f"{path}: {exc.strerror or exc}") from None
    if len(data) > MAX_POLICY_BYTES:
        raise PolicyError(f"{path}: larger than {MAX_POLICY_BYTES} bytes")
    text = data.decode("utf-8", errors="replace")
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{path}: not YAML: {' '.join(str(exc).split())}") from None
    try:
        return text, policy_from_mapping(doc)
    except PolicyError as exc:
        raise PolicyError(f"{path}: {exc}") from None


def load_policy(path: Path | str) -> Policy:
    """A policy from a YAML file (:func:`policy_from_mapping` says which keys)."""
    return read_policy_file(path)[1]
