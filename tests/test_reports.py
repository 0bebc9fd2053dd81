"""Reports: the plot tool on esmeperf's and ESME's own files, and sweeps with their report."""

from __future__ import annotations

import json
import struct

from esmeperf.cli import main
from esmeperf.plot import go_duration_ms, load_run
from esmeperf.plot import main as plot_main


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def write_go_run(folder, stamp, rates, smi="100ms"):
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


def test_sweep_runs_the_matrix_and_reports(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status = main(["-q", "--out", "sweep", "-sci", "10", "-cpi", "100", "-smi", "100,250",
                   "--max-participants", "4", "--duration", "1.5s"])
    assert status == 0
    runs = sorted(p.name for p in (tmp_path / "sweep").iterdir() if p.is_dir())
    assert runs == ["01_sci10_cpi100_smi100_r1", "02_sci10_cpi100_smi250_r1"]
    for name in runs:
        assert len(list((tmp_path / "sweep" / name).glob("*_performance_test_*"))) == 4
    table = (tmp_path / "sweep" / "report.md").read_text().splitlines()
    assert len(table) == 4 and table[2].startswith("| 01_sci10_cpi100_smi100_r1 | 10 | 100 | 100 |")
    assert table[3].endswith("| duration |")
    assert (tmp_path / "sweep" / "scatter.png").exists()
    assert (tmp_path / "sweep" / "overlay_sci10_cpi100_smi250.png").exists()
    assert png_size(tmp_path / "sweep" / "01_sci10_cpi100_smi100_r1" / "rates.png") == (1000, 650)
    assert not list((tmp_path / "sweep").glob("0*.png"))  # only runs match runs/0*


def test_sweep_needs_a_duration(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "-smi", "100,1000"]) == 2
    assert "needs --duration" in capsys.readouterr().err
