"""Saved runs the figure and report tests share: one real run against the embedded target (made
once a session: stages, a surge and a gate, so every panel and table has something in it), ESME's
Go test's two files, and copies of a run's files laid out as a sweep or a capacity search holds
them."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from esmeperf.cli.main import main
from esmeperf.config import Output, Settings
from esmeperf.jobs.capacity import Step, find_capacity

# A short staged run with a surge: 60 participants over 4 s, a message each 250 ms.
SURGE_LOAD = ("-sci", "10", "--stages", "1s:20,2s:20,1s:0", "--surge", "1s-3s", "-smi", "250",
              "--max-p99", "5000")


@dataclass(frozen=True)
class SavedRun:
    folder: Path
    stdout: str  # the table the run printed

    @property
    def summary_path(self) -> Path:
        return _one(self.folder, "_performance_test_summary.json")

    @property
    def summary(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.summary_path.read_text())
        return data

    @property
    def report(self) -> Path:
        return _one(self.folder, "_performance_test_report.html")

    @property
    def stem(self) -> str:
        return self.summary_path.name.split("_performance_test_")[0]


_CACHE: dict[str, SavedRun] = {}


def surge_run(factory: pytest.TempPathFactory) -> SavedRun:
    """The session's real run (made on first use): exit 0, every file written."""
    if "surge" not in _CACHE:
        folder = factory.mktemp("surge") / "surge_run"
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            status = main(["-q", "--out", str(folder), *SURGE_LOAD])
        assert status == 0, out.getvalue()
        _CACHE["surge"] = SavedRun(folder, out.getvalue())
    return _CACHE["surge"]


def copy_run(run: SavedRun, folder: Path) -> Path:
    """The run's files (not its report) in another directory, e.g. a sweep's run directory."""
    folder.mkdir(parents=True)
    for path in run.folder.iterdir():
        if path.is_file() and not path.name.endswith(".html"):
            shutil.copy2(path, folder / path.name)
    return folder


def capacity_search(folder: Path, run: SavedRun, knee: int = 40) -> None:
    """A capacity search into `folder`: the search's own logic, with a stand-in for a target
    that keeps up with `knee` chats and no more (as tests/jobs/test_capacity.py does), each
    step's files a real run's, copied."""

    def run_step(settings: Settings, output: Output, step: Step) -> int:
        keeps_up = step.chats <= knee
        step.achieved_rate = step.intended_rate * (1.0 if keeps_up else 0.85)
        step.due = round(step.intended_rate * 10)
        step.made = step.due if keeps_up else round(step.due * 0.85)
        step.delivered_ratio = 1.0
        step.p99_ms = 4.0 if keeps_up else 1800.0
        for path in run.folder.iterdir():
            if path.is_file() and not path.name.endswith(".html"):
                shutil.copy2(path, output.out_dir / path.name)
        return 0

    assert find_capacity(Settings(smi=100, duration=10_000), Output(out_dir=folder), run_step,
                         start_chats=16) == 0


def write_go_run(folder: Path, stamp: int, rates: dict[int, int], smi: str = "100ms") -> Path:
    """The two files ESME's Go test writes, with only its original keys."""
    folder.mkdir(parents=True, exist_ok=True)
    summary = {
        "constants": {"start_chat_interval": "10ms", "create_participant_interval": "20ms",
                      "send_message_interval": smi, "log_ws": False},
        "description": "performance test summary",
        "organizer_time_started": "2023-05-01T12:00:00.123456789+02:00",
        "organizer_duration": "2m24.871s",
        "participants_time_started": "2023-05-01T12:00:00.2345+02:00",
        "participants_duration": "2m24.76s",
        "messages_sent": sum(rates.values()),
        "chats_count": 255,
        "created_participants_count": 262,
    }
    (folder / f"{stamp}_performance_test_summary.json").write_text(json.dumps(summary, indent=2))
    (folder / f"{stamp}_performance_test_message_rates.json").write_text(
        json.dumps({str(k): v for k, v in rates.items()}, indent=2))
    return folder / f"{stamp}_performance_test_summary.json"


def _one(folder: Path, suffix: str) -> Path:
    found = list(folder.glob(f"*{suffix}"))
    assert len(found) == 1, (folder, suffix, found)
    return found[0]
