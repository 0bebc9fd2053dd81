"""The man pages argparse-manpage builds from the three parsers at install time."""

from __future__ import annotations

import pytest
from argparse_manpage.manpage import Manpage

from esmeperf.cli import get_parser as esmeperf_parser
from esmeperf.plot import get_parser as plot_parser
from esmeperf.target.cli import get_parser as target_parser


def test_esmeperf_page_lists_exit_statuses_and_config_keys():
    page = str(Manpage(esmeperf_parser()))
    assert page.startswith(".TH ESMEPERF")
    for text in ("130", "usage or configuration error", "organizer_password", "event_id",
                 "\\-sci", "\\-\\-duration", "\\-\\-processes", "\\-\\-cluster"):
        assert text in page, text


@pytest.mark.parametrize(("parser", "words"), [
    (plot_parser, ("\\-\\-overlay", "\\-\\-scatter")),
    (target_parser, ("\\-\\-messenger\\-port", "\\-\\-fail\\-signup\\-after")),
])
def test_tool_pages(parser, words):
    page = str(Manpage(parser()))
    for text in words:
        assert text in page, text
