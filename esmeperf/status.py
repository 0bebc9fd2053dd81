"""Exit statuses: the codes, and what each means for each command.

One text per command and status, written once here: --help prints it (`help_text`), the man
pages' EXIT STATUS sections are made from it (esmeperf/cli/manpages.py), and the README's table
must be `markdown_table("esmeperf")` (tests/cli/test_pages.py). Text in `backquotes` is a
flag, key or file name: bold in a man page, code in the README, plain in --help. Standard
library only: the man pages are built where nothing else is installed.
"""

from __future__ import annotations

import textwrap
from enum import IntEnum


class ExitStatus(IntEnum):
    """How a run ended, as the process exit code."""

    OK = 0  # ended as planned (duration reached) with every gate passed
    ERROR = 1  # stopped by the first error in any worker
    USAGE = 2  # bad command line or config; nothing ran
    THRESHOLD = 3  # ended as planned but a gate (--max-p99, ...) failed
    INTERRUPTED = 130  # stopped by SIGINT or SIGTERM


# What each command's statuses mean, in the order they are listed.
MEANINGS: dict[str, tuple[tuple[int, str], ...]] = {
    "esmeperf": (
        (ExitStatus.OK, "the run ended as planned and every gate passed; with "
         "`--find-capacity`, the search ran to its end, with a knee or without"),
        (ExitStatus.ERROR, "the run was stopped by its first error (a worker's, a stall, a lost "
         "shard; results written), or the embedded target could not start (nothing ran)"),
        (ExitStatus.USAGE, "a usage or configuration error, found before any load: a bad flag "
         "or value, `config.json`, `--out` or `--summary-export`; an organizer sign-in the "
         "target rejected; a target URL nothing answers at; a `--metrics-port` in use; an "
         "unreachable Dask scheduler; `--max-participants` over the open-files limit; a flag "
         "this platform cannot serve. One line on stderr names the flag, file, account or URL "
         "(a `config.json` with several mistakes: a line each); no load was sent and no result "
         "file written"),
        (ExitStatus.THRESHOLD, "the run ended but a gate failed (`--max-p99`, "
         "`--min-delivered-ratio`, `--min-rate`, `--fail-on-suspect`), or `--abort-on-fail` "
         "stopped it when one failed over the last 10 s (results written)"),
        (ExitStatus.INTERRUPTED, "interrupted by SIGINT or SIGTERM: a run that had started "
         "was stopped gracefully and its results written (a sweep starts no further run); "
         "before the run started (flags being checked, the embedded target or the Dask "
         "cluster starting), nothing was written"),
    ),
    "esmeperf-compare": (
        (0, "nothing regressed"),
        (2, "a bad flag; a BASE or NEW that is missing, holds no run (no "
         "`*_performance_test_summary.json` or `*_message_rates.json`, no "
         "`NN_sci*_cpi*_smi*_r*` run directories) or a corrupt one (the file is named); sides "
         "that share no parameter set; or a `--png` that cannot be written. One line on "
         "stderr"),
        (3, "at least one figure regressed; the last line names each one with its change"),
        (4, "nothing regressed, but at least one figure was inconclusive (worse, but within "
         "the runs' noise or with a suspect generator); the last line names each one with its "
         "change and why"),
    ),
    "esmeperf-plot": (
        (0, "every PNG was drawn; their paths are printed, one a line"),
        (2, "a bad flag; a PATH that is missing or not a readable esmeperf or ESME "
         "performance-test run (a corrupt file is named); or an output that cannot be "
         "written: `-o` in a missing or read-only directory, a name that does not end in .png, "
         "or one file for two PNGs (`--overlay` with `--scatter`, or several runs: give `-o` a "
         "directory). One line on stderr; nothing drawn"),
    ),
    "esmeperf-target": (
        (0, "stopped by SIGTERM, SIGINT or end of file on `--watch-fd`; the `--ready-file` is "
         "removed on the way out"),
        (1, "a port could not be bound (the message names the address, the port and the API)"),
        (2, "bad command-line input, including a `--ready-file` whose directory is missing or "
         "not writable (checked before any port is bound) or that could not be written once "
         "listening. One line on stderr"),
    ),
}


def plain(text: str) -> str:
    """The text as --help shows it: no backquotes."""
    return text.replace("`", "")


def help_text(command: str, width: int = 78) -> str:
    """The "exit status:" block of a command's --help epilog (for a raw formatter)."""
    lines = ["exit status:"]
    for status, text in MEANINGS[command]:
        lines += textwrap.wrap(plain(text), width, initial_indent=f"  {status:<5}",
                               subsequent_indent=" " * 7, break_on_hyphens=False)
    return "\n".join(lines)


def markdown_table(command: str) -> str:
    """The statuses as the README's table."""
    rows = [f"| {status} | {text} |" for status, text in MEANINGS[command]]
    return "\n".join(["| status | meaning |", "|---|---|", *rows])


EXIT_STATUS_HELP = help_text("esmeperf")
