"""What --metrics-port costs a run: the same run with and without it, in the same minutes
(issue 18).

    python3 bench/metrics_cost.py [--pairs 3] [--duration 20s] [--scrape-interval 1]
                                  [--args "-sci 10 -cpi 20 -smi 100"]

Each run is `python -m esmeperf ARGS --duration D --no-plot -q` against its own embedded target
(a fresh one per run). Variant B adds `--metrics-port P`, and this script scrapes P every
--scrape-interval seconds for the whole run, as a Prometheus would (1 s: five to fifteen times
as often as usual, so the cost is an upper bound). A and B alternate, the order flipping each
pair (AB, BA, AB, ...) so a drift of the shared machine falls on both. The figures come from
each run's summary: messages sent, the generator's CPU per message (this process, not the
target), the steady rate, round-trip p50/p99 and send lateness p99; for B, also the scrapes
answered and their median and longest time. Medians per variant, B/A of the medians, and A's
own spread (max/min over its runs) as the noise to judge B/A against.
"""

from __future__ import annotations

import argparse
import json
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIGURES = (  # label, how to read it from the summary
    ("messages", lambda s: s["messages_sent"]),
    ("cpu_us/msg", lambda s: s["cpu_us_per_message"]),
    ("steady/s", lambda s: s["steady_rate"]),
    ("rtt p50 ms", lambda s: s["latency"]["message_rtt"].get("p50_ms")),
    ("rtt p99 ms", lambda s: s["latency"]["message_rtt"].get("p99_ms")),
    ("late p99 ms", lambda s: s["latency"]["send_lateness"].get("p99_ms")),
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Scraper:
    """GETs the endpoint every `interval` s until stopped; keeps each answered scrape's time."""

    def __init__(self, url: str, interval: float) -> None:
        self.url, self.interval = url, interval
        self.times: list[float] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="scraper")

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(self.url, timeout=5) as response:
                    response.read()
            except (urllib.error.URLError, OSError):
                continue  # not listening yet (the target starting), or already closed
            self.times.append(time.perf_counter() - started)


def run_once(args: list[str], duration: str, metrics: bool, interval: float,
             timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="esmeperf-metrics-cost-") as tmp:
        export = Path(tmp) / "summary.json"
        cmd = [sys.executable, "-m", "esmeperf", *args, "--duration", duration, "--no-plot",
               "-q", "--out", tmp, "--summary-export", str(export)]
        scraper = None
        if metrics:
            port = free_port()
            cmd += ["--metrics-port", str(port)]
            scraper = Scraper(f"http://127.0.0.1:{port}/metrics", interval)
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        if scraper is not None:
            scraper.thread.start()
        try:
            _, err = proc.communicate(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            if scraper is not None:
                scraper.stop.set()
                scraper.thread.join(10)
        if proc.returncode != 0 or not export.exists():
            raise SystemExit(f"metrics_cost: esmeperf exited {proc.returncode}: "
                             f"{err.strip().splitlines()[-1:]}")
        summary = json.loads(export.read_text())
    out = {label: read(summary) for label, read in FIGURES}
    out["suspect"] = summary["generator_health"]["suspect"]
    if scraper is not None:
        out["scrapes"] = len(scraper.times)
        out["scrape ms p50"] = round(statistics.median(scraper.times) * 1000, 2) \
            if scraper.times else None
        out["scrape ms max"] = round(max(scraper.times) * 1000, 2) if scraper.times else None
    return out


def median(values: list[Any]) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--duration", default="20s")
    parser.add_argument("--scrape-interval", type=float, default=1.0)
    parser.add_argument("--args", default="-sci 10 -cpi 20 -smi 100",
                        help="esmeperf's scenario flags (default: versus_go.py's shape 1)")
    opts = parser.parse_args()
    args = shlex.split(opts.args)
    timeout = 300.0
    runs: dict[str, list[dict[str, Any]]] = {"A": [], "B": []}
    started = time.strftime("%Y-%m-%d %H:%M")
    for pair in range(opts.pairs):
        order = "AB" if pair % 2 == 0 else "BA"
        for variant in order:
            result = run_once(args, opts.duration, variant == "B", opts.scrape_interval,
                              timeout)
            runs[variant].append(result)
            print(f"pair {pair + 1} {variant}: " + ", ".join(f"{k} {v}" for k, v in
                                                          result.items()), flush=True)
    print(f"\n{opts.pairs} pairs, {opts.args} --duration {opts.duration}, started {started}; "
          f"B scraped every {opts.scrape_interval:g} s")
    print(f"{'figure':<14}{'A median':>12}{'B median':>12}{'B/A':>8}{'A max/min':>11}")
    for label, _ in FIGURES:
        a = median([r[label] for r in runs["A"]])
        b = median([r[label] for r in runs["B"]])
        a_values = [r[label] for r in runs["A"] if r[label]]
        spread = max(a_values) / min(a_values) if a_values else None
        ratio = b / a if a and b is not None else None
        print(f"{label:<14}{a!s:>12}{b!s:>12}"
              f"{'' if ratio is None else f'{ratio:.3f}':>8}"
              f"{'' if spread is None else f'{spread:.3f}':>11}")
    for key in ("scrapes", "scrape ms p50", "scrape ms max"):
        print(f"B {key}: {[r[key] for r in runs['B']]}")
    print(f"suspect runs: A {sum(r['suspect'] for r in runs['A'])}, "
          f"B {sum(r['suspect'] for r in runs['B'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
