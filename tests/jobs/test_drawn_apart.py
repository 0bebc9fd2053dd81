"""The figures are drawn apart from the process that measured (issue 38): the PNG and the HTML
report come from a child process that reads the run's files, and matplotlib is never imported
by the process that ran the load."""

from __future__ import annotations

import json
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


def test_a_drawing_that_fails_costs_the_picture_not_the_run(tmp_path, caplog):
    """A summary that is not a run's: the child reports the failure, the caller logs it and
    gets nothing, and no exception reaches it."""
    bad = tmp_path / "1_performance_test_summary.json"
    bad.write_text("{not json")
    written = child.draw(bad, tmp_path / "x.png", html=True)
    assert written == {}
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any(m.startswith("could not draw the plot:") for m in errors), errors
    assert any(m.startswith("could not write the HTML report:") for m in errors), errors
    assert not Path(tmp_path / "x.png").exists()
