"""Cost per message: a `-sci 10 -cpi 20 -smi 100` run against the embedded target.

Prints messages sent and delivered, the generator's own CPU seconds (its rusage; the target is
a child process and is not counted), CPU microseconds per message and peak RSS. Repeats the run
and reports medians, since this machine is shared and noisy.

    python3 bench/cost_per_message.py [--runs 3] [--duration 20s] [-- extra esmeperf args]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
from pathlib import Path

from esmeperf.cli.main import main as esmeperf_main


def one_run(duration: str, extra: list[str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as out:
        before = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        status = esmeperf_main(["-q", "--no-plot", "--out", out, "-sci", "10", "-cpi", "20",
                                "-smi", "100", "--duration", duration, *extra])
        after = resource.getrusage(resource.RUSAGE_SELF)
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        (path,) = Path(out).glob("*_summary.json")
        summary = json.loads(path.read_text())
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    sent = summary["messages_sent"]
    # The embedded target is a reaped child by now: RUSAGE_CHILDREN holds its CPU alone.
    target_cpu = (children_after.ru_utime - children.ru_utime) + (
        children_after.ru_stime - children.ru_stime)
    return {
        "status": status,
        "sent": sent,
        "delivered": summary["messages_delivered"],
        "participants": summary["created_participants_count"],
        "cpu_s": round(cpu, 2),
        "us_per_msg": round(cpu / sent * 1e6, 1) if sent else float("nan"),
        "rtt_p99_ms": summary["latency"]["message_rtt"].get("p99_ms", float("nan")),
        "peak_rss_mb": round(after.ru_maxrss / 1024, 1),
        "target_cpu_s": round(target_cpu, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", default="20s")
    parser.add_argument("extra", nargs="*", help="extra esmeperf arguments (after --)")
    args = parser.parse_args()
    results = []
    for index in range(args.runs):
        result = one_run(args.duration, args.extra)
        results.append(result)
        print(f"run {index + 1}: {json.dumps(result)}", flush=True)
    keys = ("sent", "delivered", "participants", "cpu_s", "us_per_msg", "rtt_p99_ms",
            "peak_rss_mb", "target_cpu_s")
    medians = {k: statistics.median(r[k] for r in results) for k in keys}
    print("median:", json.dumps(medians))
    return 0


if __name__ == "__main__":
    sys.exit(main())
