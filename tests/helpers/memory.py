"""A process's own peak memory, for probes run as child processes."""

from __future__ import annotations

import resource

__all__ = ["peak_kib"]


def peak_kib() -> int:
    """This process's own peak resident memory in KiB: ``VmHWM`` of its address space.

    Not ``ru_maxrss``: Linux carries that over an exec from the process that started this one,
    so a probe started by a pytest worker of 1 GiB reports at least 1 GiB whatever it used
    itself, and a growth measured with it can read as zero."""
    try:
        with open("/proc/self/status") as status:
            lines = [line for line in status if line.startswith("VmHWM:")]
    except OSError:  # not Linux: ru_maxrss is this process's own there
        lines = []
    if lines:
        return int(lines[0].split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
