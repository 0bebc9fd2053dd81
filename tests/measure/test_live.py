"""--metrics-port: a live Prometheus endpoint whose final values are the summary's, scraped by a
real Prometheus server when one is installed; a port in use is exit 2 before any load."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import skip_unless_required
from helpers import child_targets, load_results, run_main, write_config
from prometheus_client.parser import text_string_to_metric_families

from esmeperf.cli.main import (
    get_parser,
    main,
    output_from_args,
    resolve_arrivals,
    settings_from_args,
)
from esmeperf.config import load_target
from esmeperf.jobs.job import Job, run_job
from esmeperf.measure.live import BOUNDS_S, Endpoint

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "contrib" / "grafana" / "esmeperf.json"
RUN = ("-sci", "10", "-cpi", "20", "-smi", "100", "--no-plot")


def scrape(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Sample name -> labels -> value, from one GET of the endpoint."""
    text = requests.get(url, timeout=5).text
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def one(samples: dict[str, dict[Any, float]], name: str) -> float:
    values = samples[name]
    assert len(values) == 1, values
    return next(iter(values.values()))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def dashboard_exprs() -> list[str]:
    panels = json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]
    return [t["expr"] for p in panels for t in p["targets"]]


def test_the_last_scrape_agrees_with_the_summary(tmp_path, target):
    """Scraped after the run's files are written, before the endpoint closes: every figure is
    the summary's own, and every metric the dashboard uses is there."""
    config = write_config(tmp_path, target.config)
    args = get_parser().parse_args([*RUN, "-q", "--duration", "2s", "--out",
                                    str(tmp_path / "out")])
    resolve_arrivals(args)
    with Endpoint("127.0.0.1", 0) as live:
        assert scrape(live.url) == {}  # nothing to say before a run is attached
        status = run_job(settings_from_args(args), output_from_args(args),
                         Job(load_target(config), live=live))
        samples = scrape(live.url)
    assert status == 0
    summary, _ = load_results(tmp_path / "out")
    run_id = summary["run_id"]
    for labels in (key for values in samples.values() for key in values):
        assert ("run_id", run_id) in labels
    assert summary["messages_sent"] > 0
    expected = {
        "esmeperf_messages_sent_total": summary["messages_sent"],
        "esmeperf_messages_delivered_total": summary["messages_delivered"],
        "esmeperf_messages_unconfirmed_total": summary["messages_unconfirmed"],
        "esmeperf_organizer_messages_received_total": summary["organizer_received"],
        "esmeperf_participants_created_total": summary["created_participants_count"],
        "esmeperf_chats_started_total": summary["chats_count"],
        "esmeperf_errors_total": summary["errors_after_stop"] + bool(summary["first_error"]),
        "esmeperf_sends_missed_total": summary["messages_missed"],
        "esmeperf_running": 0, "esmeperf_active_chats": 0, "esmeperf_connections_open": 0,
        "esmeperf_intended_messages_per_second": 0,
        "esmeperf_exit_status": 0,
        "esmeperf_generator_limited": int(summary["generator_health"]["suspect"]),
    }
    assert {name: one(samples, name) for name in expected} == expected
    frames = {dict(k)["type"]: v for k, v in samples["esmeperf_organizer_frames_received_total"]
              .items()}
    assert frames == {k[len("organizer_frames_"):]: v for k, v in summary["counts"].items()
                      if k.startswith("organizer_frames_")}
    assert 0 < one(samples, "esmeperf_generator_cpu_seconds_total") < 60
    histograms = {"message_round_trip": "message_rtt", "send_lateness": "send_lateness",
                  "arrival_lateness": "arrival_lateness", "sign_up": "sign_up",
                  "ws_handshake": "ws_handshake"}
    for name, key in histograms.items():
        latency, prefix = summary["latency"][key], f"esmeperf_{name}_seconds"
        count = one(samples, f"{prefix}_count")
        assert count == latency["count"] > 0, name
        assert one(samples, f"{prefix}_sum") / count * 1000 == pytest.approx(
            latency["mean_ms"], abs=0.001), name
        buckets = sorted((float(dict(k)["le"]), v) for k, v in samples[f"{prefix}_bucket"].items())
        assert [b for b, _ in buckets] == [*BOUNDS_S, float("inf")]
        assert [v for _, v in buckets] == sorted(v for _, v in buckets) and buckets[-1][1] == count
        # The summary's p99 lies in the bucket where the cumulative count first reaches it
        # (HDR values are exact to 0.1 %, hence the slack at the edges).
        rank = max(1, int(0.99 * count + 0.5))  # the value HDR gives as p99 (its rounding)
        index = next(i for i, (_, v) in enumerate(buckets) if v >= rank)
        p99_s = latency["p99_ms"] / 1000
        assert p99_s <= buckets[index][0] * 1.001, (name, p99_s, buckets)
        assert index == 0 or p99_s * 1.001 >= buckets[index - 1][0], (name, p99_s, buckets)
    used = {m for expr in dashboard_exprs() for m in re.findall(r"esmeperf_\w+", expr)}
    assert used and used <= set(samples), used - set(samples)


def test_a_run_serves_live_metrics_and_closes_the_endpoint(tmp_path, target):
    """main() with --metrics-port: the counters grow while the load runs; then the port and
    its threads are gone."""
    config = write_config(tmp_path, target.config)
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    statuses: list[int] = []
    finished = threading.Event()

    def job() -> None:
        try:
            statuses.append(run_main(tmp_path, config, *RUN, "--duration", "4s",
                                     "--metrics-port", str(port)))
        finally:
            finished.set()

    runner = threading.Thread(target=job, name="esmeperf-main")
    runner.start()
    live: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + 60
        while not finished.wait(0.1) and time.monotonic() < deadline:
            try:
                samples = scrape(url)
            except requests.ConnectionError:
                continue  # not listening yet
            if samples.get("esmeperf_running") and one(samples, "esmeperf_running") == 1 \
                    and one(samples, "esmeperf_messages_sent_total") > 0:
                live = samples
                break
    finally:
        runner.join(60)
    assert not runner.is_alive() and statuses == [0]
    assert one(live, "esmeperf_connections_open") > 0
    assert one(live, "esmeperf_intended_messages_per_second") > 0
    summary, _ = load_results(tmp_path / "out")
    assert one(live, "esmeperf_messages_sent_total") <= summary["messages_sent"]
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=5)
    assert not [t.name for t in threading.enumerate() if t.name.startswith("metrics-http")]


@pytest.mark.parametrize("args, message", [
    (["--metrics-host", "::1"], "--metrics-host needs --metrics-port"),
    (["--metrics-port", "65536"], "--metrics-port: must be a port from 0 to 65535, got '65536'"),
    # TEST-NET-1: no interface of this machine has it, so nothing can listen there
    (["--metrics-port", "0", "--metrics-host", "192.0.2.1"],
     "--metrics-port 0: cannot listen on 192.0.2.1:0 (Cannot assign requested address)"),
])
def test_bad_metrics_flags_are_one_line_exit_2(tmp_path, capsys, args, message):
    assert main(["--duration", "5s", "--out", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not child_targets()


def test_a_port_in_use_is_exit_2_before_any_load(tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        status = main([*RUN, "--duration", "5s", "--out", str(tmp_path),
                       "--metrics-port", str(port)])
    assert status == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"esmeperf: error: --metrics-port {port}: cannot listen on "
                   f"127.0.0.1:{port} (Address already in use)"]
    assert not list(tmp_path.iterdir()) and not child_targets()  # no target, no files


# -- a real Prometheus server ------------------------------------------------------------------


@pytest.fixture
def prometheus(tmp_path) -> Iterator[tuple[str, int]]:
    """Prometheus on loopback (ephemeral ports, storage in tmp_path) scraping the README's
    job every second; yields its API base URL and the port esmeperf must serve on."""
    binary = shutil.which("prometheus")
    if binary is None:
        skip_unless_required("prometheus", "no prometheus binary on PATH (.ci/run installs "
                             "it: apt-get install prometheus)")
    target_port, web_port = free_port(), free_port()
    scrape_config = readme_scrape_config().replace("9464", str(target_port))
    scrape_config = re.sub(r"scrape_interval: \S+", "scrape_interval: 1s", scrape_config)
    (tmp_path / "prometheus.yml").write_text(scrape_config)
    log = tmp_path / "prometheus.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [binary, f"--config.file={tmp_path / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{web_port}"],
            stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{web_port}"
    try:
        # Ready once it has tried the target (its scrape manager applies targets every 5 s):
        # esmeperf's first scrapes are then a second apart from its start.
        ready, deadline = threading.Event(), time.monotonic() + 60
        while not ready.wait(0.1):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "prometheus tried no scrape within 60 s"
            try:
                targets = requests.get(f"{base}/api/v1/targets", timeout=2).json()
            except (requests.ConnectionError, ValueError):
                continue  # not listening yet, or still starting
            if any(t["health"] != "unknown" for t in targets["data"]["activeTargets"]):
                ready.set()
        yield base, target_port
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def readme_scrape_config() -> str:
    """docs/metrics.md's Prometheus scrape config (its one ```yaml block)."""
    page = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", page, re.S)
    assert len(blocks) == 1, blocks
    return blocks[0]


def query(base: str, expr: str, at: float | None = None) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"query": expr}
    if at is not None:
        params["time"] = at
    body = requests.get(f"{base}/api/v1/query", params=params, timeout=10).json()
    assert body["status"] == "success", (expr, body)
    return list(body["data"]["result"])


@pytest.mark.slow
def test_a_real_prometheus_scrapes_a_run(tmp_path, target, prometheus):
    base, port = prometheus
    config = write_config(tmp_path, target.config)
    assert run_main(tmp_path, config, *RUN, "--duration", "5s", "--metrics-port",
                    str(port)) == 0
    summary, _ = load_results(tmp_path / "out")
    # The endpoint is gone, so ask for the raw samples of the last minute (stale markers,
    # written since, are not samples), then evaluate at the last one.
    series = query(base, "esmeperf_messages_sent_total[1m]")
    assert len(series) == 1 and series[0]["metric"]["run_id"] == summary["run_id"], series
    points = [(float(t), float(v)) for t, v in series[0]["values"]]
    assert len(points) >= 2, points
    assert [v for _, v in points] == sorted(v for _, v in points)
    last_at, last = points[-1]
    assert 0 < last <= summary["messages_sent"]
    p99 = query(base, "histogram_quantile(0.99, esmeperf_message_round_trip_seconds_bucket)",
                last_at)
    assert len(p99) == 1 and 0 < float(p99[0]["value"][1]) <= BOUNDS_S[-1], p99
    # Every query of the Grafana dashboard is valid PromQL for this Prometheus.
    for expr in dashboard_exprs():
        expr = expr.replace("$__rate_interval", "5s").replace("$run_id", summary["run_id"])
        query(base, expr, last_at)
