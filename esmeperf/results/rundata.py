"""Saved runs read back: esmeperf's result files or ESME's Go test output, for plots and reports.

Every error is a RunFileError whose one-line message names the file at fault.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .series import read_series
from .summary import HLOG_SUFFIX, PLOT_SUFFIX, RATES_SUFFIX, SERIES_SUFFIX, SUMMARY_SUFFIX

# Go duration strings as the summary's `constants` hold them: "10ms", "1s", "1m30s".
_GO_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|µs|us|ns|h|m|s)")
_GO_UNIT_MS = {"h": 3_600_000, "m": 60_000, "s": 1000, "ms": 1, "µs": 1e-3, "us": 1e-3,
               "ns": 1e-6}
# A sweep's run directory, as sweep.matrix names it: its name says the run's parameters.
SWEEP_RUN_DIR = re.compile(r"\d{2,}_sci[^_]+_cpi[^_]+_smi[^_]+_r\d+")
# A capacity search's steps: STEPS_DIR/<NN>_chats<N>/ in its output directory.
STEPS_DIR = "capacity"
CAPACITY_STEP_DIR = re.compile(r"\d+_chats\d+")
_INTERVALS = {"sci": "start_chat_interval", "cpi": "create_participant_interval",
              "smi": "send_message_interval"}


class RunFileError(Exception):
    """A saved run that cannot be read; the message is one line and names the file."""


def go_duration_ms(text: str) -> float:
    """Parse a Go duration string into milliseconds."""
    parts = _GO_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text.lstrip("-"):
        raise ValueError(f"not a Go duration: {text!r}")
    return sum(float(n) * _GO_UNIT_MS[u] for n, u in parts)


@dataclass
class RunData:
    """One saved run, from esmeperf's files or the Go test's."""

    stem: str
    summary: dict[str, Any]
    rows: list[dict[str, Any]]
    params: dict[str, float] = field(default_factory=dict)
    folder: str = ""  # the name of the directory the run was loaded from
    latency_log: Path | None = None  # its .hlog, where it has one (esmeperf's runs)

    @property
    def label(self) -> str:
        p = self.params
        if not p:
            return self.stem
        return f"sci {p['sci']:g} cpi {p['cpi']:g} smi {p['smi']:g} ms"

    def max_rate(self) -> tuple[int, int]:
        """(highest messages/s of any second, active chats in that second)."""
        if not self.rows:
            return 0, int(self.summary.get("chats_count", 0))
        best = max(self.rows, key=lambda r: int(r["sent"]))
        chats = int(best.get("chats") or 0) or int(self.summary.get("chats_count", 0))
        return int(best["sent"]), chats


def load_run(path: Path) -> RunData:
    """Load a run from its directory or from any one of its files."""
    if not path.exists():
        raise RunFileError(f"{path}: no such file or directory")
    if path.is_dir():
        summaries = sorted(path.glob(f"*{SUMMARY_SUFFIX}"))
        rates = sorted(path.glob(f"*{RATES_SUFFIX}"))
        if not summaries and not rates:
            raise RunFileError(f"{path}: no *{SUMMARY_SUFFIX} or *{RATES_SUFFIX} in this "
                               "directory")
        path = (summaries or rates)[-1]
    for suffix in (SUMMARY_SUFFIX, RATES_SUFFIX, SERIES_SUFFIX, PLOT_SUFFIX):
        if path.name.endswith(suffix):
            stem = path.name[: -len(suffix)]
            break
    else:
        raise RunFileError(f"{path}: not an esmeperf or ESME performance-test file (give a run "
                           f"directory or its *{SUMMARY_SUFFIX}, *{RATES_SUFFIX} or "
                           f"*{SERIES_SUFFIX})")
    folder = path.parent
    summary_path, rates_path, series_path = (folder / f"{stem}{s}" for s in
                                             (SUMMARY_SUFFIX, RATES_SUFFIX, SERIES_SUFFIX))
    summary = _summary(summary_path) if summary_path.exists() else {}
    if series_path.exists():
        rows = _guarded(series_path, read_series)
    elif rates_path.exists():
        rows = rows_from_rates(_guarded(rates_path, _rates))
    else:
        raise RunFileError(f"{path}: neither {series_path.name} nor {rates_path.name} exists")
    hlog = folder / f"{stem}{HLOG_SUFFIX}"
    return RunData(stem, summary, rows, _params(summary_path, summary),
                   folder.resolve().name, hlog if hlog.exists() else None)


def _summary(path: Path) -> dict[str, Any]:
    data = _guarded(path, lambda p: json.loads(p.read_text(encoding="utf-8")))
    if not isinstance(data, dict):
        raise RunFileError(f"{path}: not a performance-test summary (a JSON object expected)")
    return data


def _rates(path: Path) -> dict[int, int]:
    """A message-rates file (Unix second as a string -> messages sent), checked."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError("not a message-rates object (Unix second -> messages sent)")
    rates = {}
    for key, value in data.items():
        if not (key.isdigit() and isinstance(value, int) and not isinstance(value, bool)):
            raise ValueError(f"not a message-rates object: {key!r}: {value!r}")
        rates[int(key)] = value
    return rates


def _params(path: Path, summary: dict[str, Any]) -> dict[str, float]:
    """sci, cpi and smi in ms from the summary's `constants`; {} when it has none."""
    constants = summary.get("constants")
    if not isinstance(constants, dict) or not all(k in constants for k in _INTERVALS.values()):
        return {}
    params = {}
    for short, key in _INTERVALS.items():
        try:
            params[short] = go_duration_ms(str(constants[key]))
        except ValueError as exc:
            raise RunFileError(f"{path}: constants.{key}: {exc}") from None
    return params


def _guarded(path: Path, read: Any) -> Any:
    """read(path), with every way a file can be unreadable or corrupt as one RunFileError."""
    try:
        return read(path)
    except json.JSONDecodeError as exc:
        raise RunFileError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} "
                           f"column {exc.colno})") from None
    except UnicodeDecodeError:
        raise RunFileError(f"{path}: not a text file (not UTF-8)") from None
    except OSError as exc:
        raise RunFileError(f"{path}: {exc.strerror or exc}") from None
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise RunFileError(f"{path}: {exc}") from None


def rows_from_rates(rates: dict[int, int]) -> list[dict[str, Any]]:
    """Series rows from a message-rates file alone (the Go test's output), zero-filled."""
    if not rates:
        return []
    return [{"second": s, "sent": rates.get(s, 0)} for s in range(min(rates), max(rates) + 1)]


def run_name(run: RunData, runs: list[RunData]) -> str:
    """The run's name in a legend: its directory (with its parameters unless the name says
    them), and its start time when several runs share one directory."""
    name = run.folder or run.stem
    if sum((r.folder or r.stem) == name for r in runs) > 1:
        started = str(run.summary.get("participants_time_started") or "")
        name += f" {started[:19].replace('T', ' ')}" if started else f" {run.stem}"
    if run.params and not SWEEP_RUN_DIR.fullmatch(run.folder):
        name += f": {run.label}"
    return name
