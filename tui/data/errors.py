"""One way to turn any failure into a notification title and message.

It names the failures of the client and of the storage sources (``tui.data.storage``), so it
stands in the data layer, above both: ``tui.logic`` stays below every source of data.
"""

from __future__ import annotations

from tui.client.errors import RegistryClientError
from tui.client.layers import LayerFormatError
from tui.data.storage import StorageSourceError


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
