"""CPU of one part of an arrival, done N times in a row by one thread: its two REST calls
(sign-up and chat request, over the shared keep-alive client the participants use), or its
WebSocket handshake (Connection.open, then abort).

Against a fresh embedded target; prints the CPU per arrival. `--vs REV` runs the same with
that part's module (esmeperf/transport/rest.py or esmeperf/transport/connection.py) as it was
at git revision REV, alternating run by run, and prints both medians. REV must be one with the
package layout (since the move into role packages): a flat module's imports fit no other.

    python3 bench/arrival_cost.py [--part rest|handshake] [--arrivals 400] [--runs 3] [--vs REV]
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
from esmeperf.transport.connection import Connection
from esmeperf.transport.rest import RestClient
config, part, n = json.loads(sys.argv[2]), sys.argv[3], int(sys.argv[4])
base = config["participant_api_url"]
client = RestClient(10, shared=True)
stamp = time.time_ns()

def rest(i):
    _, token = client.sign_up(base, f"participant_{stamp}_{i}@performance.com")
    client.chat_request(base, token, config["event_id"])

def handshake(i):
    Connection.open(config["messenger_ws_url"], "participant_token", 10, newline=False,
                    recv_size=512).abort()

step = rest if part == "rest" else handshake
for i in range(20):  # warm up: the pool's connections, the first imports
    step(-1 - i)
started = time.process_time()
for i in range(n):
    step(i)
print((time.process_time() - started) / n * 1e6)
"""
MODULES = {"rest": "transport/rest.py", "handshake": "transport/connection.py"}


def tree_at(revision: str, module: str, into: Path) -> Path:
    """The esmeperf package as of now, with `module` as of `revision`."""
    package = into / "esmeperf"
    subprocess.run(["cp", "-r", str(ROOT / "esmeperf"), str(package)], check=True)
    old = subprocess.run(["git", "-C", str(ROOT), "show", f"{revision}:esmeperf/{module}"],
                         capture_output=True, text=True, check=True).stdout
    (package / module).write_text(old)
    return into


def one(tree: Path, config: str, part: str, arrivals: int) -> float:
    done = subprocess.run([sys.executable, "-c", ONE_RUN, str(tree), config, part,
                           str(arrivals)],
                          capture_output=True, text=True, check=True, timeout=600)
    return float(done.stdout.strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=sorted(MODULES), default="rest",
                        help="the REST calls (default) or the WebSocket handshake")
    parser.add_argument("--arrivals", type=int, default=400)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--vs", default=None, metavar="REV",
                        help="also time the part's module as of this git revision, "
                             "alternating")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import json

    from esmeperf.target.launcher import TargetProcess

    with tempfile.TemporaryDirectory() as scratch, TargetProcess() as target:
        config = json.dumps(target.config)
        trees = {"now": ROOT}
        if args.vs:
            trees[args.vs] = tree_at(args.vs, MODULES[args.part], Path(scratch))
        results: dict[str, list[float]] = {name: [] for name in trees}
        for index in range(args.runs):
            for name, tree in trees.items():
                us = one(tree, config, args.part, args.arrivals)
                results[name].append(us)
                print(f"run {index + 1} {name}: {us:.0f} us CPU per arrival ({args.part})",
                      flush=True)
        print(time.strftime("%Y-%m-%d %H:%M %Z"))
        for name, values in results.items():
            print(f"{name}: median {statistics.median(values):.0f} us CPU per arrival, "
                  f"{args.part}: "
                  f"({', '.join(f'{v:.0f}' for v in values)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
