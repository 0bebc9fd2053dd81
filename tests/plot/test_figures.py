"""Every figure esmeperf draws (each PNG it writes, each chart of the HTML reports) is checked
from its own artists by one helper, figure_check.layout_problems: no legend over data or text,
no text off the canvas or over its axes' frame. And what issue 33 asked of each."""

from __future__ import annotations

import math

import pytest
from figure_check import layout_problems
from saved_runs import SavedRun, surge_run, write_go_run

from esmeperf.plot.figures import (
    SATURATED_HATCH,
    capacity_figure,
    overlay_figure,
    run_figure,
    scatter_figure,
    timeline_charts,
)
from esmeperf.results.report import run_title
from esmeperf.results.rundata import load_run


@pytest.fixture(scope="module")
def surge(tmp_path_factory: pytest.TempPathFactory) -> SavedRun:
    return surge_run(tmp_path_factory)


def test_a_real_runs_png_has_every_panel_clear(surge):
    run = load_run(surge.folder)
    fig = run_figure(run.rows, run_title(run.summary), run.summary)
    assert layout_problems(fig) == []
    top, latency, arrivals, right, cohorts = fig.axes
    assert latency.get_yscale() == "log" and "right axis" in right.get_ylabel()
    # The cohorts' legend sits under their names, clear of every bar and label.
    fig.canvas.draw()
    legend = cohorts.get_legend().get_window_extent()
    assert legend.y1 < cohorts.get_window_extent().y0
    assert [t.get_text() for t in cohorts.get_legend().get_texts()] == [
        "sent before the surge", "sent during the surge", "sent after the surge"]
    # The tallest bar's label has room under the frame (the check above holds it inside).
    tallest = max(p.get_height() for p in cohorts.patches)
    assert cohorts.get_ylim()[1] >= tallest * 1.15


def test_the_html_reports_charts_are_clear_and_line_up(surge):
    run = load_run(surge.folder)
    charts = timeline_charts(run.rows, run.summary)
    assert [c.key for c in charts] == ["rates", "people", "arrivals", "latency", "cohorts"]
    for chart in charts:
        assert layout_problems(chart.figure) == [], chart.key
    # The time axes line up one under the other: same left and right edges, same seconds.
    timed = [c for c in charts if c.key != "cohorts"]
    for chart in timed:
        chart.figure.canvas.draw()
    edges = {(round(c.axes.get_window_extent().x0), round(c.axes.get_window_extent().x1))
             for c in timed}
    assert len(edges) == 1 and len({c.axes.get_xlim() for c in timed}) == 1


def saturated_rows():
    """A series whose last two seconds are partial (the stop, then late echoes) and whose
    generator was saturated from the third second on."""
    rows = []
    for i, fraction in enumerate([0.4, 1, 1, 1, 1, 0.5, 0]):
        rows.append({"second": 1700000000 + i, "participants": 10 * i, "chats": 10 * i,
                     "sent": 100 * i if fraction else 0, "delivered": 100 * i,
                     "rtt_p50_ms": 0.5, "rtt_p99_ms": 40.0 * i + 1, "load_fraction": fraction,
                     "generator_cpu": 1.0 if i >= 3 else 0.3})
    return rows


def test_saturated_seconds_leave_the_partial_shading_visible():
    summary = {"settings": {"sci_ms": 10, "cpi_ms": 20, "smi_ms": 100}, "end_reason": "duration",
               "generator_health": {"suspect": True, "reasons": ["generator CPU"]}}
    fig = run_figure(saturated_rows(), run_title(summary), summary)
    assert layout_problems(fig) == []
    assert fig.get_suptitle().endswith("generator SUSPECT")
    top = fig.axes[0]
    gray = [p for p in top.patches if not p.get_hatch()]
    hatched = [p for p in top.patches if p.get_hatch()]
    # Seconds 5 and 6 are both partial and saturated: the gray is drawn under a hatch whose
    # face is empty, so it still shows, and the legend's gray entry points at something.
    assert [(p.get_x(), p.get_x() + p.get_width()) for p in gray] == [(-0.5, 0.5), (4.5, 6.5)]
    assert [(p.get_x(), p.get_x() + p.get_width()) for p in hatched] == [(2.5, 6.5)]
    assert hatched[0].get_facecolor()[3] == 0 and hatched[0].zorder > gray[0].zorder
    assert hatched[0].get_edgecolor()[:3] == pytest.approx(
        tuple(int(SATURATED_HATCH[i:i + 2], 16) / 255 for i in (1, 3, 5)))
    texts = [t.get_text() for t in top.get_legend().get_texts()]
    assert "generator CPU saturated" in texts
    assert "partial second (start, stop): its value hollow, not joined" in texts


def test_a_go_test_runs_png_is_clear(tmp_path):
    write_go_run(tmp_path / "go", 1700000100, {1700000000 + s: 90 * s for s in range(20)})
    run = load_run(tmp_path / "go")
    fig = run_figure(run.rows, "t", run.summary)
    assert layout_problems(fig) == []
    assert "ESME's Go test does not measure it" in fig.axes[1].texts[0].get_text()


def test_overlay_legend_beside_the_lines(tmp_path):
    runs = []
    for index in range(3):
        folder = tmp_path / f"0{index + 1}_sci10_cpi20_smi100_r{index + 1}"
        write_go_run(folder, 1700000100, {1700000000 + s: (100 + 10 * index) * min(s, 5)
                                          for s in range(30)})
        runs.append(load_run(folder))
    fig = overlay_figure(runs, "sci 10 cpi 20 smi 100 ms: 3 run(s)")
    assert layout_problems(fig) == []
    fig.canvas.draw()
    assert fig.axes[0].get_legend().get_window_extent().x0 > fig.axes[0].bbox.x1


@pytest.mark.parametrize("chats", [[4, 4, 4], [3, 17, 250]])
def test_scatter_ticks_are_whole_numbers(tmp_path, chats):
    runs = []
    for index, count in enumerate(chats):
        summary = write_go_run(tmp_path / f"r{index}", 1700000100,
                               {1700000000 + s: 10 + index for s in range(5)},
                               smi=("100ms", "1s")[index % 2])
        run = load_run(summary)
        run.summary["chats_count"] = count
        runs.append(run)
    fig = scatter_figure(runs)
    assert layout_problems(fig) == []
    ax = fig.axes[0]
    lows, highs = ax.get_xlim(), ax.get_ylim()
    ticks = [t for t in ax.get_xticks() if lows[0] <= t <= lows[1]] + [
        t for t in ax.get_yticks() if highs[0] <= t <= highs[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)


def capacity(knee: int | None, steps: list[int], limited_by: str = "target",
             generator_limited: int | None = None) -> dict:
    rows = []
    for chats in steps:
        passed = knee is None or chats <= knee
        rows.append({"chats": chats, "intended_rate": chats * 10.0,
                     "achieved_rate": chats * 10.0 * (1 if passed else 0.8),
                     "rtt_p99_ms": 5.0 if passed else 1500.0, "passed": passed,
                     "generator_limited": chats == generator_limited, "verdict":
                     "pass" if passed else "FAIL", "folder": f"0{len(rows) + 1}_chats{chats}"})
    best = max((r for r in rows if r["passed"]), key=lambda r: r["chats"], default=None)
    return {"steps": rows, "criteria": {"max_p99_ms": 1000.0}, "smi_ms": 100.0,
            "knee_chats": knee if limited_by == "target" else None,
            "knee_rate": knee * 10.0 if knee and limited_by == "target" else None,
            "highest_passing_chats": best["chats"] if best else None,
            "highest_passing_rate": best["achieved_rate"] if best else None,
            "limited_by": limited_by}


@pytest.mark.parametrize("case", [
    capacity(480, [16, 32, 64, 128, 256, 512, 384, 448, 480]),  # the knee near the right edge
    capacity(16, [16, 32, 24, 20, 18, 17]),  # near the left edge
    capacity(None, [16, 32, 64, 128], limited_by="none"),  # a lower bound at the right edge
    capacity(None, [16, 32, 64], limited_by="generator", generator_limited=64),
])
def test_capacity_png_doubles_on_a_log2_axis_and_keeps_its_labels_inside(case):
    fig = capacity_figure(case)
    assert layout_problems(fig) == []
    top, bottom = fig.axes
    assert top.get_xscale() == "log" and top.xaxis.get_transform().base == 2
    low, high = bottom.get_xlim()
    shown = [t.get_text() for t in bottom.xaxis.get_ticklabels()
             if low <= t.get_position()[0] <= high]
    assert shown and all(math.log2(int(text)).is_integer() for text in shown)
