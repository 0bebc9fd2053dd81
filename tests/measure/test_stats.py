"""Per-second counters and HDR latency figures against known inputs."""

import threading

import pytest

from esmeperf.measure.latency import LatencyRecorder
from esmeperf.measure.stats import RateCounter
from esmeperf.results.summary import steady_rate


def test_rate_counter_counts_exactly_across_threads():
    counter = RateCounter()
    ready = threading.Barrier(8)

    def work(offset):
        ready.wait(timeout=10)
        for i in range(5000):
            counter.add(1_700_000_000 + (i + offset) % 3)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    snap = counter.snapshot()
    assert sum(snap.values()) == counter.total() == 40_000
    assert set(snap) == {1_700_000_000, 1_700_000_001, 1_700_000_002}
    snap.clear()  # a snapshot is a copy
    assert counter.total() == 40_000


def test_latency_percentiles_of_known_inputs():
    rec = LatencyRecorder()
    for ms in range(1, 1001):  # 1..1000 ms, uniformly; the n-th of 1001 values
        rec.record(100, ms / 1000)
    rec.record(101, 5.0)
    summary = rec.summary()
    assert summary["count"] == 1001
    assert summary["p50_ms"] == pytest.approx(501, rel=0.003)
    assert summary["p90_ms"] == pytest.approx(901, rel=0.003)
    assert summary["p99_ms"] == pytest.approx(991, rel=0.003)
    assert summary["max_ms"] == pytest.approx(5000, rel=0.002)
    assert rec.second_percentile_ms(100, 99) == pytest.approx(990, rel=0.01)
    assert rec.second_percentile_ms(101, 50) == pytest.approx(5000, rel=0.01)
    assert rec.second_percentile_ms(102, 50) is None
    assert rec.seconds() == [100, 101]


def test_empty_recorder():
    assert LatencyRecorder().summary() == {"count": 0}


def test_steady_rate_ignores_partial_edges_and_ramp():
    # seconds 0..9: ramp 1..5 then flat 50; edges are partial seconds
    rates = {s: (s * 10 if s < 5 else 50) for s in range(10)}
    rates[9] = 3  # the last, partial second
    assert steady_rate(rates) == pytest.approx(50)
    assert steady_rate({1: 5}) == 0.0


def test_metrics_drain_and_merge_are_exact():
    from esmeperf.measure.names import Count, CountFamily
    from esmeperf.measure.stats import Metrics

    shard_a, shard_b, parent = Metrics(), Metrics(), Metrics()
    for i in range(1, 1001):
        shard = shard_a if i % 2 else shard_b
        shard.sent.add(100 + i % 3)
        shard.message_rtt.record(100 + i % 3, i / 1000)
        shard.count(Count.CHATS)
        shard.count_of(CountFamily.PARTICIPANT_FRAMES, "new_chat")
    first = shard_a.drain()
    shard_a.sent.add(200, 5)  # recorded after the first drain: goes in the next one
    for delta in (first, shard_b.drain(), shard_a.drain()):
        parent.merge(delta)
    assert parent.sent.total() == 1005 and parent.get(Count.CHATS) == 1000
    assert parent.counts() == {"chats_count": 1000, "participant_frames_new_chat": 1000}
    assert parent.sent.snapshot()[200] == 5
    merged = parent.message_rtt.summary()
    assert merged["count"] == 1000
    assert merged["p50_ms"] == pytest.approx(500, rel=0.003)
    assert merged["mean_ms"] == pytest.approx(500.5, rel=0.001)
    assert parent.message_rtt.second_percentile_ms(101, 50) is not None
    assert shard_a.sent.total() == 0 and shard_a.message_rtt.summary() == {"count": 0}


def test_old_seconds_are_retired_to_their_percentiles():
    from esmeperf.measure.latency import LIVE_SECONDS

    rec = LatencyRecorder()
    for second in range(1000, 1000 + LIVE_SECONDS + 10):
        for ms in range(1, 101):
            rec.record(second, ms / 1000)
    assert len(rec._live) <= LIVE_SECONDS + 1  # memory stays bounded
    assert rec.seconds() == list(range(1000, 1000 + LIVE_SECONDS + 10))
    retired, live = 1000, 1000 + LIVE_SECONDS + 9
    for second in (retired, live):
        assert rec.second_percentile_ms(second, 50) == pytest.approx(50, rel=0.02)
        assert rec.second_percentile_ms(second, 99) == pytest.approx(99, rel=0.02)
    assert rec.summary()["count"] == 100 * (LIVE_SECONDS + 10)


def test_retired_and_drained_histograms_are_freed_at_once():
    import gc
    import weakref

    from esmeperf.measure.latency import LIVE_SECONDS

    gc.disable()  # freed by reference counting, not by a later garbage collection
    try:
        rec = LatencyRecorder()
        rec.record(1000, 0.001)
        assert rec.seconds() == [1000]  # a read records what was queued
        first = weakref.ref(rec._live[1000])
        rec.record(1000 + LIVE_SECONDS + 1, 0.001)
        rec.seconds()
        assert first() is None
        live = weakref.ref(rec._live[1000 + LIVE_SECONDS + 1])
        total = weakref.ref(rec._total)
        LatencyRecorder().merge(rec.drain())
        assert live() is None and total() is None
    finally:
        gc.enable()


def test_cumulative_counts_at_bounds_match_the_recorded_values():
    recorder = LatencyRecorder(per_second=False)
    values_s = [0.0005, 0.001, 0.002, 0.01, 0.5, 3.0]
    for value in values_s:
        recorder.record(1, value)
    bounds_us = [1_000, 5_000, 1_000_000, 30_000_000]
    below, total, sum_us = recorder.cumulative(bounds_us)
    assert below == [sum(v * 1e6 <= b for v in values_s) for b in bounds_us] == [2, 3, 5, 6]
    assert total == 6
    assert sum_us == sum(int(v * 1e6) for v in values_s)
    assert LatencyRecorder().cumulative(bounds_us) == ([0, 0, 0, 0], 0, 0)


def test_window_summary_merges_exactly_the_seconds_asked_for():
    recorder = LatencyRecorder()
    # 100 fast values a second for 10 seconds, and one slow second outside the window.
    for second in range(100, 110):
        for i in range(100):
            recorder.record(second, 0.001 + i * 0.00001)
    for _ in range(100):
        recorder.record(111, 2.0)
    window = recorder.window_summary(100, 109)
    assert window["count"] == 1000
    assert 1.0 <= window["p99_ms"] <= 2.0
    assert "mean_ms" not in window
    assert recorder.window_summary(111, 111)["p50_ms"] == pytest.approx(2000, rel=0.01)
    assert recorder.window_summary(200, 210) == {"count": 0}


def _totals(rec):
    """The recorder's intervals (the .hlog's), added up into one histogram."""
    from esmeperf.measure.latency import add_encoded, new_histogram

    total = new_histogram(3)
    for _, interval in rec.intervals():
        add_encoded(total, interval.encode())
    return total


def test_each_value_is_recorded_once_and_the_seconds_add_up_to_the_run():
    from esmeperf.measure.latency import LIVE_SECONDS, summarize

    rec = LatencyRecorder()
    for second in range(100, 110):
        for ms in range(1, 201):
            rec.record(second, ms * (second - 99) / 1000)
    rec.record(100, 7.0)  # long retired: its second reopens, and merges when retired again
    rec.record(120, 0.5)
    assert 100 not in rec._live and len(rec._live) <= LIVE_SECONDS + 1
    whole = _totals(rec)
    assert summarize(whole, rec._sum_us) == rec.summary()
    assert rec.summary()["count"] == 2002
    assert [s for s, _ in rec.intervals()] == [*range(100, 110), 120]
    assert rec.second_percentile_ms(100, 99) == pytest.approx(199, rel=0.01)
    assert rec.second_percentile_ms(100, 100) == pytest.approx(7000, rel=0.001)


def test_recorders_without_a_second_take_it_from_the_clock():
    import time

    rec = LatencyRecorder(per_second=False)
    before = int(time.time())
    rec.record(0, 0.01)
    after = int(time.time())
    assert rec.seconds() and before <= rec.seconds()[0] <= after


def test_drained_seconds_merge_exactly_even_once_retired():
    shard, parent = LatencyRecorder(), LatencyRecorder()
    for second in range(500, 510):  # the shard retires most of these before its drain
        for ms in range(1, 101):
            shard.record(second, ms / 1000)
    expected = shard.summary()
    parent.merge(shard.drain())
    parent.merge(shard.drain())  # an empty delta changes nothing
    assert parent.summary() == expected
    assert [s for s, _ in parent.intervals()] == list(range(500, 510))
    assert shard.summary() == {"count": 0} and shard.intervals() == []


def test_fast_percentiles_are_hdrhistograms_own():
    import random

    from hdrh.histogram import HdrHistogram

    from esmeperf.measure.latency import new_histogram, percentile_values

    rng = random.Random(3)
    for digits in (2, 3):
        hist = new_histogram(digits)
        for _ in range(3000):
            hist.record_value(int(rng.lognormvariate(8, 2)) + 1)
        pcts = [0.0, 50.0, 90.0, 99.0, 99.9, 100.0]
        decoded = HdrHistogram.decode(hist.encode())  # a decoded one: its own counts array
        for h in (hist, decoded):
            assert percentile_values(h, pcts) == h.get_percentile_to_value_dict(pcts)


def test_cumulative_agrees_with_hdrhistograms_own_iterator():
    import bisect
    import itertools
    import random

    rng = random.Random(7)
    recorder = LatencyRecorder()
    for i in range(20_000):
        recorder.record(1_000 + i // 5_000, rng.lognormvariate(-6, 1.5))
    bounds = [100, 999, 1_000, 1_001, 5_000, 100_000, 1_000_000, 30_000_000]
    below, total, _ = recorder.cumulative(bounds)
    with recorder._lock:
        whole = recorder._whole()
    per_bound = [0] * (len(bounds) + 1)
    for item in whole.get_recorded_iterator():
        per_bound[bisect.bisect_left(bounds, item.value_iterated_to)] += \
            item.count_at_value_iterated_to
    assert below == list(itertools.accumulate(per_bound[:-1]))
    assert total == 20_000 and below[-1] <= total


def test_values_recorded_from_many_threads_at_once_are_all_counted_once():
    """record() queues without the lock and flushes by whichever thread finds the queue full:
    every value lands in exactly one histogram, while readers read in between."""
    import threading

    from esmeperf.measure.latency import FLUSH_AT

    rec = LatencyRecorder()
    threads, each = 8, 3 * FLUSH_AT + 7
    go = threading.Barrier(threads + 1)

    def work(k: int) -> None:
        go.wait(10)
        for i in range(each):
            rec.record(1000 + i % 3, (k * each + i + 1) / 1e6)

    workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for worker in workers:
        worker.start()
    go.wait(10)
    while any(worker.is_alive() for worker in workers):
        rec.summary()  # a reader flushing while writers append
        workers[0].join(0.001)
    for worker in workers:
        worker.join(10)
    summary = rec.summary()
    n = threads * each
    assert summary["count"] == n
    assert summary["mean_ms"] == round(sum(range(1, n + 1)) / n / 1000, 3)
    assert rec.seconds() == [1000, 1001, 1002]
