"""Live metrics: a Prometheus `/metrics` endpoint for the whole job (--metrics-port).

Nothing here runs on a worker's path. The workers keep counting into the run's `Metrics` as
they always do; a scrape reads those totals (and the HDR histograms' buckets) once, on the
endpoint's own thread, so the cost is per scrape, not per message. The parent's `Metrics`
already holds what `--processes` and Dask shards measured (their deltas are merged twice a
second), so one endpoint covers the whole run.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)

from .. import __version__
from ..config import Settings
from ..errors import ConfigError
from . import health
from .latency import LatencyRecorder
from .names import LATENCIES, Count, CountFamily
from .stats import Metrics, settled_second

log = logging.getLogger("esmeperf")

# Histogram bucket bounds in seconds: 0.1 ms to 30 s, 1-2-5 steps (what histogram_quantile
# interpolates between; the HDR histograms behind them keep the summary's exact percentiles).
BOUNDS_S = (0.0001, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5,
            1.0, 2.0, 5.0, 10.0, 30.0)
_BOUNDS_US = [round(b * 1_000_000) for b in BOUNDS_S]
DEFAULT_HOST = "127.0.0.1"  # loopback: other hosts scrape only when told (--metrics-host)
# A client that connects and says nothing must not hold a request thread for ever.
REQUEST_TIMEOUT = 10.0
# How long close() waits for the serving thread and requests in progress.
CLOSE_TIMEOUT = 5.0
# The CPU gauge reads the second before last: the main thread's once-a-second CpuMeter tick
# (and shards' deltas, twice a second) have surely filled it by then.
CPU_LAG_S = 2

@dataclass(frozen=True)
class _Run:
    """What a scrape reads: the current run's measurements and how it was set up."""

    run_id: str
    metrics: Metrics
    settings: Settings
    stopped: threading.Event  # the load is over (the run's stop Event)


class RunCollector:
    """A prometheus_client collector that reads the current run's `Metrics` on each scrape.

    Invariant: `_run` and `_summary` change only under `_lock`; collect() reads them once.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._run: _Run | None = None
        self._summary: dict[str, Any] | None = None
        self.scrapes = 0  # answered scrapes, for the log at the end

    def attach(self, run_id: str, metrics: Metrics, settings: Settings,
               stopped: threading.Event) -> None:
        """Serve this run from now on (a sweep attaches each of its runs in turn)."""
        with self._lock:
            self._run = _Run(run_id, metrics, settings, stopped)
            self._summary = None

    def finish(self, summary: dict[str, Any]) -> None:
        """The run's summary exists: add its verdicts (generator health, exit status)."""
        with self._lock:
            self._summary = summary

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            run, summary = self._run, self._summary
            self.scrapes += 1
        if run is None:  # the embedded target or the Dask cluster is still starting
            return
        labels = {"run_id": run.run_id}
        yield from _info(run)
        yield from _counters(run, labels)
        yield from _gauges(run, labels)
        for latency in LATENCIES:
            if latency.prometheus is not None:
                yield _histogram(f"esmeperf_{latency.prometheus}_seconds",
                                 f"{latency.help}, in seconds.",
                                 run.metrics.recorder(latency.key), labels)
        if summary is not None:
            yield from _verdicts(summary, labels)


def _info(run: _Run) -> Iterator[Metric]:
    s = run.settings
    info = InfoMetricFamily("esmeperf_run", "The run being measured and its settings.",
                            labels=["run_id"])
    info.add_metric([run.run_id], {
        "version": __version__, "sci_ms": f"{s.sci:g}", "cpi_ms": f"{s.cpi:g}",
        "smi_ms": f"{s.smi:g}", "processes": str(s.processes),
        "stages": ",".join(f"{d:g}s:{r:g}" for d, r in s.stages)})
    yield info


def _counter(name: str, doc: str, value: float, labels: dict[str, str]) -> Metric:
    family = CounterMetricFamily(name, doc, labels=list(labels))
    family.add_metric(list(labels.values()), value)
    return family


def _gauge(name: str, doc: str, value: float, labels: dict[str, str]) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=list(labels))
    family.add_metric(list(labels.values()), value)
    return family


def _counters(run: _Run, labels: dict[str, str]) -> Iterator[Metric]:
    """The summary's totals, each read the way build_summary reads it."""
    m = run.metrics
    counts = m.counts()
    # Every message a participant ended with unechoed: the summary's messages_unconfirmed
    # (sent - delivered) once all have ended, and never decreasing on the way there.
    _, unconfirmed, _ = m.unconfirmed.cumulative([])
    # While the load runs, sent and delivered up to the same settled second: a batched read
    # counts an echo up to an interval after it came (by its arrival), and a dashboard's rates
    # of the two must not show a loss that is only that wait. After the stop, everything.
    until = None if run.stopped.is_set() else settled_second(run.settings)
    values: list[tuple[str, str, float]] = [
        ("messages_sent", "Participant messages written to their sockets.",
         m.sent.total(until)),
        ("messages_delivered", "Participant messages echoed back by the target, by when "
         "the echo arrived.", m.delivered.total(until)),
        ("messages_unconfirmed", "Messages still unechoed when their participant ended.",
         unconfirmed),
        ("organizer_messages_received", "Participant messages the organizers received.",
         m.organizer_received.total()),
        ("participants_created", "Participants signed up with their chat request filed.",
         counts.get(Count.CREATED_PARTICIPANTS, 0)),
        ("chats_started", "Participants that learned their chat id (the Go test's chats).",
         counts.get(Count.CHATS, 0)),
        ("errors", "Worker errors, the first and any after the stop.", m.errors.total()),
        ("sends_missed", "Send slots skipped by a participant a whole interval late.",
         m.missed.total()),
        ("generator_cpu_seconds", "CPU time of the generator (this process and its shards).",
         sum(m.generator_cpu_ms.snapshot().values()) / 1000),
    ]
    for name, doc, value in values:
        yield _counter(f"esmeperf_{name}", doc, value, labels)
    prefix = f"{CountFamily.ORGANIZER_FRAMES.value}_"
    frames = CounterMetricFamily("esmeperf_organizer_frames_received",
                                 "Frames the organizers read, by type.",
                                 labels=[*labels, "type"])
    for key, value in sorted(counts.items()):
        if key.startswith(prefix):
            frames.add_metric([*labels.values(), key[len(prefix):]], value)
    yield frames


def _gauges(run: _Run, labels: dict[str, str]) -> Iterator[Metric]:
    m, s = run.metrics, run.settings
    running = not run.stopped.is_set()
    chats = m.get(Count.CHATS) if running else 0
    cores = health.generator_cores(s.processes)
    cpu_ms = m.generator_cpu_ms.at(int(time.time()) - CPU_LAG_S)
    values: list[tuple[str, str, float]] = [
        ("running", "1 while the load runs, 0 once it has stopped.", int(running)),
        ("connections_open", "Participant and organizer WebSockets open.",
         m.get(Count.CONNECTIONS_OPEN)),
        # In ESME's scenario a chat lasts until the run stops.
        ("active_chats", "Chats in progress (chats started, 0 after the stop).", chats),
        ("intended_messages_per_second",
         "Messages a second the schedule asks for: chats x 1000 / -smi.", chats * 1000 / s.smi),
        ("generator_cpu_busy_ratio",
         f"Generator CPU over the CPU it can use ({cores} core(s)), {CPU_LAG_S} s ago.",
         cpu_ms / (1000 * cores)),
    ]
    for name, doc, value in values:
        yield _gauge(f"esmeperf_{name}", doc, value, labels)


def _histogram(name: str, doc: str, recorder: LatencyRecorder,
               labels: dict[str, str]) -> Metric:
    below, count, sum_us = recorder.cumulative(_BOUNDS_US)
    buckets = [(f"{bound:g}", n) for bound, n in zip(BOUNDS_S, below, strict=True)]
    buckets.append(("+Inf", count))
    family = HistogramMetricFamily(name, doc, labels=list(labels))
    family.add_metric(list(labels.values()), buckets, sum_us / 1_000_000)
    return family


def _verdicts(summary: dict[str, Any], labels: dict[str, str]) -> Iterator[Metric]:
    suspect = (summary.get("generator_health") or {}).get("suspect")
    if suspect is not None:
        yield _gauge("esmeperf_generator_limited",
                     "1 when the summary's generator_health calls the run suspect.",
                     int(bool(suspect)), labels)
    yield _gauge("esmeperf_exit_status", "The run's exit status (set once it has ended).",
                 summary["exit_status"], labels)


class _Handler(WSGIRequestHandler):
    """Requests with a timeout, and no access log on stderr."""

    timeout = REQUEST_TIMEOUT

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass


class _Server(ThreadingMixIn, WSGIServer):
    """One thread per request (a scrape must not wait behind a stuck client); close() joins
    them, each bounded by the handler's timeout."""

    block_on_close = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.warning("metrics endpoint: a request from %s failed", client_address[0])


def _family(host: str) -> socket.AddressFamily:
    """AF_INET6 for an IPv6 host (::1), else AF_INET."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"--metrics-host {host}: cannot listen there ({exc.strerror})") \
            from None
    return infos[0][0]


class Endpoint:
    """The /metrics HTTP server, listening from construction (so a port in use is a usage
    error before any load) until close()."""

    def __init__(self, host: str, port: int) -> None:
        self.collector = RunCollector()
        registry = CollectorRegistry()
        registry.register(self.collector)
        server_class = type("_BoundServer", (_Server,), {"address_family": _family(host)})
        try:
            self._server: WSGIServer = make_server(host, port, make_wsgi_app(registry),
                                       server_class=server_class, handler_class=_Handler)
        except OSError as exc:
            raise ConfigError(f"--metrics-port {port}: cannot listen on {_where(host, port)} "
                              f"({exc.strerror or exc})") from None
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.5}, name="metrics-http")
        self._thread.start()
        log.info("Prometheus metrics on %s", self.url)

    @property
    def url(self) -> str:
        return f"http://{_where(self.host, self.port)}/metrics"

    def attach(self, run_id: str, metrics: Metrics, settings: Settings,
               stopped: threading.Event) -> None:
        self.collector.attach(run_id, metrics, settings, stopped)

    def finish(self, summary: dict[str, Any]) -> None:
        self.collector.finish(summary)

    def close(self) -> None:
        """Stop serving: the listening socket closes, requests in progress finish (bounded)."""
        done = threading.Event()

        def stop_serving() -> None:
            self._server.shutdown()  # returns once serve_forever has (within a poll interval)
            done.set()

        closer = threading.Thread(target=stop_serving, name="metrics-http-stop")
        closer.start()
        if not done.wait(CLOSE_TIMEOUT):
            log.warning("metrics endpoint: did not stop within %g s", CLOSE_TIMEOUT)
        self._server.server_close()
        self._thread.join(CLOSE_TIMEOUT)
        closer.join(CLOSE_TIMEOUT)
        log.debug("metrics endpoint closed after %d scrapes", self.collector.scrapes)

    def __enter__(self) -> Endpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _where(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def serve(host: str | None, port: int | None) -> Endpoint | None:
    """The job's endpoint (--metrics-host, --metrics-port), bound now; None without a port."""
    if port is None:
        if host is not None:
            raise ConfigError("--metrics-host needs --metrics-port")
        return None
    return Endpoint(host or DEFAULT_HOST, port)

