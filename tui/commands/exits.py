"""The exit codes of every ``regtui`` command (imported by :mod:`tui.cli` before anything
else: nothing here imports a module)."""

EXIT_OK = 0
EXIT_ERROR = 1
"""An error: the registry's, the storage's, or a deletion that failed."""
EXIT_USAGE = 2
"""A mistake in the command line (or a policy), or a deletion nobody confirmed."""
EXIT_NOTHING_FOUND = 1
"""``find``, as grep: a search that finds nothing."""
EXIT_PLAN_NOT_EMPTY = 3
"""``prune --check``: the plan would change something."""
EXIT_INTERRUPTED = 128 + 2
"""Ctrl-C: what a shell reports for a process killed by SIGINT."""
EXIT_BROKEN_PIPE = 128 + 13
"""The reader of the output went away (``regtui du | head``): a shell's code for SIGPIPE."""
