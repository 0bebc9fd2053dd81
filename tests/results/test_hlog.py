"""The latency log every run writes: read back with hdrhistogram's own reader, it holds
every latency of the summary exactly, merged from every shard."""

from __future__ import annotations

from hdrh.log import HistogramLogReader
from helpers import load_results, run_main

from esmeperf.measure.latency import new_histogram, release, summarize
from esmeperf.results.summary import HLOG_SUFFIX

# A light, fixed load: 20 participants, 20 messages/s each, for 3 s.
LOAD = ("-sci", "10", "-cpi", "10", "-smi", "50", "--max-participants", "20",
        "--duration", "3s", "--no-plot")


def test_hlog_of_a_two_process_run_reads_back_to_the_summary(tmp_path):
    assert run_main(tmp_path, None, *LOAD, "--processes", "2") == 0
    out = tmp_path / "out"
    summary, _ = load_results(out)
    assert summary["shards"] and len(summary["shards"]) == 2
    (path,) = out.glob(f"*{HLOG_SUFFIX}")
    assert path.name.split("_")[0] == next(out.glob("*_summary.json")).name.split("_")[0]
    reader = HistogramLogReader(str(path), new_histogram(3))
    totals: dict[str, object] = {}
    seconds: dict[str, list[float]] = {}
    try:
        while (interval := reader.get_next_interval_histogram()) is not None:
            tag = interval.get_tag()
            seconds.setdefault(tag, []).append(interval.get_start_time_stamp() / 1000)
            if tag in totals:
                totals[tag].add(interval)
                release(interval)
            else:
                totals[tag] = interval
    finally:
        reader.close()
    latency = summary["latency"]
    for tag in ("message_rtt", "send_lateness", "arrival_lateness", "sign_up", "chat_request",
                "ws_handshake"):
        read = summarize(totals[tag], 0)
        assert {k: v for k, v in read.items() if k != "mean_ms"} == \
            {k: v for k, v in latency[tag].items() if k != "mean_ms"}, tag
        assert seconds[tag] == sorted(set(seconds[tag])), tag  # one interval per second
    assert "organizer_reply" not in totals  # nothing measured, no intervals
    assert len(seconds["message_rtt"]) >= 3
