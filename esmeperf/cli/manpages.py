"""The parsers the man pages are built from (setup.cfg's [build_manpages]).

A page is its command's own parser without the --help epilog: the exit statuses and the
config.json keys that the epilog lists go to proper sections (EXIT STATUS, FILES), with EXAMPLES
and SEE ALSO, from docs/man/*.inc. Only the standard library is imported here and by the
parsers, so the pages build in an isolated build environment where the run-time dependencies
are not installed.
"""

from __future__ import annotations

import argparse


def _page(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.epilog = None
    return parser


def esmeperf() -> argparse.ArgumentParser:
    """esmeperf(1)."""
    from .main import get_parser

    return _page(get_parser())


def esmeperf_plot() -> argparse.ArgumentParser:
    """esmeperf-plot(1)."""
    from ..plot.command import get_parser

    return _page(get_parser())


def esmeperf_compare() -> argparse.ArgumentParser:
    """esmeperf-compare(1)."""
    from ..compare.command import get_parser

    return _page(get_parser())


def esmeperf_target() -> argparse.ArgumentParser:
    """esmeperf-target(1)."""
    from ..target.cli import get_parser

    return _page(get_parser())
