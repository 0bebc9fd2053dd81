"""Command lines: the one argparse base every esmeperf command (and the embedded target's) uses.

Standard library only: the man pages are built from the parsers where no run-time dependency
is installed.
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Sequence
from typing import Any, NoReturn

from .status import ExitStatus

# How alike a mistyped flag and a real one must be (difflib's ratio) to be suggested:
# --duraton/--duration is 0.95, --quite/--quiet 0.86; --foo/--out (0.6) is no suggestion.
_ALIKE = 0.75


class Parser(argparse.ArgumentParser):
    """argparse that reports bad input in one line, exit status 2 (usage stays in --help), and
    names the flag a mistyped one was meant to be."""

    def parse_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                   namespace: Any = None) -> Any:
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}"
                       + self.did_you_mean(extras))
        return parsed

    def did_you_mean(self, extras: Sequence[str]) -> str:
        """"; did you mean --duration?" for the unknown flags among `extras` that are close to
        one of ours ("" when none is)."""
        flags = [flag for action in self._actions for flag in action.option_strings]
        guesses = []
        for arg in extras:
            typo = arg.split("=", 1)[0]
            if not typo.startswith(tuple(self.prefix_chars)) or typo in ("-", "--"):
                continue  # a value or a positional, not a flag
            close = difflib.get_close_matches(typo, flags, n=1, cutoff=_ALIKE)
            if close:
                guesses.append((typo, close[0]))
        if not guesses:
            return ""
        if len(guesses) == 1:
            return f"; did you mean {guesses[0][1]}?"
        return "; did you mean " + ", ".join(f"{flag} for {typo}" for typo, flag in guesses) + "?"

    def error(self, message: str) -> NoReturn:
        self.exit(ExitStatus.USAGE, f"{self.prog}: error: {message} (see --help)\n")


def positive_float(text: str) -> float:
    """A flag's positive, finite number (argparse's `type`): one line naming it otherwise."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return value
