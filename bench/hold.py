"""Hold N participants at a given -smi against the embedded target, and watch the processes.

Used for three of the issues' figures:

    connection scale  python3 bench/hold.py --participants 10000 --smi 10000 --ramp 60 --hold 60
    pacing at scale   python3 bench/hold.py --participants 2000 --smi 1000 --ramp 20 --hold 30
    soak              python3 bench/hold.py --participants 1000 --smi 1000 --ramp 20 --hold 300

It runs `python -m esmeperf` as a child (participants arrive evenly over --ramp seconds, then
are held for --hold seconds), samples the RSS and CPU time of the generator (the esmeperf process
plus its --processes shards) and of the embedded target every --sample seconds, and prints:
delivered/sent, achieved/intended sends, p99 send lateness against one interval, the generator's
RSS per participant, RSS growth after warm-up (the first third of the hold), and CPU per message.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def rss_and_cpu(pid: int) -> tuple[int, float]:
    """Resident bytes and CPU seconds (user + system) of one process, (0, 0) once gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        statm = Path(f"/proc/{pid}/statm").read_text().split()
    except OSError:
        return 0, 0.0
    return int(statm[1]) * PAGE, (int(stat[11]) + int(stat[12])) / TICKS


def is_target(pid: int) -> bool:
    try:
        return b"esmeperf.target" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def sample(root: int) -> dict[str, float]:
    """RSS (bytes) and CPU (s) of the generator (root + shards) and of the embedded target."""
    out = {"gen_rss": 0.0, "gen_cpu": 0.0, "target_rss": 0.0, "target_cpu": 0.0}
    for pid in [root, *children(root)]:
        rss, cpu = rss_and_cpu(pid)
        side = "target" if is_target(pid) else "gen"
        out[f"{side}_rss"] += rss
        out[f"{side}_cpu"] += cpu
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, required=True)
    parser.add_argument("--smi", type=float, required=True, help="ms")
    parser.add_argument("--ramp", type=float, default=20, help="seconds to bring them all in")
    parser.add_argument("--hold", type=float, default=60, help="seconds to hold them")
    parser.add_argument("--sci", type=float, default=1, help="ms (fast enough for the ramp)")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--sample", type=float, default=5, help="seconds between samples")
    parser.add_argument("extra", nargs="*", help="more esmeperf arguments (after --)")
    args = parser.parse_args()
    cpi = args.ramp * 1000 / args.participants
    duration = args.ramp + args.hold
    out = Path(tempfile.mkdtemp(prefix="esmeperf-hold-"))
    cmd = [sys.executable, "-m", "esmeperf", "-q", "--no-plot", "--out", str(out),
           "-sci", f"{args.sci:g}", "-cpi", f"{cpi:g}", "-smi", f"{args.smi:g}",
           "--max-participants", str(args.participants), "--duration", f"{duration:g}s",
           "--processes", str(args.processes), *args.extra]
    print("command:", " ".join(cmd[1:]), flush=True)
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL)
    samples: list[tuple[float, dict[str, float]]] = []
    while proc.poll() is None:
        try:
            proc.wait(args.sample)
        except subprocess.TimeoutExpired:
            samples.append((time.monotonic() - started, sample(proc.pid)))
            t, s = samples[-1]
            print(f"  t={t:5.0f}s generator {s['gen_rss'] / 2**20:7.1f} MiB "
                  f"target {s['target_rss'] / 2**20:7.1f} MiB", flush=True)
    (summary_path,) = out.glob("*_summary.json")
    summary = json.loads(summary_path.read_text())
    hold = [s for t, s in samples if args.ramp + 5 <= t <= duration]
    report: dict[str, object] = {
        "exit_status": proc.returncode,
        "end_reason": summary["end_reason"],
        "participants": summary["created_participants_count"],
        "chats": summary["chats_count"],
        "messages_sent": summary["messages_sent"],
        "delivered_ratio": summary["delivered_ratio"],
        "achieved_ratio": summary["achieved_ratio"],
        "lateness_p99_ms": summary["latency"]["send_lateness"].get("p99_ms"),
        "interval_ms": args.smi,
        "rtt_p99_ms": summary["latency"]["message_rtt"].get("p99_ms"),
    }
    if hold:
        peak = max(s["gen_rss"] for s in hold)
        held = max(1, summary["created_participants_count"])
        report["generator_rss_mib"] = round(peak / 2**20, 1)
        report["generator_rss_kib_per_participant"] = round(peak / 1024 / held, 1)
        # Marginal: above the first sample (interpreter, libraries, a handful of participants).
        base = samples[0][1]["gen_rss"]
        report["generator_rss_kib_per_participant_marginal"] = round(
            (peak - base) / 1024 / held, 1)
        report["target_rss_mib"] = round(max(s["target_rss"] for s in hold) / 2**20, 1)
        third = max(1, len(hold) // 3)
        for side in ("gen", "target"):
            warm = hold[third - 1][f"{side}_rss"]
            last = hold[-1][f"{side}_rss"]
            report[f"{side}_rss_growth_after_warmup"] = round(last / warm - 1, 4) if warm else None
        last = hold[-1]  # before the shutdown: the target is still there to be measured
        sent = max(1, summary["messages_sent"])
        report["generator_cpu_us_per_message"] = round(last["gen_cpu"] / sent * 1e6, 1)
        report["target_cpu_us_per_message"] = round(last["target_cpu"] / sent * 1e6, 1)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
