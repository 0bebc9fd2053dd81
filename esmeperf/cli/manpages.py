"""The parsers the man pages are built from (setup.cfg's [build_manpages]).

A page is its command's own parser without the --help epilog: the exit statuses and the
config.json keys that the epilog lists go to proper sections made here from the same texts
(EXIT STATUS from esmeperf/status.py, FILES from main.py's CONFIG_HELP and RESULT_FILES below,
SEE ALSO from PAGES), so --help and the page cannot drift; EXAMPLES, ENVIRONMENT and any
section of a page's own come from docs/man/*.inc. Only the standard library is imported here
and by the parsers, so the pages build in an isolated build environment where the run-time
dependencies are not installed.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from typing import Any

from ..status import MEANINGS

PAGES = ("esmeperf", "esmeperf-compare", "esmeperf-plot", "esmeperf-target")

# What a run writes in --out, `<unix>` being the Unix second of its end (tests/cli/test_pages.py
# checks these against results/summary.py's names and the README's table).
RESULT_FILES = (
    ("<unix>_performance_test_summary.json", "the summary: ESME's Go test's keys and formats, "
     "then esmeperf's (delivery, latencies, pacing, the generator's health, who limited the "
     "run, the first error with its traceback)"),
    ("<unix>_performance_test_message_rates.json", "messages sent per Unix second, as the Go "
     "test writes it"),
    ("<unix>_performance_test_series.csv", "one row per second: rates, gauges, latency "
     "percentiles, the generator's and the target's CPU and timing"),
    ("<unix>_performance_test_latency.hlog", "every latency as an HdrHistogram interval log, a "
     "second at a time (`esmeperf-compare` draws its noise from it)"),
    ("<unix>_performance_test_rates.png", "rates, participants and chats, and the latencies "
     "over time (not with `--no-plot`)"),
    ("<unix>_performance_test_capacity.png", "with `--find-capacity`: achieved against "
     "intended rate and round-trip p99, step by step"),
    ("<unix>_performance_test_report.html", "the run's (or the capacity search's) HTML "
     "report, one self-contained page made from the files above (not with `--no-report`)"),
)
SWEEP_FILES = (
    ("NN_sci<S>_cpi<C>_smi<M>_r<K>/", "a sweep's or `--repeat`'s runs, one directory each, "
     "holding the files above"),
    ("overlay_sci<S>_cpi<C>_smi<M>.png", "the repeats of one parameter set overlaid"),
    ("scatter.png", "maximum message rate against active chats, one point per run"),
    ("report.md", "a table of the runs"),
    ("report.html", "the sweep's HTML report (not with `--no-report`)"),
)

# Where the generated sections go among the include file's (man-pages(7)'s order); a section
# only the include file has (esmeperf-compare's FIGURES AND NOISE) comes before all of them.
_ORDER = ("exit status", "environment", "files", "examples", "see also")


def roff(text: str) -> str:
    """Plain text as roff: backslashes and hyphens escaped, `code` in bold."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return re.sub(r"`([^`]+)`", r"\\fB\1\\fR", text)


def _sentence(text: str) -> str:
    return roff(text[:1].upper() + text[1:] + ".")


def exit_status(command: str) -> str:
    """The EXIT STATUS section: status.py's texts, one tagged paragraph a status."""
    lines = []
    for status, text in MEANINGS[command]:
        lines += [".TP", f".B {int(status)}", _sentence(text)]
    return "\n".join(lines)


def see_also(command: str) -> str:
    """The SEE ALSO section: every other page of the project."""
    return ",\n".join(f".BR {roff(page)} (1)" for page in PAGES if page != command)


def _tagged(tag: str, text: str, font: str = "I") -> list[str]:
    return [".TP", f".{font} {roff(tag)}", roff(text)]


def files() -> str:
    """esmeperf's FILES section: config.json's keys (as --help lists them) and the results."""
    from .main import CONFIG_HELP

    lines = [".TP", ".B config.json",
             roff("ESME's own target configuration, read from `--config` or the current "
                  "directory; without one, the embedded target is started. Keys:"), ".RS"]
    for key, text in re.findall(r"^  (\w+) +(.+)$", CONFIG_HELP, re.M):
        lines += _tagged(key, text, "B")
    lines.append(".RE")
    for name, text in RESULT_FILES:
        lines += _tagged(name, text)
    lines += _tagged("PATH", "with `--summary-export PATH`: the summary again, byte for byte, "
                     "under a name that does not change from run to run (replaced if it exists)")
    for name, text in SWEEP_FILES:
        lines += _tagged(name, text)
    lines += [".PP", roff("All of them in `--out` (default: the current directory), created "
                          "0644 under the usual umask (022); a summary of the run is also "
                          "printed on standard output.")]
    return "\n".join(lines)


class _Sections(list[dict[str, Any]]):
    """argparse-manpage's extra sections (it keeps them as `parser._manpage` and appends the
    include file's), iterated in _ORDER whatever order they were added in."""

    def __iter__(self) -> Iterator[dict[str, Any]]:
        def rank(section: dict[str, Any]) -> int:
            heading = section["heading"]
            return _ORDER.index(heading) + 1 if heading in _ORDER else 0

        return iter(sorted(list.__iter__(self), key=rank))


def _page(parser: argparse.ArgumentParser, command: str,
          **more: str) -> argparse.ArgumentParser:
    parser.epilog = None
    sections = {"exit status": exit_status(command), "see also": see_also(command), **more}
    # Read by argparse_manpage.manpage.Manpage, which keeps a list it finds there.
    setattr(parser, "_manpage",  # noqa: B010 - not an attribute ArgumentParser declares
            _Sections({"heading": heading, "content": content}
                      for heading, content in sections.items()))
    return parser


def esmeperf() -> argparse.ArgumentParser:
    """esmeperf(1)."""
    from .main import get_parser

    return _page(get_parser(), "esmeperf", files=files())


def esmeperf_plot() -> argparse.ArgumentParser:
    """esmeperf-plot(1)."""
    from ..plot.command import get_parser

    return _page(get_parser(), "esmeperf-plot")


def esmeperf_compare() -> argparse.ArgumentParser:
    """esmeperf-compare(1)."""
    from ..compare.command import get_parser

    return _page(get_parser(), "esmeperf-compare")


def esmeperf_target() -> argparse.ArgumentParser:
    """esmeperf-target(1)."""
    from ..target.cli import get_parser

    return _page(get_parser(), "esmeperf-target")
