"""What the portable path costs per message: `-sci 10 -cpi 20 -smi 100` runs, native and
--portable alternately (so both see the same minutes of a shared, noisy machine).

The portable path is what macOS and Windows use (esmeperf/system/platform_support.py): no batched
reads, so every echo wakes its participant; Python socket timeouts (a poll() per read, an
ioctl() per timeout change) instead of SO_RCVTIMEO; the receive time from the clock after
recv. Prints each run (bench/cost_per_message.py's figures) and, per path, the medians and
the portable/native ratio of CPU per message.

    python3 bench/portable_cost.py [--runs 3] [--duration 20s] [-- extra esmeperf args]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

from cost_per_message import one_run

KEYS = ("sent", "delivered", "participants", "cpu_s", "us_per_msg", "rtt_p99_ms",
        "peak_rss_mb", "target_cpu_s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per path (default 3)")
    parser.add_argument("--duration", default="20s")
    parser.add_argument("extra", nargs="*", help="extra esmeperf arguments (after --)")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    results: dict[str, list[dict[str, float]]] = {"native": [], "portable": []}
    for index in range(args.runs):
        for path, flags in (("native", []), ("portable", ["--portable"])):
            result = one_run(args.duration, [*flags, *args.extra])
            results[path].append(result)
            print(f"run {index + 1} {path}: {json.dumps(result)}", flush=True)
    medians = {path: {k: statistics.median(r[k] for r in runs) for k in KEYS}
               for path, runs in results.items()}
    for path, figures in medians.items():
        print(f"median {path}:", json.dumps(figures))
    native, portable = medians["native"]["us_per_msg"], medians["portable"]["us_per_msg"]
    print(f"portable/native CPU per message: {portable / native:.2f}x "
          f"({portable:.1f} vs {native:.1f} us; medians of {args.runs} runs each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
