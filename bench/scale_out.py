"""The multi-machine scenarios again and again: pass counts and how fast a loss ends the run.

Runs tests/test_multi_machine.py's scenarios (the README's recipe, a worker killed, the
scheduler killed, the client killed; two Dask workers on 127.0.0.2 and 127.0.0.3, a Dask
scheduler, a standalone target, all on this machine) N times each, each run a pytest of its
own, and prints each scenario's passes and the p50 and max of its end after the loss (the
client's exit after a worker or the scheduler was killed; the last message the target stored
after the client was killed). With --hog, another process keeps one core busy throughout.

    python3 bench/scale_out.py [--runs 30] [--hog] [--scenarios recipe,worker,scheduler,client]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = {"recipe": "test_readme_recipe", "worker": "test_a_worker_lost_stops_the_run",
             "scheduler": "test_the_scheduler_lost_stops_the_run",
             "client": "test_a_killed_client_leaves_no_shard_sending"}
RECORD_ENV = "ESMEPERF_SCALE_OUT_RECORD"  # the tests write their figures there
TESTS = "tests/engine/test_multi_machine.py" if (ROOT / "tests/engine").is_dir() \
    else "tests/test_multi_machine.py"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--hog", action="store_true",
                        help="keep one core busy with another process while the runs go")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    args = parser.parse_args()
    chosen = [s.strip() for s in args.scenarios.split(",")]
    record = Path(tempfile.mkdtemp(prefix="scale-out-")) / "figures.jsonl"
    hog = (subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.hog else None)
    passes = {name: 0 for name in chosen}
    failures: list[str] = []
    started = time.time()
    try:
        for run in range(1, args.runs + 1):
            for name in chosen:
                # Each run's own temporary folder, kept: a failure's logs (the client's, the
                # scheduler's, each worker's with its shard's lines) are there to read.
                basetemp = record.parent / f"run{run:02d}-{name}"
                done = subprocess.run(
                    [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                     f"--basetemp={basetemp}", f"{TESTS}::{SCENARIOS[name]}"],
                    cwd=ROOT, env={**os.environ, RECORD_ENV: str(record)},
                    capture_output=True, text=True, timeout=600, check=False)
                ok = done.returncode == 0
                passes[name] += ok
                if not ok:
                    why = [line for line in done.stdout.splitlines() if line.startswith("E ")]
                    failures.append(f"run {run} {name} ({basetemp}): " + " | ".join(why[:4] or [
                        done.stdout.strip().splitlines()[-1]]))
                print(f"run {run:2d} {name:<10} {'pass' if ok else 'FAIL'}", flush=True)
    finally:
        if hog is not None:
            hog.kill()
            hog.wait(10)
    figures = [json.loads(line) for line in record.read_text().splitlines()] \
        if record.exists() else []
    print(f"\n{args.runs} runs of each scenario{' with a CPU hog' if args.hog else ''}, "
          f"{time.time() - started:.0f} s, on {os.cpu_count()} cores")
    for name in chosen:
        print(f"{name:<10} {passes[name]}/{args.runs} passed")
    for key in ("end_after_loss_s", "load_after_loss_s"):
        for scenario in sorted({f["scenario"] for f in figures if key in f}):
            values = [f[key] for f in figures if f["scenario"] == scenario and key in f]
            print(f"{scenario:<17} {key:<18} p50 {statistics.median(values):5.2f} s  "
                  f"max {max(values):5.2f} s  ({len(values)} runs)")
    lost = [f for f in figures if f["scenario"] == "recipe" and any(f.get("lost", []))]
    print(f"recipe runs with a shard counted lost: {len(lost)}")
    for line in failures:
        print(line)
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
