"""Go's duration and time formats, checked against values Go itself prints."""

import re

import pytest

from esmeperf.results import gofmt


@pytest.mark.parametrize(("ns", "text"), [
    (0, "0s"),
    (999, "999ns"),
    (1_500, "1.5µs"),
    (10_000_000, "10ms"),
    (1_234_567, "1.234567ms"),
    (1_000_000_000, "1s"),
    (120_000_000_000, "2m0s"),
    (144_871_000_000, "2m24.871s"),
    (3_600_000_000_000, "1h0m0s"),
    (3_723_500_000_000, "1h2m3.5s"),
    (-1_500_000_000, "-1.5s"),
])
def test_duration_matches_go(ns, text):
    assert gofmt.duration(ns) == text


def test_ms_duration_of_the_go_test_defaults():
    assert [gofmt.ms_duration(v) for v in (10, 20, 100, 1000, 10000)] == [
        "10ms", "20ms", "100ms", "1s", "10s"]


def test_rfc3339nano_trims_zeros_and_parses_back(monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    import time

    time.tzset()
    try:
        assert gofmt.rfc3339nano(1682935200_123456789) == "2023-05-01T10:00:00.123456789Z"
        assert gofmt.rfc3339nano(1682935200_100000000) == "2023-05-01T10:00:00.1Z"
        assert gofmt.rfc3339nano(1682935200_000000000) == "2023-05-01T10:00:00Z"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_rfc3339nano_local_offset(monkeypatch):
    import time

    monkeypatch.setenv("TZ", "Europe/Warsaw")
    time.tzset()
    try:
        text = gofmt.rfc3339nano(1682935200_000000001)
    finally:
        monkeypatch.undo()
        time.tzset()
    assert text == "2023-05-01T12:00:00.000000001+02:00"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", text)
