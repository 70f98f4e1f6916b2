"""One way to turn any failure into a notification title and message."""

from __future__ import annotations

from tui.client.errors import RegistryClientError
from tui.client.layers import LayerFormatError


class StorageSourceError(Exception):
    """The storage source cannot answer (a bucket out of reach, a collector already running,
    a registry writing): the message is one sentence for the operator.

    A storage backend (``tui.data.storage``) raises it; it lives here, below the data layer,
    so that :func:`describe_error` can name it without reaching up.
    """


def describe_error(error: BaseException) -> tuple[str, str]:
    """``(title, message)`` for a notification; never raises, never empty."""
    if isinstance(error, RegistryClientError):
        return error.title, str(error)
    if isinstance(error, StorageSourceError):
        return "Storage", str(error)
    if isinstance(error, LayerFormatError):
        return "Cannot read the layer", str(error)
    if isinstance(error, TimeoutError):
        return "Timed out", "The registry did not answer in time."
    if isinstance(error, OSError):
        return "System error", str(error) or type(error).__name__
    text = str(error) or type(error).__name__
    return "Unexpected error", f"{type(error).__name__}: {text}"
