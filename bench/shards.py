"""One process vs --processes 2 vs --cluster local:2, in the cost-per-message shape.

    python3 bench/shards.py [--runs 2] [--duration 20s]

Each mode runs `python -m esmeperf -sci 10 -cpi 20 -smi 100 --duration 20s` against the
embedded target. The generator's CPU comes from the summary (`generator_cpu_s`: the esmeperf
process plus its shards' processes; for Dask the workers' whole processes), the target excluded.
Prints each run and the medians per mode.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

MODES = {
    "1 process": [],
    "--processes 2": ["--processes", "2"],
    "--cluster local:2": ["--cluster", "local:2"],
}


def one_run(duration: str, extra: list[str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as out:
        subprocess.run([sys.executable, "-m", "esmeperf", "-q", "--no-plot", "--out", out,
                        "-sci", "10", "-cpi", "20", "-smi", "100", "--duration", duration,
                        *extra], check=False, stdin=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        (path,) = Path(out).glob("*_summary.json")
        summary = json.loads(path.read_text())
    return {"sent": summary["messages_sent"], "delivered": summary["messages_delivered"],
            "participants": summary["created_participants_count"],
            "generator_cpu_s": summary["generator_cpu_s"],
            "us_per_msg": summary["cpu_us_per_message"],
            "rtt_p99_ms": summary["latency"]["message_rtt"].get("p99_ms")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--duration", default="20s")
    parser.add_argument("--modes", nargs="*", default=list(MODES), choices=list(MODES))
    args = parser.parse_args()
    for name in args.modes:
        results = [one_run(args.duration, MODES[name]) for _ in range(args.runs)]
        for result in results:
            print(f"{name}: {json.dumps(result)}", flush=True)
        medians = {k: statistics.median(r[k] for r in results) for k in results[0]}
        print(f"{name} median: {json.dumps(medians)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
