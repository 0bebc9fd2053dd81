"""The man pages, built as `pip install .` builds them: setup.cfg's specs, argparse-manpage.

tests/test_readme.py builds the real wheel from a copy of the checkout and runs `man` and
`lexgrog` on the result; these tests check the pages' content quickly, in process.
"""

from __future__ import annotations

import configparser
import functools
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from argparse_manpage.manpage import Manpage
from build_manpages.build_manpages import parse_manpages_spec

from esmeperf.cli import manpages
from esmeperf.cli.main import CONFIG_HELP
from esmeperf.status import MEANINGS, ExitStatus, help_text, markdown_table, plain

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


@functools.cache
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


# -- one source: --help, the pages and the README say the same ---------------------------------
def unroff(text: str) -> str:
    """A page's text as a reader sees it: fonts and escapes gone."""
    return re.sub(r"\\f[BIR]", "", text).replace("\\-", "-").replace("\\e", "\\")


def help_of(command: str) -> str:
    module = {"esmeperf": "esmeperf.cli.main", "esmeperf-compare": "esmeperf.compare.command",
              "esmeperf-plot": "esmeperf.plot.command", "esmeperf-target": "esmeperf.target.cli"}
    return importlib.import_module(module[command]).get_parser().format_help()


@pytest.mark.parametrize("command", manpages.PAGES)
def test_help_and_man_page_give_the_same_exit_statuses(command):
    statuses = section(pages()[command], "EXIT STATUS")
    entries = re.findall(r"^\.TP\n\.B (\d+)\n(.+)$", statuses, re.M)
    assert [(int(status), unroff(text)) for status, text in entries] == [
        (int(status), plain(text[:1].upper() + text[1:] + "."))
        for status, text in MEANINGS[command]]
    shown = help_of(command)
    if help_text(command) in shown:  # word for word, as esmeperf's and the target's
        return
    # esmeperf-compare's and esmeperf-plot's epilogs are a sentence of their own (their
    # modules' parsers): at least the same statuses.
    listed = re.findall(r"(?:[Ee]xit status:|;) (\d+) ", " ".join(shown.split()))
    assert sorted(map(int, listed)) == [status for status, _ in MEANINGS[command]], shown


def test_esmeperf_help_lists_the_exit_statuses_as_written():
    shown = help_of("esmeperf")
    assert help_text("esmeperf") in shown
    block = shown.split("exit status:\n", 1)[1].split("\n\n", 1)[0]
    assert max(map(len, block.splitlines())) <= 78
    # What the issue found missing: every way to exit 2 before any load, and 130 honest.
    two = " ".join(dict(MEANINGS["esmeperf"])[ExitStatus.USAGE].split())
    for case in ("sign-in the target rejected", "a target URL nothing answers at",
                 "`--metrics-port` in use", "`config.json`"):
        assert case in two, case
    assert "`--abort-on-fail`" in dict(MEANINGS["esmeperf"])[ExitStatus.THRESHOLD]
    assert "before the run started" in dict(MEANINGS["esmeperf"])[ExitStatus.INTERRUPTED]


def test_readme_exit_status_table_is_status_py_s():
    section_text = README.split("\n## Exit status\n", 1)[1].split("\n## ", 1)[0]
    table = re.search(r"^\| status \| meaning \|\n(?:\|.*\n)+", section_text, re.M)
    assert table, section_text
    assert table.group(0).rstrip("\n") == markdown_table("esmeperf"), (
        "README.md's exit status table must read:\n" + markdown_table("esmeperf"))
    # ... and the statuses esmeperf-compare adds are named under it.
    extra = [status for status, _ in MEANINGS["esmeperf-compare"]
             if status not in dict(MEANINGS["esmeperf"])]
    assert extra == [4] and "`esmeperf-compare` adds 4" in section_text


def test_files_names_every_file_a_run_writes():
    files = section(pages()["esmeperf"], "FILES")
    # Every result file name the code writes, wherever it is defined.
    written = {name for path in (ROOT / "esmeperf").rglob("*.py")
               for name in re.findall(r'"(_performance_test_\w+\.\w+)"', path.read_text())}
    assert "_performance_test_latency.hlog" in written
    for suffix in written:
        assert f"\n.I <unix>{suffix}\n" in files, suffix
    # The README's table of files is a part of the page's.
    readme = set(re.findall(r"^\| `(<unix>_performance_test_\S+)` \|", README, re.M))
    assert readme and readme <= {name for name, _ in manpages.RESULT_FILES}, readme
    for key in re.findall(r"^  (\w+) ", CONFIG_HELP, re.M):
        assert f"\n.B {key}\n" in files, key


def test_see_also_names_every_other_page():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    built = [Path(output).stem for output in
             parse_manpages_spec(cfg["build_manpages"]["manpages"])]
    assert sorted(built) == sorted(manpages.PAGES)
    for name, page in pages().items():
        named = re.findall(r"^\.BR (\S+) \(1\)", section(page, "SEE ALSO"), re.M)
        assert [unroff(n) for n in named] == [p for p in manpages.PAGES if p != name], name


@pytest.mark.parametrize("command", manpages.PAGES)
def test_sections_come_once_each_in_man_pages_order(command):
    headings = re.findall(r"^\.SH (.+)$", pages()[command], re.M)
    assert len(headings) == len(set(headings)), headings  # no include file repeats one of ours
    tail = [h for h in headings if h.lower() in ("exit status", "environment", "files",
                                                  "examples", "see also")]
    assert tail == headings[-len(tail):]  # after every option group and the page's own
    order = ["EXIT STATUS", "ENVIRONMENT", "FILES", "EXAMPLES", "SEE ALSO"]
    assert tail == [h for h in order if h in tail]
    assert tail[0] == "EXIT STATUS" and tail[-1] == "SEE ALSO" and "EXAMPLES" in tail
