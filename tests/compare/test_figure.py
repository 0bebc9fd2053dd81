"""esmeperf-compare's PNG and HTML page, on a real run against a copy of its files: the PNG
clear (figure_check), its legend naming the runs' directories, the partial seconds not joined,
the log axis with no linear tick; the page with the verdict first and every figure's row."""

from __future__ import annotations

import pytest
from figure_check import layout_problems
from page_reader import Parsed
from saved_runs import SavedRun, copy_run, surge_run

from esmeperf.compare.command import main as compare
from esmeperf.compare.figure import comparison_figure, side_names
from esmeperf.compare.rules import compare as judge
from esmeperf.results.rundata import load_run


@pytest.fixture(scope="module")
def surge(tmp_path_factory: pytest.TempPathFactory) -> SavedRun:
    return surge_run(tmp_path_factory)


def test_the_comparison_png_names_the_runs_and_is_clear(surge, tmp_path):
    base = load_run(surge.folder)
    new = load_run(copy_run(surge, tmp_path / "tuesday"))
    fig = comparison_figure([("", judge([base], [new]))], [([base], [new])],
                            side_names(surge.folder.name, "tuesday"))
    assert layout_problems(fig) == []
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        f"{surge.folder.name} (base)", "tuesday (new)"]
    left, right = fig.axes
    # The partial first and last seconds are hollow markers, not joined to the line.
    partial = [i for i, r in enumerate(base.rows) if float(r["load_fraction"]) < 1]
    line = left.get_lines()[0]
    assert not set(line.get_xdata()) & set(partial)
    assert set(left.get_lines()[1].get_xdata()) == set(partial)
    # A log axis all the way: no linear "0" tick (symlog's) beside its powers of ten.
    fig.canvas.draw()
    assert right.get_yscale() == "log" and right.get_ylim()[0] > 0
    low, high = right.get_ylim()
    labels = [t.get_text() for t in right.get_yticklabels() if low <= t.get_position()[1] <= high]
    assert labels and "0" not in labels and all("10^" in t for t in labels)


def test_compare_html_puts_the_verdict_first_and_every_row(surge, tmp_path, capsys):
    new = copy_run(surge, tmp_path / "again")
    page_path = tmp_path / "pages" / "compare.html"
    page_path.parent.mkdir()
    assert compare([str(surge.folder), str(new), "--html", str(page_path)]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith(f"verdict: no regression\nhtml: {page_path}")
    page = Parsed(page_path.read_text())
    assert page.order[:2] == ["answer", "runs"]
    # Each side as its own table gave it: the generator's health and the steady rate.
    health = "SUSPECT" if surge.summary["generator_health"]["suspect"] else "ok"
    rate = f"steady rate {surge.summary['steady_rate']:.1f} msg/s"
    assert page.text("answer") == (
        "Verdict: no regression Exit status 0: nothing regressed. "
        f"base {surge.folder.name}: generator {health}, {rate} "
        f"new again: generator {health}, {rate}")
    assert f"base  {surge.folder.name}: generator {health}, {rate}" in out.splitlines()
    rows = page.tables["set0"]
    assert rows[0][:4] == ["figure", "base", "new", "change"]
    p99 = surge.summary["latency"]["message_rtt"]["p99_ms"]
    assert ["round trip p99 (ms)", f"{p99:.3f}", f"{p99:.3f}", "+0.000"] == rows[3][:4]
    assert [row[0] for row in rows[1:]] == [line.split("  ")[0] for line in out.splitlines()
                                            if line.startswith(("round trip", "achieved",
                                                                "delivered", "errors",
                                                                "participants", "chats"))]
    assert all(row[-1] for row in rows[1:])  # every row has its verdict
    # Each run linked from the page's place to its own report (the copy has none: its folder).
    links = [ref for ref in page.refs if not ref.startswith("#")]
    assert len(links) == 2
    assert (page_path.parent / links[0]).resolve() == surge.report.resolve()
    assert (page_path.parent / links[1]).resolve() == new.resolve()


@pytest.mark.parametrize("name,error", [
    ("compare.htm", "--html {path}: not a .html file name"),
    ("missing/compare.html", "--html {path}: no such directory: {folder}"),
])
def test_compare_html_refuses_a_path_it_cannot_write(surge, tmp_path, capsys, name, error):
    path = tmp_path / name
    assert compare([str(surge.folder), str(surge.folder), "--html", str(path)]) == 2
    assert capsys.readouterr() == ("", "esmeperf-compare: error: " + error.format(
        path=path, folder=path.parent) + "\n")
    assert not path.exists()
