"""The figures are drawn apart from the process that measured (issue 38): the PNG and the HTML
report come from a child process that reads the run's files, and matplotlib is never imported
by the process that ran the load."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

from esmeperf.plot import child

RUN = """
import json, sys
from esmeperf.cli.main import main
status = main(["-q", "--out", sys.argv[1], "-sci", "10", "-cpi", "100", "-smi", "200",
               "--max-participants", "3", "--duration", "2s"])
print(json.dumps({"status": status, "matplotlib": sorted(m for m in sys.modules
                                                          if m.split(".")[0] == "matplotlib")}))
"""


def test_the_measuring_process_never_imports_matplotlib(tmp_path):
    done = subprocess.run([sys.executable, "-c", RUN, str(tmp_path)], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {"status": 0, "matplotlib": []}
    png = next(tmp_path.glob("*_performance_test_rates.png"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = next(tmp_path.glob("*_performance_test_report.html"))
    assert "<img" in report.read_text() or "<svg" in report.read_text()


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_a_drawing_that_fails_costs_the_picture_not_the_run(tmp_path):
    """A summary that is not a run's: the child reports the failure, the caller logs it and
    gets nothing, and no exception reaches it."""
    bad = tmp_path / "1_performance_test_summary.json"
    bad.write_text("{not json")
    collect = Collect()
    logger = logging.getLogger("esmeperf")  # main() may have set it not to propagate
    logger.addHandler(collect)
    try:
        written = child.draw(bad, tmp_path / "x.png", html=True)
    finally:
        logger.removeHandler(collect)
    assert written == {}
    errors = collect.messages
    assert any(m.startswith("could not draw the plot:") for m in errors), errors
    assert any(m.startswith("could not write the HTML report:") for m in errors), errors
    assert not Path(tmp_path / "x.png").exists()


def test_the_command_line_draws_in_place_of_the_run(tmp_path):
    """`python -m esmeperf`: the same process, once the run is over, becomes the drawing (its
    memory gone first); the run's exit status (3, a gate) and its final line stand."""
    done = subprocess.run([sys.executable, "-m", "esmeperf", "-q", "--out", str(tmp_path),
                           "-sci", "10", "-cpi", "100", "-smi", "200", "--max-participants",
                           "3", "--duration", "2s", "--max-p99", "0.0001"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 3, done.stderr
    assert done.stderr.splitlines()[-1].startswith("esmeperf: ended by duration: ")
    assert "gate max_p99_ms failed" in done.stderr.splitlines()[-1]
    png = next(tmp_path.glob("*_performance_test_rates.png"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    listed = {line.split()[0]: line.split()[-1] for line in done.stdout.splitlines()[-6:]}
    assert listed["plot"] == str(png) and Path(listed["report"]).is_file()


def test_the_report_pages_import_no_job():
    """plot/html.py reads a capacity search's steps by the run-directory names in
    results/rundata.py, not jobs/capacity.py's: the import cycle between them is gone."""
    code = ("import sys, esmeperf.plot.html; "
            "print(sorted(m for m in sys.modules if m.startswith('esmeperf.jobs')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
