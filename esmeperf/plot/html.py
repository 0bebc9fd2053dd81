"""The HTML reports: a run's `<unix>_performance_test_report.html`, a sweep's `report.html`
and a capacity search's report, each one self-contained file (page.py) built from the run's
own files alone, so `esmeperf-plot --html PATH` builds the same page again for any finished
run (ESME's Go test output too, with what its two files hold).

A run's report, in order: the answer (exit status and end reason in words, the generator's
health and who limited the run, the gates, the surge's verdict), the settings and the target,
the charts, the latency table, the surge's cohorts, the errors, the files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..measure.names import LATENCIES, WITH_UNCONFIRMED
from ..results.report import (
    LATENCY_LABELS,
    WHOSE,
    number,
    pacing_line,
    run_label,
)
from ..results.rundata import (
    CAPACITY_STEP_DIR,
    STEPS_DIR,
    SWEEP_RUN_DIR,
    RunData,
    RunFileError,
    load_run,
    run_name,
)
from ..results.summary import REPORT_SUFFIX, SUMMARY_SUFFIX, report_beside
from ..verdict import words
from ..verdict.decide import decide, search_words
from .page import (
    Cell,
    Hover,
    Page,
    chart,
    esc,
    figures,
    keys,
    link,
    num,
    table,
    text,
)

if TYPE_CHECKING:
    from .figures import Chart

SWEEP_REPORT = "report.html"
PERCENTILES = (("p50_ms", "p50"), ("p90_ms", "p90"), ("p99_ms", "p99"),
               ("p99.9_ms", "p99.9"), ("max_ms", "max"))
HELP = {latency.key: f"{latency.help}. Whose time: {latency.whose}."
        for latency in (*LATENCIES, WITH_UNCONFIRMED)}


def report_path(run: RunData, folder: Path) -> Path:
    return folder / f"{run.stem}{REPORT_SUFFIX}"


# -- one run --------------------------------------------------------------------------------


def write_run_report(path: Path, out: Path | None = None) -> Path:
    """Read a run (its directory or any one of its files) and write its report: to `out`, or
    beside its files. RunFileError for a run that cannot be read; OSError for a report that
    cannot be written."""
    return _write_run(load_run(path), path if path.is_dir() else path.parent, out)


def _write_run(run: RunData, folder: Path, out: Path | None = None) -> Path:
    """A loaded run's report, to `out` or beside its files in `folder`."""
    target = out or report_path(run, folder)
    return run_page(run, folder, target).write(target, footer=_footer())


def run_page(run: RunData, folder: Path, target: Path) -> Page:
    """A run's report, every figure from its summary and series (see the module docstring)."""
    from .figures import timeline_charts

    s = run.summary
    esmeperf = bool(s.get("settings"))
    title = (f"esmeperf run {s.get('run_id')}: {run_label(s['settings'])}" if esmeperf
             else f"ESME performance test {run.stem}: {run.label}")
    started = s.get("participants_time_started") or s.get("organizer_time_started")
    page = Page(title, subtitle=esc(f"started {started}" if started else "")
                + (f" &middot; {esc(run.folder)}" if run.folder else ""))
    page.add(_answer(s, esmeperf))
    page.section("settings", "Settings and target", _settings(s))
    charts = timeline_charts(run.rows, s)
    page.section("charts", "Charts",
                 "<p class=\"sub\"><span class=\"screen\">Hover over a second for its values. "
                 "</span>Gray: a second the load only partly covered (its values hollow, not "
                 "joined to the line); hatched red: a second the generator's own CPU was "
                 "saturated; blue: the surge.</p>",
                 *(chart(c.figure, c.key, _hovers(c, run.rows), c.heading) for c in charts))
    page.section("latency", "Latency (ms)", _latency_table(s.get("latency") or {}, esmeperf)
                 + "".join(f"<p>{esc(line.strip())}</p>"
                           for line in pacing_line(s.get("send_interval_error"))))
    if isinstance(s.get("surge"), Mapping):
        page.section("surge", "The surge's cohorts", _surge_table(s["surge"]))
    page.section("errors", "Errors and warnings", _errors(s, run.rows))
    page.section("files", "Files", _files(run, folder, target))
    return page


def _answer(s: Mapping[str, Any], esmeperf: bool) -> str:
    """The verdict before anything else: how the run ended, whether the generator can be
    trusted, who limited the run, the gates, the surge."""
    # A run's summary: its one verdict (verdict/decide.py), for the tone as for the words; a
    # capacity search's, or an older version's, as its file says.
    verdict = decide(s) if esmeperf and "latency" in s and "generator_health" in s else None
    status = verdict.status if verdict is not None else s.get("exit_status")
    health = s.get("generator_health") if isinstance(s.get("generator_health"), Mapping) \
        else None
    suspect = bool(health and health.get("suspect"))
    gates = [g for g in s.get("gates") or [] if isinstance(g, Mapping)]
    failed = [g for g in gates if not g.get("passed")]
    surge = s.get("surge") if isinstance(s.get("surge"), Mapping) else None
    endured = surge.get("open_chats_endured") if surge else None
    bad = (isinstance(status, int) and status not in (0,)) or failed or endured is False
    tone = "bad" if bad else "warn" if suspect else "ok" if esmeperf else ""
    parts = []
    if esmeperf:
        said = words.status_words(status if isinstance(status, int) else None)
        reason = str(s.get("end_reason") or "")
        if verdict is not None:
            said, why = verdict.words, verdict.ended
        else:
            why = (s.get("verdict") or {}).get("ended") or words.ended_words(
                reason, s.get("settings"))
        but = "; but the generator was SUSPECT (below)" if suspect else ""
        parts.append(f'<p class="big">Exit status {esc(status)}: {esc(said)}{but}.</p>'
                     f"<p>Ended by <b>{esc(reason)}</b>: {esc(why or reason)}.</p>")
    else:
        parts.append('<p class="big">ESME\'s Go test output: its files record no exit status '
                     "and no end reason.</p>")
    error = s.get("first_error")
    if isinstance(error, Mapping):
        parts.append(f"<p><b>First error</b>, in {esc(error.get('thread'))}: "
                     f"{esc(error.get('message'))} (its traceback under "
                     '<a href="#errors">Errors</a>)</p>')
    parts.append(figures(_headline(s)))
    if health is not None:
        state = ('<span class="warn-text">SUSPECT</span>: the generator may have limited '
                 "this run" if suspect else '<span class="ok-text">ok</span>')
        reasons = "".join(f"<li>{esc(r)}</li>" for r in health.get("reasons") or [])
        parts.append(f"<p><b>Generator health</b>: {state}</p>"
                     + (f'<ul class="reasons">{reasons}</ul>' if reasons else ""))
    who = s.get("attribution")
    if isinstance(who, Mapping):
        limited = who.get("limited_by")
        parts.append(f"<p><b>Limited by</b>: {esc(limited)} &mdash; {esc(who.get('why'))}</p>")
        if who.get("remedy"):
            parts.append(f"<p><b>Remedy</b>: {esc(who['remedy'])}</p>")
        share = who.get("target_share_of_rtt_p99")
        if share is not None:
            parts.append(f"<p><b>The target's share</b>: its own handling p99 "
                         f"{esc(number(who.get('target_handling_p99_ms')))} ms of a round-trip "
                         f"p99 of {esc(number(who.get('message_rtt_p99_ms')))} ms "
                         f"({esc(words.share(share))})</p>")
    if gates:
        rows = [[text(g.get("gate")), num(words.measured(g.get("limit"))),
                 num(words.measured(g.get("measured"))),
                 Cell('<span class="ok-text">pass</span>' if g.get("passed")
                      else '<span class="bad-text">FAIL</span>'),
                 text(g.get("attribution") or "")] for g in gates]
        parts.append("<p><b>Gates</b></p>" + table(
            ["gate", Cell("limit", num=True), Cell("measured", num=True), "verdict",
             "failure names"], rows))
    if surge:
        word = {True: '<span class="ok-text">yes</span>',
                False: '<span class="bad-text">NO</span>', None: "n/a"}[endured]
        start, end = surge.get("window_s") or (None, None)
        parts.append(f"<p><b>Open chats endured the surge</b> ({esc(number(start))}&ndash;"
                     f"{esc(number(end))} s, {esc(surge.get('source'))}): {word}</p>")
    return f'<section id="answer" class="answer {tone}">{"".join(parts)}</section>'


def _headline(s: Mapping[str, Any]) -> list[tuple[str, str]]:
    rtt = (s.get("latency") or {}).get("message_rtt") or {}
    planned = s.get("participants_planned")
    items = [("participants", number(s.get("created_participants_count"))
              + ("" if planned is None else f" of {number(planned)}")),
             ("chats", number(s.get("chats_count"))),
             ("messages sent", number(s.get("messages_sent")))]
    if "messages_delivered" in s:
        items += [("delivered", number(s.get("messages_delivered"))),
                  ("delivered ratio", words.ratio(s.get("delivered_ratio")))]
    if s.get("messages_missed"):
        items.append(("send slots skipped", number(s.get("messages_missed"))))
    if "steady_rate" in s:
        items.append(("steady rate (msg/s)", number(s.get("steady_rate"))))
    if rtt.get("count"):
        items += [("round trip p50 (ms)", number(rtt.get("p50_ms"))),
                  ("round trip p99 (ms)", number(rtt.get("p99_ms")))]
    return items


def _settings(s: Mapping[str, Any]) -> str:
    """The settings, the run's times and the target in grids of keys (as the summary names
    them) and values; the target's /stats and the generator's platform folded below."""
    parts = []
    settings = s.get("settings")
    if isinstance(settings, Mapping):
        parts.append("<h3>Settings</h3>" + keys((k, _value(v)) for k, v in settings.items()))
    constants = s.get("constants")
    if isinstance(constants, Mapping):
        parts.append("<h3>The Go test's constants</h3>"
                     + keys((k, _value(v)) for k, v in constants.items()))
    timing = [(k, _value(s[k])) for k in ("run_id", "organizer_time_started",
                                          "organizer_duration", "participants_time_started",
                                          "participants_duration") if k in s]
    if timing:
        parts.append("<h3>Run</h3>" + keys(timing))
    target = s.get("target")
    if isinstance(target, Mapping):
        parts.append("<h3>Target</h3>" + keys((k, _value(v)) for k, v in target.items()))
    more = []
    stats = s.get("target_stats")
    if isinstance(stats, Mapping):
        more.append("<h3>The target's /stats at the end</h3>"
                    + keys((k, _value(v)) for k, v in stats.items()))
    check = s.get("cross_check")
    if isinstance(check, Mapping):
        more.append("<h3>Cross-check: sent against stored</h3>"
                    + keys((k, _value(v)) for k, v in check.items()))
    machine = [(f"versions.{k}", _value(v)) for k, v in (s.get("versions") or {}).items()]
    machine += [(f"platform.{k}", _value(v)) for k, v in (s.get("platform") or {}).items()]
    if machine:
        more.append("<h3>The generator's versions and platform</h3>" + keys(machine))
    if more:
        parts.append("<details><summary>the target's /stats, the cross-check, the "
                     "generator's platform</summary>" + "".join(more) + "</details>")
    return "".join(parts)


def _value(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {_value(v)}" for k, v in value.items()) or "none"
    if isinstance(value, list):
        if all(isinstance(v, list) and len(v) == 2 for v in value) and value:
            return ", ".join(f"{d:g}s:{r:g}" for d, r in value)  # stages
        return ", ".join(_value(v) for v in value) or "[]"
    return number(value) if not isinstance(value, str) else value


def _hovers(item: Chart, rows: Sequence[Mapping[str, Any]]) -> list[Hover]:
    """What a second holds, in the words of the chart it is hovered on."""
    if item.key == "cohorts" or not rows:
        return []
    from .figures import LATENCY

    t0 = int(rows[0]["second"])
    xs = [int(r["second"]) - t0 for r in rows]
    titles = []
    for x, r in zip(xs, rows, strict=True):
        head = f"{x} s (Unix {r['second']})"
        partial = r.get("load_fraction") not in (None, "") and float(r["load_fraction"]) < 1
        if partial:
            head += f", partial: {float(r['load_fraction']):.0%} of it under load"
        if item.key == "rates":
            body = [f"sent {r['sent']}/s"] + ([f"delivered {r['delivered']}/s"]
                                              if "delivered" in r else [])
            if r.get("generator_cpu") not in (None, ""):
                body.append(f"generator CPU {float(r['generator_cpu']):.0%}")
        elif item.key == "people":
            body = [f"{r.get('participants')} participants", f"{r.get('chats')} chats"]
            if r.get("connections") not in (None, ""):
                body.append(f"{r['connections']} connections")
        elif item.key == "arrivals":
            body = [f"intended {r.get('arrivals_intended')}", f"actual {r.get('arrivals')}"]
        else:
            body = [f"{label} {r[column]} ms" for column, (label, _) in LATENCY.items()
                    if r.get(column) not in (None, "")] or ["no latency measured"]
        titles.append(f"{head}: " + ", ".join(body))
    return [Hover(item.axes, titles, xs)]


def _latency_table(latency: Mapping[str, Any], esmeperf: bool) -> str:
    if not latency:
        return ("<p>No latency in this run's files"
                + ("." if esmeperf else ": ESME's Go test does not measure it.") + "</p>")
    keys = [k for k in LATENCY_LABELS if k in latency]
    keys += [k for k in latency if k not in LATENCY_LABELS]
    rows = []
    for key in keys:
        entry = latency[key]
        if not isinstance(entry, Mapping):
            continue
        count = entry.get("count") or 0
        label = LATENCY_LABELS.get(key, key.replace("_", " "))
        name = Cell(f"{esc(label)} <span class=\"mono sub\">{esc(key)}</span>",
                    title=HELP.get(key, ""))
        rows.append([name, num(count)] + [num(number(entry.get(k)) if count else "-")
                                          for k, _ in PERCENTILES]
                    + [Cell(esc(WHOSE.get(key, "")), title=HELP.get(key, ""))])
    return table(["latency", Cell("count", num=True),
                  *(Cell(h, num=True) for _, h in PERCENTILES), "whose time"], rows) + (
        "<p class=\"sub\"><span class=\"screen\">Hover over a latency's name for what it "
        "measures; </span>the key is the summary's (and the .hlog's tag).</p>")


def _surge_table(surge: Mapping[str, Any]) -> str:
    head: list[str | Cell] = ["cohort (arrived ... the surge)", Cell("participants", num=True),
            Cell("to chat p99", num=True), "phase (sent ... the surge)",
            Cell("sent", num=True), Cell("delivered", num=True), Cell("ratio", num=True),
            Cell("rtt p50", num=True), Cell("rtt p99", num=True),
            Cell("send lateness p99", num=True)]
    rows: list[list[Cell | None]] = []
    for cohort, figures_ in (surge.get("cohorts") or {}).items():
        phases = list((figures_.get("phases") or {}).items())
        chat = (figures_.get("time_to_chat") or {}).get("p99_ms")
        for i, (phase, cell) in enumerate(phases):
            first: list[Cell | None] = (
                [Cell(esc(cohort), span=len(phases)),
                 Cell(esc(number(figures_.get("participants"))), num=True, span=len(phases)),
                 Cell(esc(words.ms(chat)), num=True, span=len(phases))] if i == 0
                else [None, None, None])
            sent = cell.get("sent") or 0
            rest: list[Cell | None] = (
                [num(words.ms(cell["rtt"].get("p50_ms"))),
                 num(words.ms(cell["rtt"].get("p99_ms"))),
                 num(words.ms(cell["send_lateness"].get("p99_ms")))] if sent
                else [Cell("no messages", title="nothing sent in this phase"), num(""),
                      num("")])
            rows.append(first + [text(phase), num(sent), num(number(cell.get("delivered"))),
                                 num(words.ratio(cell.get("delivered_ratio")))] + rest)
    window = surge.get("window_s") or ["?", "?"]
    return (f"<p>Window {esc(number(window[0]))}&ndash;{esc(number(window[1]))} s from the "
            f"first arrival's origin ({esc(surge.get('source'))}). Each participant by when "
            "it arrived (its cohort), each message by when it was sent (its phase).</p>"
            + table(head, rows))


def _errors(s: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    error = s.get("first_error")
    worker_errors = sum(int(r.get("errors") or 0) for r in rows)
    items = ([("worker errors (series)", str(worker_errors))] if rows and "errors" in rows[0]
             else [])
    for key in ("errors_after_stop", "messages_missed", "messages_unconfirmed"):
        if key in s:
            items.append((key, number(s[key])))
    if isinstance(error, Mapping):
        who = f" (names: {error['attribution']})" if error.get("attribution") else ""
        parts.append(f'<p class="bad-text">First error, in {esc(error.get("thread"))}: '
                     f'{esc(error.get("type"))}: {esc(error.get("message"))}{esc(who)}</p>'
                     f"<details><summary>its traceback</summary><pre>"
                     f"{esc(error.get('traceback') or '')}</pre></details>")
    elif "first_error" in s:
        parts.append("<p>No error stopped the run.</p>")
    if items:
        parts.append(figures(items))
    alive = s.get("threads_alive_after_join")
    if alive:
        parts.append(f"<p><b>Threads alive after the join</b>: {esc(', '.join(alive))}</p>")
    warnings = [w for w in s.get("warnings") or []]
    if warnings:
        parts.append("<p><b>Warnings</b></p><ul class=\"reasons\">" + "".join(
            f"<li>{esc(w if isinstance(w, str) else json.dumps(w))}</li>" for w in warnings)
            + "</ul>")
    lost = [shard for shard in s.get("shards") or [] if isinstance(shard, Mapping)
            and shard.get("lost")]
    if lost:
        parts.append(f"<p><b>Shards lost</b>: {len(lost)}</p>")
    return "".join(parts) or "<p>The Go test's files record no errors.</p>"


def _files(run: RunData, folder: Path, target: Path) -> str:
    names = {p.name for p in folder.glob(f"{run.stem}_performance_test_*") if p.is_file()}
    if target.parent.resolve() == folder.resolve():
        names.add(target.name)  # this page, written once the rest are
    rows = []
    for name in sorted(names):
        path = folder / name
        size = path.stat().st_size if path.exists() else None
        rows.append([Cell(link(_href(path, target), name)),
                     num("this page" if path.resolve() == target.resolve()
                         else _size(size))])
    return (f"<p>In {esc(str(folder.resolve()))}:</p>"
            + table(["file", Cell("size", num=True)], rows))


def _href(path: Path, page: Path) -> str:
    return Path(os.path.relpath(path.resolve(), page.parent.resolve())).as_posix()


def _size(size: int | None) -> str:
    if size is None:
        return "-"
    return f"{size / 1024:.1f} KB" if size >= 1024 else f"{size} B"


def _footer() -> str:
    return (f"Written by esmeperf {esc(__version__)} from the run's own files; "
            "<code>esmeperf-plot --html</code> writes it again.")


# -- a sweep --------------------------------------------------------------------------------


def sweep_page(runs: Sequence[RunData], out_dir: Path) -> Page:
    """A sweep: each run's row (linked to its own report), the overlays and the scatter."""
    from .figures import overlay_figure, scatter_figure

    statuses = [r.summary.get("exit_status") for r in runs]
    suspect = [r for r in runs if (r.summary.get("generator_health") or {}).get("suspect")]
    worst = [s for s in statuses if isinstance(s, int) and s != 0]
    page = Page(f"esmeperf sweep: {len(runs)} run{'s' * (len(runs) != 1)}",
                subtitle=esc(str(out_dir.resolve())))
    tone = "bad" if worst else "warn" if suspect else "ok"
    summary = (f"{len(runs) - len(worst)} of {len(runs)} runs ended as planned with every "
               "gate passed" if worst else f"Every run ({len(runs)}) ended as planned with "
               "every gate passed")
    health = (f"; the generator was suspect in {len(suspect)} of them: their figures describe "
              "it as much as the target" if suspect else "; the generator was healthy in every "
              "run" if all(r.summary.get("generator_health") for r in runs) else "")
    page.add(f'<section id="answer" class="answer {tone}"><p class="big">{esc(summary)}'
             f"{esc(health)}.</p></section>")
    rows = []
    notes = []
    for run in runs:
        s = run.summary
        rate, _ = run.max_rate()
        p99 = ((s.get("latency") or {}).get("message_rtt") or {}).get("p99_ms")
        health_ = s.get("generator_health") or {}
        verdict = "" if not health_ else "SUSPECT" if health_.get("suspect") else "ok"
        name = run.folder or run.stem
        for reason in health_.get("reasons") or []:
            notes.append(f"{name}: {reason}")
        own = report_path(run, out_dir / run.folder)
        target = own if own.exists() else out_dir / run.folder
        planned = s.get("participants_planned")
        rows.append([Cell(link(_href(target, out_dir / SWEEP_REPORT), name)),
                     *(num(f"{run.params.get(k, 0):g}") for k in ("sci", "cpi", "smi")),
                     num(number(s.get("created_participants_count"))
                         + ("" if planned is None else f" ({planned})")),
                     num(number(s.get("chats_count"))), num(rate),
                     num(words.ratio(s.get("delivered_ratio"))), num(number(p99)),
                     text(s.get("end_reason", "")), num(number(s.get("exit_status"))),
                     text(verdict)])
    head: list[str | Cell] = ["run", *(Cell(f"{k} ms", num=True) for k in ("sci", "cpi", "smi")),
            Cell("participants (planned)", num=True), Cell("chats", num=True),
            Cell("max msg/s", num=True), Cell("delivered ratio", num=True),
            Cell("rtt p99 ms", num=True), "ended by", Cell("exit", num=True), "generator"]
    page.section("runs", "Runs", table(head, rows) + (
        "<p><b>Generator health</b> (esmeperf's own limits, not the target's):</p>"
        '<ul class="reasons">' + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>"
        if notes else ""))
    groups: dict[tuple[float, ...], list[RunData]] = {}
    for run in runs:
        groups.setdefault(tuple(run.params.values()), []).append(run)
    overlays = []
    for index, group in enumerate(groups.values()):
        fig = overlay_figure(group, f"{group[0].label}: {len(group)} run(s)")
        overlays.append(chart(fig, f"overlay{index}", _overlay_hover(fig, group),
                              label=group[0].label))
    page.section("overlays", "Messages sent per second, runs overlaid", *overlays)
    fig = scatter_figure(runs)
    points = [(r, *r.max_rate()) for r in runs]
    page.section("scatter", "Maximum rate against active chats", chart(fig, "scatter", [Hover(
        fig.axes[0], [f"{r.folder or r.stem}: {rate} msg/s at {chats} chats"
                      for r, rate, chats in points],
        [chats for _, _, chats in points], [rate for _, rate, _ in points])]))
    return page


def _overlay_hover(fig: Any, runs: Sequence[RunData]) -> list[Hover]:
    seconds: dict[int, list[str]] = {}
    for run in runs:
        if not run.rows:
            continue
        t0, name = int(run.rows[0]["second"]), run_name(run, list(runs))
        for r in run.rows:
            seconds.setdefault(int(r["second"]) - t0, []).append(f"{name} {r['sent']}/s")
    xs = sorted(seconds)
    return [Hover(fig.axes[0], [f"{x} s: " + "; ".join(seconds[x]) for x in xs], xs)]


def write_sweep_report(runs: Sequence[RunData], out_dir: Path) -> Path:
    target = out_dir / SWEEP_REPORT
    return sweep_page(runs, out_dir).write(target, footer=_footer())


def sweep_runs(path: Path) -> list[Path]:
    """A sweep directory's run directories (NN_sci*_cpi*_smi*_r*), in order; [] if none."""
    if not path.is_dir():
        return []
    return sorted(p for p in path.iterdir() if p.is_dir() and SWEEP_RUN_DIR.fullmatch(p.name))


# -- a capacity search ----------------------------------------------------------------------


def capacity_summary(path: Path) -> tuple[Path, dict[str, Any]] | None:
    """The capacity search's summary in `path` (a directory or the summary), or None."""
    files = sorted(path.glob(f"*{SUMMARY_SUFFIX}")) if path.is_dir() else [path]
    for file in reversed(files):
        if not file.name.endswith(SUMMARY_SUFFIX):
            continue
        try:
            summary = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(summary, dict) and isinstance(summary.get("capacity"), dict):
            return file, summary
    return None


def capacity_page(summary: Mapping[str, Any], folder: Path, target: Path) -> Page:
    """A capacity search: who limited it, the steps (each linked to its own report), the knee
    chart with a hover title on each step."""
    from .figures import capacity_figure

    capacity = summary["capacity"]
    limited = capacity.get("limited_by")
    found = search_words(capacity)
    head = found[:1].upper() + found[1:]
    tone = "warn" if limited == "generator" else "ok"
    page = Page(f"esmeperf capacity search, smi {capacity.get('smi_ms', 0):g} ms",
                subtitle=esc(str(folder.resolve())))
    page.add(f'<section id="answer" class="answer {tone}"><p class="big">{esc(head)}.</p>'
             f"<p>{esc(capacity.get('note'))}.</p>"
             + figures([(k.replace("_", " "), number(v)) for k, v in
                        (capacity.get("criteria") or {}).items()]) + "</section>")
    rows = []
    for step in capacity.get("steps") or []:
        step_dir = folder / STEPS_DIR / str(step.get("folder"))
        own = sorted(step_dir.glob(f"*{REPORT_SUFFIX}"))
        name = str(step.get("folder"))
        cell = Cell(link(_href(own[-1], target), name)) if own else (
            Cell(link(_href(step_dir, target), name)) if step_dir.is_dir() else text(name))
        verdict = str(step.get("verdict"))
        klass = "ok-text" if verdict == "pass" else "bad-text" if verdict == "FAIL" else ""
        extra = "; ".join(step.get("failed") or [])
        if step.get("generator_limited") and step.get("generator_reasons"):
            extra += ("; " if extra else "") + "generator-limited: " + "; ".join(
                step["generator_reasons"])
        rows.append([cell, num(step.get("chats")), num(number(step.get("intended_rate"))),
                     num(number(step.get("achieved_rate"))),
                     num(f"{step.get('sends_made')}/{step.get('sends_due')}"),
                     num(words.ratio(step.get("delivered_ratio"))),
                     num(number(step.get("rtt_p99_ms"))),
                     Cell(f'<span class="{klass}">{esc(verdict)}</span>'), text(extra)])
    page.section("steps", "Steps", table(
        ["step", Cell("chats", num=True), Cell("intended msg/s", num=True),
         Cell("achieved msg/s", num=True), Cell("sends made/due", num=True),
         Cell("delivered ratio", num=True), Cell("rtt p99 ms", num=True), "verdict",
         "why"], rows))
    steps = capacity.get("steps") or []
    if steps:
        fig = capacity_figure(dict(capacity))
        heading = "The knee" if capacity.get("knee_chats") else "The steps (no knee named)"
        page.section("knee", heading, chart(fig, "capacity", [Hover(
            fig.axes[0], [f"{s['folder']}: {s['chats']} chats, {s['achieved_rate']:g} of "
                          f"{s['intended_rate']:g} msg/s, rtt p99 {number(s['rtt_p99_ms'])} "
                          f"ms: {s['verdict']}" for s in steps],
            [s["chats"] for s in steps], [s["achieved_rate"] for s in steps])]))
    stem = target.name[: -len(REPORT_SUFFIX)] if target.name.endswith(REPORT_SUFFIX) else ""
    files = sorted({p for p in folder.glob(f"{stem}_performance_test_*") if p.is_file()}
                   | {target}) if stem else []
    page.section("files", "Files", table(["file", Cell("size", num=True)], [
        [Cell(link(_href(p, target), p.name)),
         num("this page" if p.resolve() == target.resolve() else _size(p.stat().st_size))]
        for p in files]))
    return page


def write_capacity_report(path: Path, out: Path | None = None) -> Path:
    """The capacity report of the search in `path`; RunFileError if it holds none."""
    found = capacity_summary(path)
    if found is None:
        raise RunFileError(f"{path}: no capacity search's summary here")
    file, summary = found
    folder = file.parent
    target = out or report_beside(folder / file.name)
    return capacity_page(summary, folder, target).write(target, footer=_footer())


# -- whatever a path holds ------------------------------------------------------------------


def kind_of(path: Path) -> str:
    """What `esmeperf-plot --html PATH` builds: "sweep", "capacity" or "run"."""
    if sweep_runs(path):
        return "sweep"
    if capacity_summary(path) is not None:
        return "capacity"
    return "run"


def write_reports(path: Path, out: Path | None = None) -> list[Path]:
    """Every report `path` holds, written again: a run's, a sweep's (each run's, then the
    sweep's), a capacity search's (each step's, then the search's). RunFileError for a path
    that holds no run; OSError for a report that cannot be written."""
    kind = kind_of(path)
    written: list[Path] = []
    if kind == "sweep":
        folders = sweep_runs(path)
        runs = [load_run(folder) for folder in folders]  # each run's files read once
        written += [_write_run(run, folder) for run, folder in zip(runs, folders, strict=True)]
        written.append(write_sweep_report(runs, path))
        return written
    if kind == "capacity":
        folder = path if path.is_dir() else path.parent
        for step in sorted((folder / STEPS_DIR).glob("*")):
            if step.is_dir() and CAPACITY_STEP_DIR.fullmatch(step.name):
                try:
                    written.append(write_run_report(step))
                except RunFileError:
                    continue  # a step cut short before its files: its row says so
        written.append(write_capacity_report(path, out))
        return written
    return [write_run_report(path, out)]
