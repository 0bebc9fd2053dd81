"""CPU of an arrival's two REST calls (sign-up, chat request) with esmeperf's RestClient.

One thread signs up N participants in a row against a fresh embedded target, over the shared
keep-alive client the participants use, and prints the CPU per arrival. `--vs REV` runs the
same with esmeperf/rest.py as it was at git revision REV, alternating, and prints both medians.

    python3 bench/rest_cost.py [--arrivals 400] [--runs 3] [--vs REV]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

ONE_RUN = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from esmeperf.rest import RestClient
config = json.loads(sys.argv[2])
base, n = config["participant_api_url"], int(sys.argv[3])
client = RestClient(10, shared=True)
stamp = time.time_ns()
started = time.process_time()
for i in range(n):
    _, token = client.sign_up(base, f"participant_{stamp}_{i}@performance.com")
    client.chat_request(base, token, config["event_id"])
print((time.process_time() - started) / n * 1e6)
"""


def tree_at(revision: str, into: Path) -> Path:
    """The esmeperf package as of now, with rest.py as of `revision`."""
    package = into / "esmeperf"
    subprocess.run(["cp", "-r", str(ROOT / "esmeperf"), str(package)], check=True)
    old = subprocess.run(["git", "-C", str(ROOT), "show", f"{revision}:esmeperf/rest.py"],
                         capture_output=True, text=True, check=True).stdout
    (package / "rest.py").write_text(old)
    return into


def one(tree: Path, config: str, arrivals: int) -> float:
    done = subprocess.run([sys.executable, "-c", ONE_RUN, str(tree), config, str(arrivals)],
                          capture_output=True, text=True, check=True, timeout=600)
    return float(done.stdout.strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arrivals", type=int, default=400)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--vs", default=None, metavar="REV",
                        help="also time rest.py as of this git revision, alternating")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import json

    from esmeperf.target.launcher import TargetProcess

    with tempfile.TemporaryDirectory() as scratch, TargetProcess() as target:
        config = json.dumps(target.config)
        trees = {"now": ROOT}
        if args.vs:
            trees[args.vs] = tree_at(args.vs, Path(scratch))
        results: dict[str, list[float]] = {name: [] for name in trees}
        for index in range(args.runs):
            for name, tree in trees.items():
                us = one(tree, config, args.arrivals)
                results[name].append(us)
                print(f"run {index + 1} {name}: {us:.0f} us CPU per arrival", flush=True)
        print(time.strftime("%Y-%m-%d %H:%M %Z"))
        for name, values in results.items():
            print(f"{name}: median {statistics.median(values):.0f} us CPU per arrival "
                  f"({', '.join(f'{v:.0f}' for v in values)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
