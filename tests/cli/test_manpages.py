"""The man pages, built as `pip install .` builds them: setup.cfg's specs, argparse-manpage.

tests/test_readme.py builds the real wheel from a copy of the checkout and runs `man` and
`lexgrog` on the result; these tests check the pages' content quickly, in process.
"""

from __future__ import annotations

import configparser
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from argparse_manpage.manpage import Manpage
from build_manpages.build_manpages import parse_manpages_spec

from esmeperf.cli.main import CONFIG_HELP
from esmeperf.status import ExitStatus

ROOT = Path(__file__).resolve().parents[2]


def pages() -> dict[str, str]:
    """Each page's roff text, by command name, from setup.cfg's [build_manpages] specs."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    built = {}
    previous = os.getcwd()
    os.chdir(ROOT)  # the specs' include= paths are relative to the project root
    try:
        for output, data in parse_manpages_spec(cfg["build_manpages"]["manpages"]).items():
            module = importlib.import_module(data["import_from"])
            parser = getattr(module, data["objname"])()
            built[Path(output).stem] = str(Manpage(parser, _data=dict(data)))
    finally:
        os.chdir(previous)
    return built


def section(page: str, name: str) -> str:
    match = re.search(rf"^\.SH {re.escape(name)}\n(.*?)(?=^\.SH |\Z)", page, re.M | re.S)
    assert match, f"no {name} section"
    return match.group(1)


def test_every_page_with_the_standard_sections():
    built = pages()
    assert sorted(built) == ["esmeperf", "esmeperf-compare", "esmeperf-plot", "esmeperf-target"]
    for name, page in built.items():
        assert section(page, "NAME").startswith(name.replace("-", "\\-") + " \\- "), name
        for heading in ("SYNOPSIS", "DESCRIPTION", "EXIT STATUS", "EXAMPLES", "SEE ALSO"):
            section(page, heading)
        assert "COMMENTS" not in page  # the --help epilog went to proper sections
        assert "\\-\\-version" in page


def test_esmeperf_page_lists_every_exit_status_and_config_key():
    page = pages()["esmeperf"]
    statuses = section(page, "EXIT STATUS")
    assert re.findall(r"^\.B (\d+)$", statuses, re.M) == [str(int(s)) for s in ExitStatus]
    files = section(page, "FILES")
    for key in re.findall(r"^  (\w+) ", CONFIG_HELP, re.M):
        assert f".B {key}" in files, key
    for text in ("\\-sci", "\\-\\-duration", "\\-\\-processes", "\\-\\-cluster"):
        assert text in page, text


@pytest.mark.parametrize(("name", "codes"), [("esmeperf-plot", ["0", "2"]),
                                             ("esmeperf-compare", ["0", "2", "3", "4"]),
                                             ("esmeperf-target", ["0", "1", "2"])])
def test_tool_pages_list_their_exit_statuses(name, codes):
    assert re.findall(r"^\.B (\d+)$", section(pages()[name], "EXIT STATUS"), re.M) == codes


def test_pages_build_without_the_run_time_dependencies():
    # The isolated build environment has setuptools and argparse-manpage only.
    blocked = ("requests", "websocket", "matplotlib", "aiohttp", "hdrh", "dask", "distributed",
               "numpy", "urllib3")
    code = (
        "import importlib.abc, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        f"        if name.split('.')[0] in {blocked!r}:\n"
        "            raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from esmeperf.cli import manpages\n"
        "for make in (manpages.esmeperf, manpages.esmeperf_plot, manpages.esmeperf_target,\n"
        "             manpages.esmeperf_compare):\n"
        "    make().format_help()\n"
        "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.stdout.strip() == "ok", done.stderr
