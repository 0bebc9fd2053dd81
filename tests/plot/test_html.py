"""A run's HTML report: written beside its files by every run (not with --no-report), the answer
first and then the issue's order, the summary's own numbers, hover values, nothing fetched from
anywhere, and built from the run's files alone: `esmeperf-plot --html` writes the same bytes."""

from __future__ import annotations

import html
import json
import os
import random
import re
import stat
from pathlib import Path

import pytest
from page_reader import Parsed
from saved_runs import SavedRun, surge_run, write_go_run

from esmeperf.cli.main import main
from esmeperf.measure.names import LATENCIES, WITH_UNCONFIRMED
from esmeperf.plot.command import main as plot_main
from esmeperf.plot.html import number, write_run_report
from esmeperf.results.series import SERIES_COLUMNS, csv_text
from esmeperf.verdict import words

MAX_BYTES = 1_500_000  # a 10-minute run's report


@pytest.fixture(scope="module")
def surge(tmp_path_factory: pytest.TempPathFactory) -> SavedRun:
    return surge_run(tmp_path_factory)


@pytest.fixture(scope="module")
def page(surge: SavedRun) -> Parsed:
    return Parsed(surge.report.read_text(encoding="utf-8"))


def test_a_run_writes_its_report_beside_its_files(surge):
    report = surge.report
    assert report.name == f"{surge.stem}_performance_test_report.html"
    assert f"  report                {report}\n" in surge.stdout  # the table lists it
    assert stat.S_IMODE(report.stat().st_mode) == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_the_answer_comes_first_then_the_issues_order(surge, page):
    assert page.order == ["answer", "settings", "charts", "latency", "surge", "errors",
                          "files"]
    s = surge.summary
    answer = page.text("answer")
    assert answer.startswith("Exit status 0: the run ended as planned and every gate passed")
    # A --stages run without --duration ends with its stages, and says so (issue 39).
    assert "Ended by duration: it ran its --stages to their end (4 s)." in answer
    health = "SUSPECT" if s["generator_health"]["suspect"] else "ok"
    assert f"Generator health: {health}" in answer
    for reason in s["generator_health"]["reasons"]:
        assert reason in answer
    who = s["attribution"]
    assert f"Limited by: {who['limited_by']} — {who['why']}" in answer
    if who["remedy"]:
        assert f"Remedy: {who['remedy']}" in answer
    gate = s["gates"][0]
    assert ["max_p99_ms", number(gate["limit"]), number(gate["measured"]), "pass", ""] in \
        page.tables["answer"]
    endured = {True: "yes", False: "NO", None: "n/a"}[s["surge"]["open_chats_endured"]]
    assert f"Open chats endured the surge (1.0–3.0 s, --surge): {endured}" in answer
    for label, key in (("participants", "created_participants_count"),
                       ("messages sent", "messages_sent"), ("delivered", "messages_delivered"),
                       ("steady rate (msg/s)", "steady_rate")):
        assert f"{label} {number(s[key])}" in answer


def test_every_latency_of_the_summary_with_its_numbers(surge, page):
    latency = surge.summary["latency"]
    rows = {row[0].split()[-1]: row[1:] for row in page.tables["latency"][1:]}
    assert page.tables["latency"][0] == ["latency", "count", "p50", "p90", "p99", "p99.9",
                                         "max", "whose time"]
    assert set(rows) == set(latency)
    assert {latency_.key for latency_ in LATENCIES} - {"unconfirmed"} <= set(rows)
    whose = {latency_.key: latency_.whose for latency_ in (*LATENCIES, WITH_UNCONFIRMED)}
    for key, entry in latency.items():
        expected = [str(entry["count"])] + [
            number(entry[k]) if entry["count"] else "-"
            for k in ("p50_ms", "p90_ms", "p99_ms", "p99.9_ms", "max_ms")] + [whose[key]]
        assert rows[key] == expected, key
    assert whose["send_lateness"] == whose["generator_lag"] == "generator"


def test_the_surge_cohorts_and_their_phases(surge, page):
    cohorts = surge.summary["surge"]["cohorts"]
    rows = page.tables["surge"][1:]
    assert len(rows) == sum(len(c["phases"]) for c in cohorts.values())
    index = 0
    for cohort, figures in cohorts.items():
        for i, (phase, cell) in enumerate(figures["phases"].items()):
            row = rows[index][3:] if i == 0 else rows[index]  # the cohort's cells span
            assert row[:4] == [phase, str(cell["sent"]), number(cell["delivered"]),
                               words.ratio(cell["delivered_ratio"])], (cohort, phase)
            if not cell["sent"]:
                assert row[4] == "no messages"
            index += 1
        assert rows[index - len(figures["phases"])][0] == cohort


def test_settings_target_errors_and_files(surge, page):
    s = surge.summary
    settings = page.text("settings")
    assert "sci_ms 10.0" in settings and "stages 1s:20, 2s:20, 1s:0" in settings
    assert f"messenger_ws_url {s['target']['messenger_ws_url']}" in settings
    assert "No error stopped the run." in page.text("errors")
    files = {row[0]: row[1] for row in page.tables["files"][1:]}
    names = {p.name for p in surge.folder.glob(f"{surge.stem}_performance_test_*")}
    assert set(files) == names and files[surge.report.name] == "this page"
    links = [ref for ref in page.refs if ref.endswith((".json", ".csv", ".hlog", ".png",
                                                       ".html"))]
    assert sorted(links) == sorted(names) and all((surge.folder / n).is_file() for n in links)


def test_each_second_of_a_chart_has_its_values_on_hover(surge, page):
    rows = surge.folder.joinpath(f"{surge.stem}_performance_test_series.csv").read_text()
    series = [line.split(",") for line in rows.splitlines()[1:]]
    titles = page.hover_titles["Messages per second"]
    assert len(titles) == len(series)
    sent = SERIES_COLUMNS.index("sent")
    for index, (title, row) in enumerate(zip(titles, series, strict=True)):
        assert title.startswith(f"{index} s (Unix {row[0]})") and f"sent {row[sent]}/s" in title
    assert len(page.hover_titles["Latency per second"]) == len(series)


def test_one_file_that_fetches_nothing(surge, page):
    text = surge.report.read_text(encoding="utf-8")
    assert not {"script", "link", "img", "iframe", "object"} & page.tags
    assert all(ref.startswith("#") or not re.match(r"[a-z][a-z0-9+.-]*:|//", ref)
               for ref in page.refs), [r for r in page.refs if ":" in r]
    assert "@import" not in text and "url(http" not in text and "@font-face" not in text
    assert text.count("<svg") == 5  # the charts are in the page itself


def test_esmeperf_plot_html_writes_the_same_bytes_again(surge, tmp_path, capsys):
    report = surge.report
    original = report.read_bytes()
    report.rename(tmp_path / "original.html")
    try:
        assert plot_main(["--html", str(surge.folder)]) == 0
        assert capsys.readouterr() == (f"{report}\n", "")
        assert report.read_bytes() == original
    finally:
        if not report.exists():
            (tmp_path / "original.html").rename(report)


def test_no_report_writes_none(tmp_path, capsys):
    status = main(["-q", "--out", str(tmp_path), "-sci", "10", "-cpi", "100", "-smi", "500",
                   "--max-participants", "2", "--duration", "1s", "--no-report", "--no-plot"])
    assert status == 0
    assert not list(tmp_path.glob("*.html"))
    assert list(tmp_path.glob("*_performance_test_summary.json"))
    assert "  report  " not in capsys.readouterr().out


def test_a_run_stopped_by_its_first_error_says_so_first_and_folds_the_traceback(tmp_path):
    status = main(["-q", "--out", str(tmp_path), "-sci", "10", "-cpi", "50", "-smi", "500",
                   "--duration", "10s", "--no-plot", "--target-args=--fail-signup-after 2"])
    assert status == 1
    summary = json.loads(next(tmp_path.glob("*_summary.json")).read_text())
    error = summary["first_error"]
    text = next(tmp_path.glob("*_report.html")).read_text()
    page = Parsed(text)
    answer = page.text("answer")
    assert answer.startswith("Exit status 1: the run was stopped by its first error.")
    assert "Ended by error: the first error in a worker stopped it." in answer
    assert f"First error, in {error['thread']}: {' '.join(error['message'].split())}" in answer
    assert f"{error['type']}: " in page.text("errors")
    # The traceback, whole, folded in a <details> that opens on a click (and in print).
    folded = re.search(r"<details><summary>its traceback</summary><pre>(.*?)</pre></details>",
                       text, re.S)
    assert folded and html.unescape(folded.group(1)) == error["traceback"]


def test_a_go_test_runs_report(tmp_path, capsys):
    write_go_run(tmp_path / "go", 1700000100, {1700000000 + s: 50 * s for s in range(20)})
    assert plot_main(["--html", str(tmp_path / "go")]) == 0
    report = tmp_path / "go" / "1700000100_performance_test_report.html"
    assert capsys.readouterr() == (f"{report}\n", "")
    page = Parsed(report.read_text())
    assert page.order == ["answer", "settings", "charts", "latency", "errors", "files"]
    assert "ESME's Go test output" in page.text("answer")
    assert "participants 262" in page.text("answer")
    assert "ESME's Go test does not measure it" in page.text("latency")
    assert "send_message_interval 100ms" in page.text("settings")
    assert list(page.hover_titles) == ["Messages per second", "Latency per second"]


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("args,error", [
    (["--html", "notes.txt"], "notes.txt: not an esmeperf or ESME performance-test file"),
    (["--html", "empty"], "empty: no *_performance_test_summary.json or "
                          "*_performance_test_message_rates.json in this directory"),
    (["--html", "nowhere"], "nowhere: no such file or directory"),
    (["--html", "--scatter", "go"], "--html writes reports, not --scatter: give one or the "
                                    "other"),
    (["--html", "-o", "out.png", "go"], "-o out.png: not a .html file name (give NAME.html "
                                        "or a directory)"),
    (["--html", "-o", "a.html", "go", "go2"], "-o a.html: with --html only for one run"),
    (["--html", "-o", "a.html", "sweep"], "-o a.html: with --html only for one run"),
    (["--html", "go", "sweep"], "sweep/02_sci10_cpi20_smi100_r1/1700000100_performance_test_"
                                "summary.json: not valid JSON"),
])
def test_bad_input_to_plot_html_is_exit_2_with_one_line(tmp_path, monkeypatch, capsys, args,
                                                        error):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "empty").mkdir()
    for name in ("go", "go2", "sweep/01_sci10_cpi20_smi100_r1", "sweep/02_sci10_cpi20_smi100_r1"):
        write_go_run(tmp_path / name, 1700000100, {1700000000 + s: 5 for s in range(5)})
    # A sweep with one corrupt run: found before any report (the good run's too) is written.
    (tmp_path / "sweep/02_sci10_cpi20_smi100_r1/1700000100_performance_test_summary.json"
     ).write_text("{")
    before = _files(tmp_path)
    assert plot_main(args) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"esmeperf-plot: error: {error}") and \
        err.count("\n") == 1
    assert _files(tmp_path) == before  # nothing written


def test_a_ten_minute_run_is_well_under_the_size_limit(surge, tmp_path):
    """600 seconds of a busy run (its generator saturated now and then, which shades the most)
    from the real run's summary: the report stays under 1.5 MB."""
    rng = random.Random(7)
    folder = tmp_path / "ten_minutes"
    folder.mkdir()
    stem = "1800000600"
    summary = surge.summary
    (folder / f"{stem}_performance_test_summary.json").write_text(json.dumps(summary))
    rows = []
    for i in range(602):
        people = min(1500, 50 * i)
        rows.append({
            "second": 1800000000 + i, "participants": people, "chats": people,
            "sent": rng.randint(1000, 1100), "delivered": rng.randint(1000, 1100),
            "organizer_received": 1000, "errors": 0, "missed": rng.randint(0, 3),
            "connections": people, "rtt_p50_ms": round(rng.uniform(0.5, 1.2), 3),
            "rtt_p99_ms": round(rng.uniform(5, 90), 3),
            "lateness_p99_ms": round(rng.uniform(20, 40), 3),
            "load_fraction": 0.5 if i in (0, 600) else 0.0 if i == 601 else 1.0,
            "arrival_lateness_p99_ms": round(rng.uniform(0.1, 5), 3),
            "generator_cpu": round(rng.choice([0.4, 0.6, 0.95]), 3), "target_cpu": 0.3,
            "arrivals": 50, "arrivals_intended": 50,
            "rtt_from_intended_p99_ms": round(rng.uniform(20, 120), 3),
            "generator_lag_p99_ms": round(rng.uniform(0.5, 30), 3),
            "target_handling_p99_ms": 0.2})
    (folder / f"{stem}_performance_test_series.csv").write_text(csv_text(rows))
    report = write_run_report(folder)
    size = report.stat().st_size
    assert size < MAX_BYTES, size
    assert Parsed(report.read_text()).hover_titles["Messages per second"][600].startswith("600 s")
