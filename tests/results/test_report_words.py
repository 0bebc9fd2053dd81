"""The table's words: the surge by cohort, a latency row a reader can name."""

from __future__ import annotations

from esmeperf.results.report import render, surge_table


def cell(sent: int, p99: float | None = None) -> dict:
    figures = {} if p99 is None else {"count": sent, "p50_ms": p99 / 2, "p99_ms": p99}
    return {"sent": sent, "delivered": sent, "delivered_ratio": 1.0 if sent else None,
            "rtt": dict(figures), "send_lateness": dict(figures)}


SURGE = {
    "window_s": [60.0, 80.0], "source": "--stages", "open_chats_endured": True,
    "cohorts": {
        "before": {"participants": 300, "time_to_chat": {"count": 300, "p99_ms": 19.04},
                   "phases": {"before": cell(3000, 2.0), "during": cell(600, 3.0),
                              "after": cell(900, 4.0)}},
        # Arrived during the surge: nothing sent before it (a row nobody could fill), and in
        # this short run nothing sent during it either.
        "during": {"participants": 1050, "time_to_chat": {"count": 1050, "p99_ms": 23.0},
                   "phases": {"before": cell(0), "during": cell(0), "after": cell(5000, 6.0)}},
        "after": {"participants": 0, "time_to_chat": {"count": 0},
                  "phases": {"before": cell(0), "during": cell(0), "after": cell(0)}},
    },
}


def test_surge_table_gives_each_cohort_a_line_and_each_phase_it_could_send_in_a_row():
    assert surge_table(SURGE) == [
        "surge 60-80 s (--stages): open chats endured: yes",
        "                        sent  delivered   rtt p50   rtt p99  late p99",
        "  arrived before: 300 participants, time to chat p99 19.0ms",
        "    sent before         3000     1.0000     1.0ms     2.0ms     2.0ms",
        "    sent during          600     1.0000     1.5ms     3.0ms     3.0ms",
        "    sent after           900     1.0000     2.0ms     4.0ms     4.0ms",
        "  arrived during: 1050 participants, time to chat p99 23.0ms",
        "    sent during            0          -         -         -         -",
        "    sent after          5000     1.0000     3.0ms     6.0ms     6.0ms",
        "  arrived after: 0 participants",
        "    sent after             0          -         -         -         -",
    ]


def test_the_round_trip_with_the_unanswered_has_a_name_that_says_so():
    summary = {"settings": {"sci_ms": 10, "cpi_ms": 20, "smi_ms": 1000},
               "end_reason": "duration", "exit_status": 0, "steady_rate": 6964.333,
               "latency": {"message_rtt": {"count": 2, "p50_ms": 1.0, "p99_ms": 2.0},
                           "message_rtt_with_unconfirmed": {"count": 3, "p50_ms": 1.0,
                                                            "p99_ms": 9000.0}}}
    text = render(summary, {})
    rows = [line.split()[:3] for line in text.splitlines() if line.startswith("  rtt")]
    assert rows == [["rtt", "incl.", "unanswered"]]
    assert "  steady rate           6964.3 messages/s" in text.splitlines()
    assert "+ unconfirmed" not in text
