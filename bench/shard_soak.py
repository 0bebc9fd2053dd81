"""Long runs with shards: do the shards add up to what the target stored, exactly?

    python3 bench/shard_soak.py [--duration 300s] [--modes processes,dask]
                                [--load "-sci 10 -cpi 50 -smi 500"]

Runs `python -m esmeperf -sci 10 -cpi 50 -smi 500 --duration 300s` (or --load) against the
embedded target with `--processes 2`, then with `--cluster local:2` (two Dask workers), and
prints for each: the messages sent (the summary's, and the sum of its shards'), what the target
stored (its /stats), the difference, the delivered ratio, lost shards, each shard's link and
longest wait between its deltas, the generator's health, the first error and every warning. A
run passes when the three counts agree exactly, no shard is lost, it ended by its duration and
every warning is the generator's own health (a saturating load may make it SUSPECT: that is a
verdict, not a loss).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = {"processes": ["--processes", "2"], "dask": ["--cluster", "local:2"]}
LOAD = ["-sci", "10", "-cpi", "50", "-smi", "500"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", default="300s")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--load", default=" ".join(LOAD),
                        help="the intervals (default: %(default)s)")
    args = parser.parse_args()
    failed = 0
    for mode in args.modes.split(","):
        with tempfile.TemporaryDirectory() as out:
            started = time.monotonic()
            done = subprocess.run(
                [sys.executable, "-m", "esmeperf", "-q", "--no-plot", "--out", out,
                 *args.load.split(),
                 "--duration", args.duration, *MODES[mode]], capture_output=True, text=True,
                check=False, stdin=subprocess.DEVNULL)
            elapsed = time.monotonic() - started
            summaries = list(Path(out).glob("*_summary.json"))
            if not summaries:
                print(f"{mode}: no summary (exit {done.returncode}): {done.stderr[-500:]}")
                failed += 1
                continue
            summary = json.loads(summaries[0].read_text())
        check = summary.get("cross_check") or {}
        shards = summary["shards"]
        by_shards = sum(s["sent"] for s in shards)
        lost = [s["shard"] for s in shards if s.get("lost")]
        # The generator's own warnings (SUSPECT, send slots it skipped) are verdicts on it.
        own = [w for w in summary["warnings"] if "the generator was SUSPECT" not in w
               and not w.startswith("participants skipped")]
        ok = (summary["end_reason"] == "duration" and check.get("difference") == 0
              and by_shards == summary["messages_sent"] and not lost and not own)
        health = summary["generator_health"]
        error = summary["first_error"]
        failed += not ok
        each = ", ".join(f"{shard['sent']:,}" for shard in shards)
        print(f"{mode} ({args.duration}, {elapsed:.0f} s wall): exit {done.returncode}, "
              f"sent {summary['messages_sent']:,} (shards {by_shards:,}: {each}), target stored "
              f"{check.get('target_stored', 0):,}, difference {check.get('difference')}, "
              f"delivered {summary['delivered_ratio']}, lost shards {lost or 'none'}, "
              f"links {[s.get('link', 'pipe') for s in shards]}, delta gaps "
              f"{[s.get('delta_gap_max_s') for s in shards]} s, generator "
              f"{'SUSPECT' if health['suspect'] else 'ok'} {health['reasons']}, first error "
              f"{error['message'] if error else 'none'}, other warnings {own or 'none'}: "
              f"{'pass' if ok else 'FAIL'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
