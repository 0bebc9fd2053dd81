"""Reports: the plot tool on esmeperf's and ESME's own files, and sweeps with their report."""

from __future__ import annotations

import json
import os
import re
import struct

import pytest
from helpers import children
from saved_runs import write_go_run

from esmeperf.cli.main import main
from esmeperf.jobs.sweep import markdown_table
from esmeperf.plot.command import go_duration_ms, load_run
from esmeperf.plot.command import main as plot_main
from esmeperf.plot.figures import overlay_figure, run_figure


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def test_go_durations_parse():
    assert go_duration_ms("10ms") == 10
    assert go_duration_ms("1m30.5s") == 90_500
    assert go_duration_ms("2h0m0s") == 7_200_000


def test_plot_tool_reads_esme_go_output(tmp_path, capsys):
    rates = {1682935201 + s: 100 * s for s in range(30)}
    del rates[1682935210]  # Go leaves seconds without messages out
    summary = write_go_run(tmp_path / "go", 1682935400, rates)
    run = load_run(summary)
    assert run.params == {"sci": 10, "cpi": 20, "smi": 100}
    assert len(run.rows) == 30 and run.rows[9]["sent"] == 0  # zero-filled
    assert run.max_rate() == (2900, 255)
    assert plot_main([str(tmp_path / "go")]) == 0
    png = tmp_path / "go" / "1682935400_performance_test_rates.png"
    assert png_size(png) == (1000, 650)
    assert str(png) in capsys.readouterr().out


def test_plot_tool_overlay_and_scatter(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    paths = []
    for index, smi in enumerate(("100ms", "1s", "10s")):
        rates = {1700000000 + s: (index + 1) * 50 * min(s, 10) for s in range(20)}
        paths.append(str(write_go_run(tmp_path / f"r{index}", 1700000100 + index, rates, smi)))
    assert plot_main(["--overlay", *paths]) == 0
    assert plot_main(["--scatter", *paths]) == 0
    assert png_size(tmp_path / "overlay.png") == (1000, 500)
    assert png_size(tmp_path / "scatter.png") == (800, 550)


def test_plot_tool_rejects_unknown_input(tmp_path, capsys):
    stray = tmp_path / "notes.txt"
    stray.write_text("hello")
    assert plot_main([str(stray)]) == 2
    assert "not an esmeperf or ESME performance-test file" in capsys.readouterr().err


@pytest.mark.slow  # a sweep: two runs and their reports
def test_sweep_runs_the_matrix_and_reports(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status = main(["-q", "--out", "sweep", "-sci", "10", "-cpi", "100", "-smi", "100,250",
                   "--max-participants", "4", "--duration", "1.5s"])
    assert status == 0
    runs = sorted(p.name for p in (tmp_path / "sweep").iterdir() if p.is_dir())
    assert runs == ["01_sci10_cpi100_smi100_r1", "02_sci10_cpi100_smi250_r1"]
    for name in runs:  # summary, rates, series, PNG, .hlog and the HTML report
        assert len(list((tmp_path / "sweep" / name).glob("*_performance_test_*"))) == 6
    table = (tmp_path / "sweep" / "report.md").read_text().splitlines()
    assert len(table) == 4 and table[2].startswith("| 01_sci10_cpi100_smi100_r1 | 10 | 100 | 100 |")
    assert "| 4 (4) | 4 |" in table[3] and table[3].endswith("| duration | ok |")
    for row in table[2:]:  # the duration in seconds, to a tenth (1.5 s, give or take)
        assert re.fullmatch(r"1\.[4-9]", row.split(" | ")[4]), row
    assert (tmp_path / "sweep" / "scatter.png").exists()
    assert (tmp_path / "sweep" / "overlay_sci10_cpi100_smi250.png").exists()
    first = tmp_path / "sweep" / "01_sci10_cpi100_smi100_r1"
    # rates.png is the run's own PNG under a stable name: a link to it, not a second copy.
    drawn = next(first.glob("*_performance_test_rates.png"))
    assert (first / "rates.png").is_symlink() and os.readlink(first / "rates.png") == drawn.name
    assert png_size(first / "rates.png") == (1000, 650)
    assert not list((tmp_path / "sweep").glob("0*.png"))  # only runs match runs/0*
    # report.html beside report.md links every run's own report, which exists.
    page = (tmp_path / "sweep" / "report.html").read_text()
    links = re.findall(r'<a href="([^"]+)"', page)
    assert len(links) == 2 and all(link.endswith("_performance_test_report.html")
                                   and (tmp_path / "sweep" / link).is_file() for link in links)


def test_sweep_needs_a_duration(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "-smi", "100,1000"]) == 2
    assert "needs --duration" in capsys.readouterr().err


def files(root):
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*")
            if p.is_file()}


@pytest.mark.parametrize("old,named", [
    ("report.md", "report.md"),
    ("scatter.png", "scatter.png"),
    ("overlay_sci10_cpi100_smi250.png", "overlay_sci10_cpi100_smi250.png"),
    ("01_sci10_cpi100_smi100_r1/", "01_sci10_cpi100_smi100_r1/"),
    ("07_sci5_cpi20_smi1000_r3/ report.md scatter.png",
     "07_sci5_cpi20_smi1000_r3/, report.md and 1 more"),
])
def test_sweep_into_an_old_sweep_is_refused_before_any_run(tmp_path, capsys, old, named):
    out = tmp_path / "runs"
    for name in old.split():
        if name.endswith("/"):
            (out / name).mkdir(parents=True)
            (out / name / "1700000000_performance_test_summary.json").write_text("{}")
        else:
            out.mkdir(exist_ok=True)
            (out / name).write_text("old")
    before = files(tmp_path)
    status = main(["-q", "--out", str(out), "-sci", "10", "-cpi", "100", "-smi", "100,250",
                   "--duration", "1s"])
    assert status == 2
    assert capsys.readouterr() == ("", f"esmeperf: error: --out {out} already holds a sweep "
                                   f"({named}): give another directory, or move that one "
                                   "away\n")
    assert files(tmp_path) == before and sorted(os.listdir(out)) == sorted(
        n.rstrip("/") for n in old.split())
    assert children() == []  # no embedded target was started


def test_report_durations_are_rounded_seconds(tmp_path):
    rates = {1700000000 + s: 10 for s in range(5)}
    run = load_run(write_go_run(tmp_path / "go", 1700000100, rates))
    assert run.summary["participants_duration"] == "2m24.76s"
    row = markdown_table([run]).splitlines()[2]
    assert row == "| go | 10 | 20 | 100 | 144.8 | 262 | 255 | 10 |  |  |  |  |"


def test_overlay_legend_names_runs_and_parameters(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rates = {1700000000 + s: 100 for s in range(10)}
    for name in ("01_sci10_cpi20_smi100_r1", "02_sci10_cpi20_smi100_r2", "go"):
        write_go_run(tmp_path / name, 1700000100, rates)
    second = write_go_run(tmp_path / "go", 1700000200, rates)  # another run in the same place
    summary = json.loads(second.read_text())
    summary["participants_time_started"] = "2023-05-01T12:05:00.5+02:00"
    second.write_text(json.dumps(summary))
    paths = ["01_sci10_cpi20_smi100_r1", "02_sci10_cpi20_smi100_r2",
             "go/1700000100_performance_test_summary.json", "go"]
    assert plot_main(["--overlay", *paths]) == 0
    assert capsys.readouterr() == ("overlay.png\n", "")
    assert png_size(tmp_path / "overlay.png") == (1000, 500)
    legend = overlay_figure([load_run(tmp_path / p) for p in paths], "t").axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [
        "01_sci10_cpi20_smi100_r1", "02_sci10_cpi20_smi100_r2",  # the names say the parameters
        "go 2023-05-01 12:00:00: sci 10 cpi 20 smi 100 ms",
        "go 2023-05-01 12:05:00: sci 10 cpi 20 smi 100 ms"]
    assert not any(re.search(r"\b1700000\d{3}\b", t.get_text()) for t in legend.get_texts())


def esmeperf_rows():
    """A series as esmeperf writes it: a partial first and last second, echoes after the stop."""
    rows = []
    for i, (fraction, sent) in enumerate([(0.3, 40), (1, 900), (1, 1500), (1, 1500), (0.6, 700),
                                          (0, 0)]):
        people = min(150, 50 * i + 15)
        rows.append({"second": 1700000000 + i, "participants": people, "chats": people,
                     "sent": sent, "delivered": sent if i < 5 else 12, "organizer_received": sent,
                     "errors": 0, "missed": 0, "connections": people, "rtt_p50_ms": 0.3,
                     "rtt_p99_ms": 2.0 + i, "lateness_p99_ms": 11.0, "load_fraction": fraction})
    return rows


def test_run_png_reads_at_a_glance(tmp_path, capsys):
    fig = run_figure(esmeperf_rows(), "t")
    top, bottom, right = fig.axes
    assert top.get_ylim()[0] == 0 and right.get_ylim()[0] == 0
    assert bottom.get_yscale() == "log"  # p50 readable beside a p99 many times it
    lines = {line.get_label(): line for ax in fig.axes for line in ax.get_lines()
             if not line.get_label().startswith("_")}
    assert sorted(lines) == ["chats (150)", "delivered/s", "participants (150)",
                             "round trip p50", "round trip p99", "sent/s"]
    colours = [line.get_color() for line in lines.values()]
    assert len(set(colours)) == len(colours)  # one colour, one quantity, in both panels
    # The partial first and last seconds are not joined to the lines (no collapse drawn) ...
    assert list(lines["sent/s"].get_xdata()) == [1, 2, 3]
    assert list(lines["round trip p99"].get_xdata()) == [1, 2, 3]
    # ... but marked: shaded in both panels (0, and 4-5 as one span) and drawn as hollow
    # markers, on the left axis only: every rate is on it.
    assert [p.get_x() for p in top.patches] == [-0.5, 3.5] and len(bottom.patches) == 2
    markers = [line for line in top.get_lines() if line.get_label().startswith("_")]
    assert [list(m.get_xdata()) for m in markers] == [[0, 4, 5], [0, 4, 5]]
    assert all(m.get_fillstyle() == "none" for m in markers)
    # Participants and chats are gauges, joined through every second: no marker of theirs
    # can be taken for a rate.
    assert not [line for line in right.get_lines() if line.get_label().startswith("_")]
    band, line = lines["participants (150)"], lines["chats (150)"]
    assert list(band.get_xdata()) == list(range(6)) == list(line.get_xdata())
    # They coincide here: a wide pale band under a thin line.
    assert band.get_linewidth() > 3 * line.get_linewidth() and band.get_alpha() < 1
    texts = [t.get_text() for t in top.get_legend().get_texts()]
    assert "partial second (start, stop): its value hollow, not joined" in texts
    assert "right axis" in right.get_ylabel()

    run = tmp_path / "run"
    write_go_run(run, 1700000100, {1700000000 + s: 100 for s in range(10)})
    assert plot_main([str(run)]) == 0
    png = run / "1700000100_performance_test_rates.png"
    assert capsys.readouterr() == (f"{png}\n", "")
    assert png_size(png) == (1000, 650)
    go = run_figure(load_run(run).rows, "t")  # the Go test's rates: first and last are partial
    assert list(go.axes[0].get_lines()[0].get_xdata()) == list(range(1, 9))


def test_a_sweep_stops_at_a_run_refused_before_its_load(tmp_path, target, capsys):
    """A run refused before any load (here: the target rejects the organizer's password) would
    be refused in every run after it: the sweep stops there and exits 2, not 0."""
    config = tmp_path / "config.json"
    config.write_text(json.dumps({**target.config, "organizer_password": "wrong"}))
    out = tmp_path / "sweep"
    assert main(["-q", "--config", str(config), "--out", str(out), "--duration", "1s",
                 "-smi", "100,1000"]) == 2
    err = capsys.readouterr().err
    assert "sweep stopped at run 1 of 2" in err, err
    assert not (out / "02_sci10_cpi20_smi1000_r1").exists()
