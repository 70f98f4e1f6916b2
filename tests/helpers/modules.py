"""The modules a ``regtui`` command loads, listed by a fresh interpreter that runs it: what the
import guards of the command line read."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

WORKTREE = Path(__file__).resolve().parents[2]

RUN_AND_LIST = """
import sys
from tui.cli import main
try:
    code = main(sys.argv[2:])
except SystemExit as exit:
    code = exit.code
stand_in = not hasattr(sys.modules.get("httpx._main"), "__file__")
with open(sys.argv[1], "w") as out:  # (tui.client._quiet_httpx's stand-in is no import)
    out.write("\\n".join(sorted(n for n in sys.modules if not (stand_in and n == "httpx._main"))))
sys.exit(code)
"""


def modules_of(tmp_path: Path, *argv: str) -> set[str]:
    listing = tmp_path / "modules.txt"
    done = subprocess.run(
        [sys.executable, "-c", RUN_AND_LIST, str(listing), *argv],
        cwd=WORKTREE,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return set(listing.read_text().split())
