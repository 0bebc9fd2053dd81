"""Command lines: the one argparse base every esmeperf command (and the embedded target's) uses.

Standard library only: the man pages are built from the parsers where no run-time dependency
is installed.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

from .status import ExitStatus


class Parser(argparse.ArgumentParser):
    """argparse that reports bad input in one line, exit status 2 (usage stays in --help)."""

    def error(self, message: str) -> NoReturn:
        self.exit(ExitStatus.USAGE, f"{self.prog}: error: {message} (see --help)\n")
